"""ThetaMLP's public API as a user sees it: Θ shapes, forward/propagate, init, dtypes, cost J."""

import math

import pytest
import torch
from torch import nn

import lecturenn as ln

BACKPROPS = ("manual", "autograd")
HEADS = ("sigmoid", "softmax", "identity")


def make_batch(net, n=6, seed=1):
    gen = torch.Generator().manual_seed(seed)
    dtype = net.thetas[0].dtype
    X = torch.randn(n, net.sizes[0], generator=gen, dtype=dtype)
    k = net.sizes[-1]
    if net.head.name == "softmax":
        Y = torch.randint(0, k, (n,), generator=gen)
    elif net.head.name == "sigmoid":
        Y = torch.randint(0, 2, (n, k), generator=gen).to(dtype)
    else:
        Y = torch.randn(n, k, generator=gen, dtype=dtype)
    return X, Y


# -- structure ---------------------------------------------------------------------------------
def test_thetas_shapes_and_indexing():
    net = ln.ThetaMLP([400, 25, 10])
    assert isinstance(net.thetas, nn.ParameterList)
    assert [tuple(t.shape) for t in net.thetas] == [(25, 401), (10, 26)]
    assert all(isinstance(t, nn.Parameter) for t in net.thetas)
    assert net.num_layers == 2
    assert net.theta(1) is net.thetas[0]
    assert net.theta(2) is net.thetas[1]
    assert [p is t for p, t in zip(net.parameters(), net.thetas)] == [True, True]


def test_repr_shows_every_theta(capsys):
    net = ln.ThetaMLP([400, 25, 10], hidden="tanh", output="softmax")
    print(net)
    for text in (repr(net), capsys.readouterr().out):
        assert "Θ^(1): (25, 401)" in text
        assert "Θ^(2): (10, 26)" in text
        assert "tanh" in text and "softmax" in text


# -- forward propagation -----------------------------------------------------------------------
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_forward_shapes_and_ranges(head, backprop):
    net = ln.ThetaMLP([4, 5, 3], output=head, backprop=backprop, generator=0)
    X, _ = make_batch(net, n=7)
    h = net(X)
    assert h.shape == (7, 3) and h.dtype == torch.float32
    if head == "softmax":
        torch.testing.assert_close(h.sum(dim=1), torch.ones(7))
        assert (h > 0).all()
    elif head == "sigmoid":
        assert ((h > 0) & (h < 1)).all()
    single = net(X[:1])  # one example is a (1, s_1) batch
    torch.testing.assert_close(single, h[:1])


@pytest.mark.parametrize("backprop", BACKPROPS)
def test_propagate_layers(backprop):
    sizes = [4, 5, 6, 3]
    net = ln.ThetaMLP(sizes, hidden="tanh", output="softmax", backprop=backprop, generator=0)
    X, _ = make_batch(net, n=7)
    L = net.num_layers
    fp = net.propagate(X)
    assert isinstance(fp, ln.Propagation)
    assert sorted(fp.a) == list(range(1, L + 2))
    assert sorted(fp.z) == list(range(2, L + 2))
    for l in range(1, L + 2):
        assert fp.a[l].shape == (7, sizes[l - 1])
    for l in range(2, L + 2):
        assert fp.z[l].shape == (7, sizes[l - 1])
    assert torch.equal(fp.a[1], X)
    for l in range(2, L + 1):  # hidden layers: a^(l) = g(z^(l)), z^(l+1) = Θ^(l) [1; a^(l)]
        torch.testing.assert_close(fp.a[l], torch.tanh(fp.z[l]))
    for l in range(1, L + 1):
        theta = net.theta(l)
        torch.testing.assert_close(fp.z[l + 1], theta[:, 0] + fp.a[l] @ theta[:, 1:].T)
    torch.testing.assert_close(fp.a[L + 1], net(X))
    assert fp.h is fp.a[L + 1]


# -- initialisation ----------------------------------------------------------------------------
def test_glorot_default_bounds():
    net = ln.ThetaMLP([400, 25, 10], generator=0)
    for theta in net.thetas:
        s_out, s_in = theta.shape[0], theta.shape[1] - 1
        bound = math.sqrt(6) / math.sqrt(s_in + s_out)
        assert theta.abs().max() <= bound
        assert theta.abs().max() > 0.9 * bound  # fills the interval, not all zero
        assert (theta != 0).float().mean() > 0.99


