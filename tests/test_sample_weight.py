"""Sample weights in J(Θ) = (1/Σw) Σ_i w_i cost_i + λ/(2Σw) Σ Θ² (bias column excluded), proved
three ways: gradcheck in float64 (the manual δ-recursion against numeric differences), the manual
backward against backprop="autograd", and scikit-learn's weighted MLP loss as an independent
reference. None means all ones: today's J, bitwise."""

import numpy as np
import pytest
import torch
from sklearn.neural_network import MLPClassifier

import lecturenn as ln
from lecturenn.backprop import ThetaCost

HEADS = [("sigmoid", 1), ("sigmoid", 3), ("softmax", 3), ("identity", 2)]


def _data(head, K, n=9, s=4, seed=0, index_targets=False):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, s, generator=gen, dtype=torch.float64)
    if head == "softmax":
        idx = torch.randint(0, K, (n,), generator=gen)
        Y = idx if index_targets else torch.nn.functional.one_hot(idx, K).double()
    elif head == "sigmoid":
        Y = torch.randint(0, 2, (n, K), generator=gen).double()
    else:
        Y = torch.randn(n, K, generator=gen, dtype=torch.float64)
    w = torch.rand(n, generator=gen, dtype=torch.float64) * 3
    return X, Y, w


def _net(head, K, backprop="manual", hidden="tanh"):
    return ln.ThetaMLP(
        [4, 5, K], hidden=hidden, output=head, backprop=backprop, generator=1, dtype=torch.float64
    )


@pytest.mark.parametrize("head,K", HEADS)
@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_no_weights_is_todays_J_bitwise(head, K, backprop):
    X, Y, _ = _data(head, K)
    net = _net(head, K, backprop)
    assert torch.equal(net.cost(X, Y, 0.3, sample_weight=None), net.cost(X, Y, 0.3))
    J1 = net.cost(X, Y, 0.3, sample_weight=torch.ones(X.shape[0], dtype=torch.float64))
    torch.testing.assert_close(J1, net.cost(X, Y, 0.3), rtol=1e-15, atol=0)


