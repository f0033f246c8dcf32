"""Numbers worked out by hand (arithmetic in the comments) and the classic ex4 gradient check."""

import math

import pytest
import torch

import lecturenn as ln


def set_thetas(net, *thetas):
    with torch.no_grad():
        for p, t in zip(net.thetas, thetas):
            p.copy_(torch.as_tensor(t, dtype=p.dtype))


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_sigmoid_net_by_hand(backprop):
    # sizes 2-2-1, one example x = (1, 2), y = 1.
    # Θ^(1) = [[1,    1, -1],      z^(2)_1 = 1 + 1·1 − 1·2 = 0      a^(2)_1 = σ(0)     = 0.5
    #          [ln 3, 0,  0]]      z^(2)_2 = ln 3                   a^(2)_2 = 3/(1+3)  = 0.75
    # Θ^(2) = [[-1, 2, 0]]         z^(3)   = −1 + 2·0.5 + 0·0.75 = 0,  h = σ(0) = 0.5
    # J = −[1·log 0.5 + 0·log 0.5] = ln 2 = 0.693147
    # δ^(3) = h − y = −0.5
    # D^(2) = δ^(3) [1, a^(2)] = −0.5·[1, 0.5, 0.75] = [−0.5, −0.25, −0.375]
    # δ^(2) = (Θ^(2)_{:,1:})ᵀ δ^(3) .* a(1−a) = [2·(−0.5)·0.25, 0·(−0.5)·0.1875] = [−0.25, 0]
    # D^(1) = δ^(2) [1, x]ᵀ = [[−0.25, −0.25, −0.5], [0, 0, 0]]
    # With λ = 1, n = 1:  R = ½ (1² + (−1)² + 0 + 0 + 2² + 0²) = 3,  J = ln 2 + 3
    #   D^(1) += [0 | Θ^(1)_{:,1:}] → [[−0.25, 0.75, −1.5], [0, 0, 0]]
    #   D^(2) += [0 | 2, 0]         → [−0.5, 1.75, −0.375]
    net = ln.ThetaMLP([2, 2, 1], "sigmoid", "sigmoid", backprop=backprop, dtype=torch.float64)
    set_thetas(net, [[1, 1, -1], [math.log(3), 0, 0]], [[-1, 2, 0]])
    X, Y = torch.tensor([[1.0, 2.0]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64)

    fp = net.propagate(X)
    torch.testing.assert_close(fp.z[2], torch.tensor([[0.0, math.log(3)]], dtype=torch.float64))
    torch.testing.assert_close(fp.a[2], torch.tensor([[0.5, 0.75]], dtype=torch.float64))
    torch.testing.assert_close(fp.z[3], torch.zeros(1, 1, dtype=torch.float64))
    torch.testing.assert_close(fp.h, torch.full((1, 1), 0.5, dtype=torch.float64))

    J = net.cost(X, Y)
    assert J.item() == pytest.approx(0.693147, abs=1e-6)
    J.backward()
    torch.testing.assert_close(net.theta(2).grad, torch.tensor([[-0.5, -0.25, -0.375]], dtype=torch.float64))
    torch.testing.assert_close(
        net.theta(1).grad, torch.tensor([[-0.25, -0.25, -0.5], [0.0, 0.0, 0.0]], dtype=torch.float64)
    )
    bp = ln.backpropagate(net, X, Y)
    torch.testing.assert_close(bp.delta[3], torch.tensor([[-0.5]], dtype=torch.float64))
    torch.testing.assert_close(bp.delta[2], torch.tensor([[-0.25, 0.0]], dtype=torch.float64))

    net.zero_grad()
    J = net.cost(X, Y, lam=1.0)
    assert J.item() == pytest.approx(math.log(2) + 3, abs=1e-12)
    J.backward()
    torch.testing.assert_close(
        net.theta(1).grad, torch.tensor([[-0.25, 0.75, -1.5], [0.0, 0.0, 0.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(net.theta(2).grad, torch.tensor([[-0.5, 1.75, -0.375]], dtype=torch.float64))


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_linear_regression_net_by_hand(backprop):
    # sizes 1-1-1, identity everywhere, n = 2: x = (0, 1), y = (1, 5).
    # Θ^(1) = [1, 2] → a^(2) = 1 + 2x = (1, 3);   Θ^(2) = [0, 3] → ŷ = 3 a^(2) = (3, 9)
    # J = (1/n) Σ (y − ŷ)² = ½ (2² + 4²) = 10
    # δ^(3) = 2(ŷ − y) = (4, 8);   Δ^(2) = Σ δ^(3) [1, a^(2)] = [4 + 8, 4·1 + 8·3] = [12, 28]
    # δ^(2) = 3 δ^(3) · 1 = (12, 24);  Δ^(1) = Σ δ^(2) [1, x] = [36, 24]
    # D = Δ/n: D^(1) = [18, 12], D^(2) = [6, 14]
    # λ = 2: R = (2/(2·2)) (2² + 3²) = 6.5 → J = 16.5;  D^(1) += [0, 2], D^(2) += [0, 3]
    net = ln.ThetaMLP([1, 1, 1], "identity", "identity", backprop=backprop, dtype=torch.float64)
    set_thetas(net, [[1, 2]], [[0, 3]])
    X = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    Y = torch.tensor([1.0, 5.0], dtype=torch.float64)
    J = net.cost(X, Y)
    assert J.item() == pytest.approx(10.0)
    J.backward()
    torch.testing.assert_close(net.theta(1).grad, torch.tensor([[18.0, 12.0]], dtype=torch.float64))
    torch.testing.assert_close(net.theta(2).grad, torch.tensor([[6.0, 14.0]], dtype=torch.float64))
    net.zero_grad()
    J = net.cost(X, Y, lam=2.0)
    assert J.item() == pytest.approx(16.5)
    J.backward()
    torch.testing.assert_close(net.theta(1).grad, torch.tensor([[18.0, 14.0]], dtype=torch.float64))
    torch.testing.assert_close(net.theta(2).grad, torch.tensor([[6.0, 17.0]], dtype=torch.float64))


def test_sigmoid_gradient_values():
    # ex4's sigmoidGradient([-1 -0.5 0 0.5 1]) = [0.196612 0.235004 0.250000 0.235004 0.196612]
    g = ln.ACTIVATIONS["sigmoid"]
    z = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    expected = torch.tensor([0.196612, 0.235004, 0.25, 0.235004, 0.196612], dtype=torch.float64)
    torch.testing.assert_close(g.gprime(g(z)), expected, atol=1e-6, rtol=0)


def debug_initialize_weights(fan_out, fan_in):
    """ex4's debugInitializeWeights: W = reshape(sin(1:numel(W)), size(W)) / 10, column-major."""
    numel = fan_out * (fan_in + 1)
    values = torch.sin(torch.arange(1, numel + 1, dtype=torch.float64)) / 10
    return values.reshape(fan_in + 1, fan_out).T  # Octave fills column by column


@pytest.mark.parametrize("lam", [0.0, 3.0])
@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_ex4_gradient_check(lam, backprop):
    # checkNNGradients: 3-5-3, m = 5, X = debugInitializeWeights(m, 2), y = 1 + mod(1:m, 3)
    net = ln.ThetaMLP([3, 5, 3], "sigmoid", "sigmoid", backprop=backprop, dtype=torch.float64)
    set_thetas(net, debug_initialize_weights(5, 3), debug_initialize_weights(3, 5))
    assert net.theta(1)[0, 1].item() == pytest.approx(math.sin(6) / 10)  # W(1,2) = sin(1 + 5)/10
    X = debug_initialize_weights(5, 2)  # (5, 3)
    y = 1 + torch.arange(1, 6) % 3  # Octave labels 1..3: [2, 3, 1, 2, 3]
    Y = torch.nn.functional.one_hot(y - 1, 3).to(torch.float64)
    report = ln.gradient_check(net, X, Y, lam=lam)
    assert report.relative_difference < 1e-9, str(report)
    assert sum(c.n_checked for c in report.layers) == 38