def test_epsilon_init_bounds():
    for eps in (0.12, 0.05):
        kwargs = {} if eps == 0.12 else {"epsilon": eps}
        net = ln.ThetaMLP([400, 25, 10], init="epsilon", generator=0, **kwargs)
        for theta in net.thetas:
            assert theta.abs().max() <= eps
            assert theta.abs().max() > 0.9 * eps


def test_generator_seed_reproducible():
    a = ln.ThetaMLP([5, 4, 3], generator=7)
    b = ln.ThetaMLP([5, 4, 3], generator=7)
    c = ln.ThetaMLP([5, 4, 3], generator=8)
    d = ln.ThetaMLP([5, 4, 3], generator=torch.Generator().manual_seed(7))
    for ta, tb, tc, td in zip(a.thetas, b.thetas, c.thetas, d.thetas):
        assert torch.equal(ta, tb)
        assert torch.equal(ta, td)
        assert not torch.equal(ta, tc)


def test_zeros_init():
    net = ln.ThetaMLP([5, 4, 3], init="zeros")
    assert all(torch.equal(t, torch.zeros_like(t)) for t in net.thetas)


def _train_xor(net, steps=50, lr=2.0):
    """Plain gradient descent on XOR-like data (exact XOR with Θ = 0 is a fixed point: h = ½)."""
    X = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1], [0.9, 0.2]], dtype=torch.float64)
    Y = torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0]], dtype=torch.float64)
    for _ in range(steps):
        net.zero_grad()
        J = net.cost(X, Y)
        J.backward()
        with torch.no_grad():
            for theta in net.thetas:
                theta -= lr * theta.grad
    return net


@pytest.mark.parametrize("backprop", BACKPROPS)
def test_zeros_init_keeps_hidden_units_identical(backprop):
    """The lecture's warning: with Θ = 0 every hidden unit gets the same update, forever."""
    net = ln.ThetaMLP([2, 3, 1], backprop=backprop, init="zeros", dtype=torch.float64)
    theta1 = _train_xor(net).theta(1).detach()
    assert theta1.abs().max() > 1e-3  # it did train
    for i in range(1, 3):
        torch.testing.assert_close(theta1[i], theta1[0], rtol=0, atol=1e-12)
    out = net.theta(2).detach()[0, 1:]  # and the outgoing weights stay equal too
    torch.testing.assert_close(out, out[:1].expand(3), rtol=0, atol=1e-12)


@pytest.mark.parametrize("backprop", BACKPROPS)
def test_random_init_breaks_symmetry(backprop):
    net = ln.ThetaMLP([2, 3, 1], backprop=backprop, generator=0, dtype=torch.float64)
    theta1 = _train_xor(net).theta(1).detach()
    for i in range(3):
        for j in range(i + 1, 3):
            assert (theta1[i] - theta1[j]).abs().max() > 1e-2


# -- dtypes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_float64_net(head, backprop):
    net = ln.ThetaMLP([4, 5, 3], output=head, backprop=backprop, dtype=torch.float64, generator=0)
    assert all(t.dtype == torch.float64 for t in net.thetas)
    X, Y = make_batch(net)
    assert net(X).dtype == torch.float64
    J = net.cost(X, Y, 0.1)
    assert J.dtype == torch.float64 and J.ndim == 0
    J.backward()
    assert all(t.grad.dtype == torch.float64 for t in net.thetas)


def test_double_converts_the_net():
    net = ln.ThetaMLP([4, 5, 3], generator=0)
    X, Y = make_batch(net)
    h32 = net(X)
    assert net.double() is net
    assert all(t.dtype == torch.float64 for t in net.thetas)
    h64 = net(X.double())
    assert h64.dtype == torch.float64
    torch.testing.assert_close(h64.float(), h32)
    net.cost(X.double(), Y).backward()
    assert all(t.grad.dtype == torch.float64 for t in net.thetas)


# -- the cost J(Θ) -----------------------------------------------------------------------------
def naive_cost(net, X, Y, lam):
    """design.md §2, straight from h = net(X) (Y already in (n, K) form)."""
    h = net(X)
    n = X.shape[0]
    if net.head.name == "sigmoid":
        data = -(Y * h.log() + (1 - Y) * (1 - h).log()).sum() / n
    elif net.head.name == "softmax":
        data = -(Y * h.log()).sum() / n
    else:
        data = ((Y - h) ** 2).sum() / n
    R = lam / (2 * n) * sum((theta[:, 1:] ** 2).sum() for theta in net.thetas)
    return data + R