@pytest.mark.parametrize("head,K", HEADS)
def test_weighted_J_is_the_formula(head, K):
    X, Y, w = _data(head, K)
    net, lam = _net(head, K), 0.7
    costs = torch.stack([net.cost(X[i : i + 1], Y[i : i + 1]) for i in range(len(w))])  # cost_i
    penalty = sum(t[:, 1:].pow(2).sum() for t in net.thetas)
    expected = (w * costs).sum() / w.sum() + lam / (2 * w.sum()) * penalty
    torch.testing.assert_close(net.cost(X, Y, lam, sample_weight=w), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("head,K", HEADS)
def test_gradcheck_weighted_manual_backward(head, K):
    X, Y, w = _data(head, K, n=6)
    net = _net(head, K)
    Yp = net.head.prepare_targets(Y, 6, K, torch.float64, X.device)
    thetas = [t.detach().clone().requires_grad_() for t in net.thetas]
    X = X.clone().requires_grad_()

    def cost(x, *thetas):
        return ThetaCost.apply(x, Yp, w, net.activation, net.head, 0.7, True, *thetas)[0]

    assert torch.autograd.gradcheck(cost, (X, *thetas), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("head,K", [*HEADS, ("softmax-index", 3)])
@pytest.mark.parametrize("activation", ["sigmoid", "relu", "softplus"])
def test_weighted_manual_equals_autograd(head, K, activation):
    index = head == "softmax-index"
    head = "softmax" if index else head
    X, Y, w = _data(head, K, index_targets=index)
    grads, costs = [], []
    for backprop in ("manual", "autograd"):
        net = _net(head, K, backprop, activation)
        J = net.cost(X, Y, 0.4, sample_weight=w)
        J.backward()
        costs.append(J.detach())
        grads.append([t.grad for t in net.thetas])
    torch.testing.assert_close(costs[0], costs[1], rtol=1e-13, atol=0)
    for l, (a, b) in enumerate(zip(*grads), start=1):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13, msg=f"D^({l})")


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_integer_weights_equal_repeated_rows(backprop):
    X, Y, _ = _data("softmax", 3)
    counts = torch.tensor([1, 0, 2, 3, 1, 1, 0, 2, 1])
    net = _net("softmax", 3, backprop)
    J = net.cost(X, Y, 0.5, sample_weight=counts.double())
    J.backward()
    D = [t.grad.clone() for t in net.thetas]
    net.zero_grad()
    rows = torch.repeat_interleave(torch.arange(9), counts)
    J_rep = net.cost(X[rows], Y[rows], 0.5)
    J_rep.backward()
    torch.testing.assert_close(J, J_rep, rtol=1e-13, atol=0)
    for a, t in zip(D, net.thetas):
        torch.testing.assert_close(a, t.grad, rtol=1e-11, atol=1e-13)


def test_teaching_path_with_weights_matches_the_fast_path():
    X, Y, w = _data("sigmoid", 3)
    net = _net("sigmoid", 3)
    bp = ln.backpropagate(net, X, Y, lam=0.6, sample_weight=w)
    J = net.cost(X, Y, 0.6, sample_weight=w)
    J.backward()
    torch.testing.assert_close(bp.cost, J.detach(), rtol=1e-13, atol=0)
    for l in range(1, net.num_layers + 1):
        torch.testing.assert_close(bp.D[l], net.theta(l).grad, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize(
    "w,error,match",
    [
        (np.ones(8), ValueError, r"shape \(8,\); expected \(9,\)"),
        (np.ones((9, 1)), ValueError, r"expected \(9,\)"),
        ("abc", TypeError, "sample_weight"),
        (np.r_[np.ones(8), np.nan], ValueError, "NaN or inf"),
        (np.r_[np.ones(8), np.inf], ValueError, "NaN or inf"),
        (np.r_[np.ones(8), -1.0], ValueError, ">= 0, got -1.0 at row 8"),
        (np.zeros(9), ValueError, "sums to zero"),
    ],
)
def test_bad_weights_are_refused_before_any_gradient(w, error, match):
    X, Y, _ = _data("softmax", 3)
    net = _net("softmax", 3)
    with pytest.raises(error, match=match):
        net.cost(X, Y, sample_weight=w)
    with pytest.raises(error, match=match):
        ln.backpropagate(net, X, Y, sample_weight=w)
    assert all(t.grad is None for t in net.thetas)


def test_weights_as_lists_and_arrays():
    X, Y, w = _data("identity", 2)
    net = _net("identity", 2)
    J = net.cost(X, Y, sample_weight=w)
    assert torch.equal(net.cost(X, Y, sample_weight=w.tolist()), J)
    assert torch.equal(net.cost(X, Y, sample_weight=w.numpy()), J)


@pytest.mark.parametrize("multiclass", [True, False])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_weighted_cost_is_scikit_learns_weighted_loss(multiclass, alpha):
    """MLPClassifier(solver="lbfgs", alpha=α).fit(X, y, sample_weight=w).loss_ is our J with λ = α."""
    import sklearn

    if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) < (1, 7):
        pytest.skip("sample_weight in MLP fit needs scikit-learn >= 1.7")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    y = rng.integers(0, 3 if multiclass else 2, size=40)
    w = rng.uniform(0, 3, size=40)
    est = MLPClassifier((5,), activation="tanh", solver="lbfgs", alpha=alpha, max_iter=30, random_state=0)
    with pytest.warns(Warning):  # lbfgs stops at max_iter: fine, loss_ is J at the final Θ
        est.fit(X, y, sample_weight=w)
    net = ln.from_sklearn(est)
    net = net.to(torch.float64)
    Y = torch.as_tensor(y) if multiclass else torch.as_tensor(y, dtype=torch.float64)
    J = net.cost(torch.as_tensor(X), Y, lam=alpha, sample_weight=w)
    assert J.item() == pytest.approx(est.loss_, rel=1e-12, abs=1e-15)  # measured: <= 7e-16 relative
