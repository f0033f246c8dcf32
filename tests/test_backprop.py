"""The manual δ-recursion proven three ways: gradcheck, twin computation with autograd, teaching path."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lecturenn as ln
from lecturenn.backprop import ThetaCost, ThetaForward

ACTS = sorted(ln.ACTIVATIONS)
HEADS = sorted(ln.HEADS)


def make_batch(net, n, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, net.sizes[0], generator=gen, dtype=dtype)
    K = net.sizes[-1]
    if net.head.name == "softmax":
        Y = torch.randint(0, K, (n,), generator=gen)
    elif net.head.name == "sigmoid":
        Y = torch.randint(0, 2, (n, K), generator=gen).to(dtype)
    elif net.head.name == "poisson":  # counts y >= 0
        Y = torch.poisson(torch.full((n, K), 2.0, dtype=dtype), generator=gen)
    else:
        Y = torch.randn(n, K, generator=gen, dtype=dtype)
    return X, Y


def twin_nets(sizes, hidden, output, dtype, seed=0):
    """The same Θ in a manual-backprop net and an autograd net."""
    manual = ln.ThetaMLP(sizes, hidden, output, "manual", generator=seed, dtype=dtype)
    auto = ln.ThetaMLP(sizes, hidden, output, "autograd", dtype=dtype)
    auto.load_state_dict(manual.state_dict())
    return manual, auto


@pytest.mark.parametrize("hidden,output", list(itertools.product(ACTS, HEADS)))
def test_gradcheck_function(hidden, output):
    """torch.autograd.gradcheck on the Function (w.r.t. x and every Θ) and on the full cost J."""
    net = ln.ThetaMLP([3, 4, 3, 2], hidden, output, generator=1, dtype=torch.float64)
    X, Y = make_batch(net, 5, seed=2)
    if hidden == "relu":  # keep every z away from the kink at 0
        with torch.no_grad():
            for theta in net.thetas[:-1]:
                theta[:, 0] += 2.0
    thetas = [t.detach().clone().requires_grad_() for t in net.thetas]
    x = X.clone().requires_grad_()
    act = net.activation

    def forward(x, *thetas):
        return ThetaForward.apply(x, act, True, *thetas)[0]

    assert torch.autograd.gradcheck(forward, (x, *thetas))

    Yp = net.head.prepare_targets(Y, 5, 2, X.dtype, X.device)

    def cost(x, *thetas):  # the whole manual path: ThetaCost (δ^(L+1) = a − y, recursion, λ term)
        return ThetaCost.apply(x, Yp, None, act, net.head, 0.7, True, *thetas)[0]

    assert torch.autograd.gradcheck(cost, (x, *thetas))


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("hidden,output", list(itertools.product(ACTS, HEADS)))
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_manual_equals_autograd(depth, hidden, output, dtype, rtol):
    sizes = [5] + [6, 4, 7][: depth - 1] + [3]
    manual, auto = twin_nets(sizes, hidden, output, dtype, seed=depth)
    X, Y = make_batch(manual, 9, seed=depth, dtype=dtype)
    for net in (manual, auto):
        net.cost(X, Y, lam=0.3).backward()
    for l in range(1, depth + 1):
        gm, ga = manual.theta(l).grad, auto.theta(l).grad
        scale = ga.abs().max().clamp_min(1e-30)
        assert (gm - ga).abs().max() / scale < rtol, f"Θ^({l})"


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 8), min_size=2, max_size=5),
    n=st.integers(1, 12),
    hidden=st.sampled_from(ACTS),
    output=st.sampled_from(HEADS),
    lam=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**16),
)
def test_manual_equals_autograd_property(sizes, n, hidden, output, lam, seed):
    if output == "softmax" and sizes[-1] < 2:
        sizes[-1] = 2
    manual, auto = twin_nets(sizes, hidden, output, torch.float64, seed=seed)
    X, Y = make_batch(manual, n, seed=seed)
    Jm, Ja = manual.cost(X, Y, lam), auto.cost(X, Y, lam)
    torch.testing.assert_close(Jm, Ja, rtol=1e-12, atol=1e-12)
    Jm.backward()
    Ja.backward()
    for pm, pa in zip(manual.thetas, auto.thetas):
        torch.testing.assert_close(pm.grad, pa.grad, rtol=1e-10, atol=1e-12)


def test_input_gradient_matches_autograd():
    manual, auto = twin_nets([4, 6, 3], "tanh", "softmax", torch.float64)
    X, Y = make_batch(manual, 7)
    grads = []
    for net in (manual, auto):
        x = X.clone().requires_grad_()
        net.cost(x, Y).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_only_input_gradient_skips_theta_gradients():
    """needs_input_grad gating: frozen Θ get no gradient, x still does."""
    manual, auto = twin_nets([4, 6, 5, 3], "sigmoid", "sigmoid", torch.float64)
    X, Y = make_batch(manual, 3)
    for net in (manual, auto):
        net.thetas.requires_grad_(False)
    x1, x2 = X.clone().requires_grad_(), X.clone().requires_grad_()
    manual.cost(x1, Y).backward()
    auto.cost(x2, Y).backward()
    assert all(t.grad is None for t in manual.thetas)
    torch.testing.assert_close(x1.grad, x2.grad)


def test_frozen_lower_layers():
    """Θ^(1) frozen: the recursion stops early, upper gradients unchanged."""
    manual, auto = twin_nets([4, 6, 5, 3], "relu", "identity", torch.float64)
    X, Y = make_batch(manual, 6)
    manual.thetas[0].requires_grad_(False)
    manual.cost(X, Y).backward()
    auto.cost(X, Y).backward()
    assert manual.thetas[0].grad is None
    for l in (1, 2):
        torch.testing.assert_close(manual.thetas[l].grad, auto.thetas[l].grad)


def test_nothing_saved_without_grad():
    net = ln.ThetaMLP([4, 6, 3])
    x = torch.randn(2, 4)
    with torch.no_grad():
        out = net(x)
    assert out.grad_fn is None
    out = ln.backprop.ThetaForward.apply(x, net.activation, False, *[t.detach() for t in net.thetas])
    assert len(out) == 1  # no hidden activations returned to be saved
    z = net.logits(x)
    saved = z.grad_fn.saved_tensors
    assert len(saved) == 1 + 2 + 2  # x (for the double-backward twin), [1, x], [1, a^(2)], Θ's
    assert saved[0] is x or saved[0].data_ptr() == x.data_ptr()
    torch.testing.assert_close(saved[1], torch.cat([torch.ones(2, 1), x], 1), rtol=0, atol=0)
    assert saved[2].shape == (2, 7) and bool((saved[2][:, 0] == 1).all())


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_batch_of_one(backprop):
    manual, auto = twin_nets([3, 4, 2], "sigmoid", "softmax", torch.float64)
    X, Y = make_batch(manual, 1)
    manual.cost(X, Y).backward()
    auto.cost(X, Y).backward()
    for pm, pa in zip(manual.thetas, auto.thetas):
        torch.testing.assert_close(pm.grad, pa.grad)


@pytest.mark.parametrize("hidden,output", list(itertools.product(ACTS, HEADS)))
def test_teaching_path_equals_backward(hidden, output):
    """ln.backpropagate's D^(l) (the slides' formulas) equals what J.backward() leaves in .grad."""
    net = ln.ThetaMLP([4, 5, 6, 3], hidden, output, generator=3, dtype=torch.float64)
    X, Y = make_batch(net, 8, seed=4)
    bp = ln.backpropagate(net, X, Y, lam=1.5)
    J = net.cost(X, Y, lam=1.5)
    J.backward()
    torch.testing.assert_close(bp.cost, J.detach())
    assert sorted(bp.delta) == [2, 3, 4] and sorted(bp.D) == [1, 2, 3]
    for l in (1, 2, 3):
        torch.testing.assert_close(bp.D[l], net.theta(l).grad, rtol=1e-10, atol=1e-12)
        assert bp.Delta[l].shape == net.theta(l).shape


def test_teaching_path_matches_per_example_loop():
    """The slide's loop: for i = 1..m: forward, δ^(L+1) = a − y, δ^(l) backwards, Δ += δ aᵀ."""
    net = ln.ThetaMLP([3, 4, 2], "sigmoid", "sigmoid", generator=5, dtype=torch.float64)
    X, Y = make_batch(net, 6, seed=6)
    T1, T2 = net.theta(1).detach(), net.theta(2).detach()
    Delta1, Delta2 = torch.zeros_like(T1), torch.zeros_like(T2)
    for i in range(6):
        a1 = torch.cat([torch.ones(1, dtype=X.dtype), X[i]])  # [1; x]
        a2 = torch.cat([torch.ones(1, dtype=X.dtype), torch.sigmoid(T1 @ a1)])
        a3 = torch.sigmoid(T2 @ a2)
        d3 = a3 - Y[i]
        d2 = (T2.T @ d3)[1:] * a2[1:] * (1 - a2[1:])
        Delta2 += torch.outer(d3, a2)
        Delta1 += torch.outer(d2, a1)
    bp = ln.backpropagate(net, X, Y)
    torch.testing.assert_close(bp.Delta[1], Delta1)
    torch.testing.assert_close(bp.Delta[2], Delta2)
    torch.testing.assert_close(bp.D[1], Delta1 / 6)