@pytest.mark.parametrize("lam", [0.0, 0.7])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_cost_matches_design_formula(lam, head, backprop):
    net = ln.ThetaMLP([4, 5, 3], output=head, backprop=backprop, dtype=torch.float64, generator=2)
    with torch.no_grad():  # a large bias column: counting it in R would change J visibly
        for theta in net.thetas:
            theta[:, 0] = 3.0
    X, Y = make_batch(net)
    if head == "softmax":
        Y = nn.functional.one_hot(Y, 3).double()
    J = net.cost(X, Y, lam)
    with torch.no_grad():
        expected = naive_cost(net, X, Y, lam)
        torch.testing.assert_close(J.detach(), expected, rtol=1e-12, atol=1e-12)
        if lam:
            n = X.shape[0]
            bias_sq = sum((theta[:, 0] ** 2).sum() for theta in net.thetas)
            with_bias = expected + lam / (2 * n) * bias_sq
            assert (J - with_bias).abs() > 0.1  # the bias column is not regularised


@pytest.mark.parametrize("backprop", BACKPROPS)
def test_softmax_indices_equal_one_hot(backprop):
    def run(Y):
        net = ln.ThetaMLP([4, 5, 3], output="softmax", backprop=backprop, generator=3)
        J = net.cost(X, Y, 0.2)
        J.backward()
        return J.detach(), [t.grad for t in net.thetas]

    X, idx = make_batch(ln.ThetaMLP([4, 5, 3], output="softmax"), n=8)
    J_idx, g_idx = run(idx)
    J_hot, g_hot = run(nn.functional.one_hot(idx, 3).float())
    torch.testing.assert_close(J_idx, J_hot)
    for a, b in zip(g_idx, g_hot):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backprop", BACKPROPS)
def test_sigmoid_cost_finite_for_saturated_logits(backprop):
    """z = ±200: h rounds to exactly 0/1 in float32, yet J is finite and equals float64's."""
    X = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]])
    Y = torch.tensor([[1.0], [1.0], [0.0], [0.0]])  # two right, two wrong by 200 nats each
    costs = {}
    for dtype in (torch.float32, torch.float64):
        net = ln.ThetaMLP([1, 1], output="sigmoid", backprop=backprop, dtype=dtype)
        with torch.no_grad():
            net.theta(1).copy_(torch.tensor([[0.0, 200.0]]))
        if dtype == torch.float32:
            assert set(net(X).flatten().tolist()) == {0.0, 1.0}  # the naive formula gives inf
        J = net.cost(X.to(dtype), Y.to(dtype))
        J.backward()
        assert torch.isfinite(J) and torch.isfinite(net.theta(1).grad).all()
        costs[dtype] = J.item()
    assert costs[torch.float64] == pytest.approx(100.0)
    assert costs[torch.float32] == pytest.approx(costs[torch.float64], rel=1e-6)


# -- persistence and the single layer ----------------------------------------------------------
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_state_dict_round_trip(backprop):
    kw = {"hidden": "relu", "output": "softmax", "backprop": backprop}
    a = ln.ThetaMLP([4, 6, 3], generator=0, **kw)
    b = ln.ThetaMLP([4, 6, 3], generator=1, **kw)
    X, _ = make_batch(a)
    assert not torch.equal(a(X), b(X))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(X), b(X))
    for ta, tb in zip(a.thetas, b.thetas):
        assert torch.equal(ta, tb) and ta is not tb


def test_theta_linear():
    layer = ln.ThetaLinear(3, 2, "sigmoid", generator=0)
    assert tuple(layer.theta.shape) == (2, 4)
    assert isinstance(layer.theta, nn.Parameter)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(4))
    theta = layer.theta.detach()
    expected = torch.sigmoid(theta[:, 0] + x @ theta[:, 1:].T)
    out = layer(x)
    assert out.shape == (5, 2)
    torch.testing.assert_close(out, expected)
    assert "(2, 4)" in repr(layer)


def test_pickle_and_torch_save_round_trip():
    import io
    import pickle

    net = ln.ThetaMLP([3, 4, 2], "tanh", "softmax", generator=0)
    x = torch.randn(5, 3)
    again = pickle.loads(pickle.dumps(net))
    assert torch.equal(net(x), again(x)) and again.activation is ln.ACTIVATIONS["tanh"]
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    assert torch.equal(net(x), torch.load(buffer, weights_only=False)(x))
