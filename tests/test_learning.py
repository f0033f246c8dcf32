"""The lecture's learning claims: hidden units solve XOR (a perceptron cannot); universal approximation."""

import math

import pytest
import torch

import lecturenn as ln

XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
XOR_Y = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)


def fit_lbfgs(net, X, Y, lam=0.0, steps=200):
    opt = torch.optim.LBFGS(net.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        J = net.cost(X, Y, lam)
        J.backward()
        return J

    opt.step(closure)
    return net.cost(X, Y, lam).item()


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_two_hidden_units_learn_xor_where_the_perceptron_cannot(backprop):
    net = ln.ThetaMLP(
        [2, 2, 1],
        "sigmoid",
        "sigmoid",
        backprop,
        init="epsilon",
        epsilon=1.0,
        generator=0,
        dtype=torch.float64,
    )
    J = fit_lbfgs(net, XOR_X, XOR_Y)
    predictions = (net(XOR_X).squeeze(1) > 0.5).to(torch.float64)
    assert torch.equal(predictions, XOR_Y), f"J = {J}"
    assert J < 0.01

    linear = ln.batch_perceptron(XOR_X, 2 * XOR_Y - 1, max_epochs=1000)
    assert not linear.converged and linear.n_errors > 0
    online = ln.perceptron_rule(XOR_X, XOR_Y, max_epochs=1000)
    assert not online.converged


def test_plain_gradient_descent_learns_xor():
    """The lecture's loop: J, backprop, Θ ← Θ − α D, repeated (full batch)."""
    net = ln.ThetaMLP([2, 2, 1], "sigmoid", "sigmoid", init="epsilon", epsilon=1.0, generator=0)
    X, Y = XOR_X.float(), XOR_Y.float()
    for _ in range(3000):
        net.zero_grad()
        net.cost(X, Y).backward()
        with torch.no_grad():
            for theta in net.thetas:
                theta -= 2.0 * theta.grad
    assert torch.equal((net(X).squeeze(1) > 0.5).float(), Y)


def test_one_hidden_layer_approximates_sin():
    """Universal approximation (slide 13): one hidden layer fits sin on [−π, π]."""
    x = torch.linspace(-math.pi, math.pi, 200, dtype=torch.float64).unsqueeze(1)
    y = torch.sin(x)
    net = ln.ThetaMLP([1, 20, 1], "tanh", "identity", generator=0, dtype=torch.float64)
    mse = fit_lbfgs(net, x, y, steps=500)
    assert mse < 1e-3
    x_test = torch.rand(100, 1, dtype=torch.float64) * 2 * math.pi - math.pi
    assert torch.mean((net(x_test) - torch.sin(x_test)) ** 2).item() < 1e-3