def test_gradient_check_passes_and_catches_a_wrong_backprop():
    net = ln.ThetaMLP([3, 5, 3], "sigmoid", "sigmoid", generator=0)
    X, Y = make_batch(net, 5, dtype=torch.float32)
    report = ln.gradient_check(net, X, Y, lam=1.0)
    assert report.passed and report.relative_difference < 1e-9
    assert [c.n_checked for c in report.layers] == [20, 18]
    assert "relative difference" in str(report) and "OK" in str(report)
    assert all(t.grad is None for t in net.thetas)  # the user's net is untouched

    wrong = ln.Activation("sigmoid", torch.sigmoid, lambda a: a)  # g' = a: a classic slip
    net.activation = wrong
    bad = ln.gradient_check(net, X, Y)
    assert not bad.passed and "FAILED" in str(bad)


def test_gradient_check_samples_big_nets():
    net = ln.ThetaMLP([60, 50, 10], generator=0)
    X, Y = make_batch(net, 4, dtype=torch.float32)
    report = ln.gradient_check(net, X, Y, max_entries_per_layer=30)
    assert [c.n_checked for c in report.layers] == [30, 30]
    assert report.passed


@pytest.mark.parametrize("output", HEADS)
def test_autocast_bf16_manual_matches_autograd(output):
    """Under autocast the module casts X and Θ for the Function; grads come back in float32."""
    manual, auto = twin_nets([6, 16, 8, 3], "tanh", output, torch.float32)
    X, Y = make_batch(manual, 32, dtype=torch.float32)
    for net in (manual, auto):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            J = net.cost(X, Y, lam=0.5)
        assert J.dtype == torch.float32  # the cost itself is evaluated in float32
        J.backward()
    for pm, pa in zip(manual.thetas, auto.thetas):
        assert pm.grad.dtype == torch.float32
        assert ((pm.grad - pa.grad).norm() / pa.grad.norm()) < 2e-2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert manual(X).dtype == torch.bfloat16


@pytest.mark.slow
def test_torch_compile_of_the_manual_cost():
    """The Functions trace under torch.compile and give the same gradients as autograd."""
    manual, auto = twin_nets([20, 32, 5], "tanh", "softmax", torch.float32)
    manual.validate_inputs = False
    X, Y = make_batch(manual, 64, dtype=torch.float32)
    compiled = torch.compile(lambda X, Y: manual.cost(X, Y, 0.1))
    compiled(X, Y).backward()
    auto.cost(X, Y, 0.1).backward()
    for pm, pa in zip(manual.thetas, auto.thetas):
        torch.testing.assert_close(pm.grad, pa.grad, rtol=1e-5, atol=1e-6)
    assert torch.compile(manual)(X).shape == (64, 5)
