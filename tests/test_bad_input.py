"""Every bad input gets a clear ValueError/TypeError naming the problem, and nothing is written.

Each check matches a regex on the message, so a vague error ("invalid input") fails the test.
After a failing ``net.cost(...)`` every ``net.thetas[i].grad`` is still None and Θ is unchanged.
"""

import math

import pytest
import torch

import lecturenn as ln

BACKPROPS = ("manual", "autograd")
HEADS = ("sigmoid", "softmax", "identity")
N, S1, K = 5, 3, 2  # rows, input units, outputs of the default test net [3, 4, 2]


def make_net(output="sigmoid", backprop="manual", sizes=(S1, 4, K), **kw):
    return ln.ThetaMLP(list(sizes), "sigmoid", output, backprop, generator=0, **kw)


def good_batch(net, n=N, seed=1):
    """A valid (X, Y): class indices for softmax, 0/1 for sigmoid, reals for identity."""
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


def one_hot(Y, k=K, dtype=torch.float32):
    return torch.nn.functional.one_hot(Y, k).to(dtype)


def snapshot(net):
    return [theta.detach().clone() for theta in net.thetas]


def assert_untouched(net, before):
    for l, (theta, old) in enumerate(zip(net.thetas, before), start=1):
        assert theta.grad is None, f"Θ^({l}).grad was written"
        assert torch.equal(theta.detach().isnan(), old.isnan())
        assert torch.equal(theta.detach().nan_to_num(), old.nan_to_num()), f"Θ^({l}) changed"


def assert_cost_raises(net, X, Y, lam, exc, match):
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        net.cost(X, Y, lam)
    assert_untouched(net, before)


def assert_backpropagate_raises(net, X, Y, lam, exc, match):
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        ln.backpropagate(net, X, Y, lam)
    assert_untouched(net, before)


# -- X -----------------------------------------------------------------------------------------
def _x_nan(X):
    X = X.clone()
    X[2, 1] = math.nan
    return X


def _x_inf(X):
    X = X.clone()
    X[0, 0] = math.inf
    return X


X_CASES = {
    "1-D": (lambda X: X[0], ValueError, r"X must be 2-D .*got shape \(3,\).*unsqueeze\(0\)"),
    "3-D": (lambda X: X.unsqueeze(0), ValueError, r"X must be 2-D .*got shape \(1, 5, 3\)"),
    "features": (
        lambda X: torch.cat([X, X[:, :1]], dim=1),
        ValueError,
        r"X has 4 features .*s_1 = 3",
    ),
    "zero-rows": (lambda X: X[:0], ValueError, r"X has no rows"),
    "integer": (
        lambda X: X.round().long(),
        TypeError,
        r"X must hold floating-point numbers, got dtype torch\.int64",
    ),
    "float64-on-float32": (
        lambda X: X.double(),
        TypeError,
        r"X has dtype torch\.float64 but Θ is torch\.float32",
    ),
    "nan": (_x_nan, ValueError, r"X contains NaN or inf .*first at row 2, column 1"),
    "inf": (_x_inf, ValueError, r"X contains NaN or inf .*first at row 0, column 0"),
}


@pytest.mark.parametrize("case", sorted(X_CASES))
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_bad_X_cost(case, backprop):
    bad, exc, match = X_CASES[case]
    net = make_net("sigmoid", backprop)
    X, Y = good_batch(net)
    X = bad(X)
    if case == "zero-rows":
        Y = Y[:0]
    assert_cost_raises(net, X, Y, 0.1, exc, match)


@pytest.mark.parametrize("case", sorted(X_CASES))
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_bad_X_forward(case, backprop):
    bad, exc, match = X_CASES[case]
    net = make_net("softmax", backprop)
    X, _ = good_batch(net)
    with pytest.raises(exc, match=match):
        net(bad(X))


@pytest.mark.parametrize("case", sorted(X_CASES))
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_bad_X_backpropagate(case, backprop):
    bad, exc, match = X_CASES[case]
    net = make_net("identity", backprop)
    X, Y = good_batch(net)
    X = bad(X)
    if case == "zero-rows":
        Y = Y[:0]
    assert_backpropagate_raises(net, X, Y, 0.1, exc, match)


def saturating_net(backprop):
    """[1, 1, 1] sigmoid net where x = inf drives the hidden unit to exactly 1: h stays finite."""
    net = ln.ThetaMLP([1, 1, 1], "sigmoid", "sigmoid", backprop)
    with torch.no_grad():
        net.thetas[0].copy_(torch.tensor([[0.0, 1.0]]))
        net.thetas[1].copy_(torch.tensor([[0.5, -1.0]]))
    X = torch.tensor([[math.inf], [0.5]])
    Y = torch.tensor([[1.0], [0.0]])
    return net, X, Y


@pytest.mark.parametrize("backprop", BACKPROPS)
def test_inf_saturating_a_sigmoid_unit_is_still_caught(backprop):
    net, X, Y = saturating_net(backprop)
    net.validate_inputs = False  # precondition: without the check, everything looks finite
    assert torch.isfinite(net(X)).all()
    assert torch.isfinite(net.cost(X, Y))
    net.validate_inputs = True
    match = r"X contains NaN or inf .*first at row 0, column 0"
    assert_cost_raises(net, X, Y, 0.0, ValueError, match)
    with pytest.raises(ValueError, match=match):
        net(X)
    assert_backpropagate_raises(net, X, Y, 0.0, ValueError, match)


# -- Y -----------------------------------------------------------------------------------------
def _with_value(Y, value, head):
    """Y as floats (one-hot for softmax) with ``value`` planted at [1, 0]."""
    Y = one_hot(Y) if head == "softmax" else Y.clone()
    Y[1, 0] = value
    return Y


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_nonfinite_Y(value, head, backprop):
    net = make_net(head, backprop)
    X, Y = good_batch(net)
    Y = _with_value(Y, value, head)
    assert_cost_raises(net, X, Y, 0.1, ValueError, r"Y contains NaN or inf")
    assert_backpropagate_raises(net, X, Y, 0.1, ValueError, r"Y contains NaN or inf")


Y_SHAPE_CASES = [
    ("sigmoid", lambda Y: torch.cat([Y, Y[:, :1]], 1), r"Y has shape \(5, 3\); the sigmoid head"),
    ("sigmoid", lambda Y: Y[:, 0], r"Y has shape \(5,\); the sigmoid head expects .*\(5, 2\)"),
    ("sigmoid", lambda Y: Y[:4], r"Y has shape \(4, 2\); the sigmoid head expects .*\(5, 2\)"),
    ("softmax", lambda Y: Y[:4], r"Y has 4 class indices but X has 5 rows"),
    ("softmax", lambda Y: one_hot(Y, 3), r"Y has shape \(5, 3\); the softmax head .*\(5, 2\)"),
    ("softmax", lambda Y: Y.unsqueeze(1), r"Y has shape \(5, 1\); the softmax head .*\(5, 2\)"),
    ("identity", lambda Y: Y[:, :1], r"Y has shape \(5, 1\); the identity head .*\(5, 2\)"),
    ("identity", lambda Y: Y.T, r"Y has shape \(2, 5\); the identity head .*\(5, 2\)"),
]


@pytest.mark.parametrize("head,reshape,match", Y_SHAPE_CASES)
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_Y_wrong_shape(head, reshape, match, backprop):
    net = make_net(head, backprop)
    X, Y = good_batch(net)
    assert_cost_raises(net, X, reshape(Y), 0.0, ValueError, match)
    assert_backpropagate_raises(net, X, reshape(Y), 0.0, ValueError, match)


@pytest.mark.parametrize("label", [-1, K], ids=["negative", "K"])
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_softmax_class_index_out_of_range(label, backprop):
    net = make_net("softmax", backprop)
    X, Y = good_batch(net)
    Y[3] = label
    match = rf"class index out of range.*K = {K} outputs.*\[0, {K - 1}\]"
    assert_cost_raises(net, X, Y, 0.0, ValueError, match)
    assert_backpropagate_raises(net, X, Y, 0.0, ValueError, match)


@pytest.mark.parametrize("row", [[1.0, 1.0], [0.0, 0.0], [0.5, 0.5]], ids=["two-ones", "all-zero", "halves"])
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_softmax_one_hot_rows_must_sum_to_one(row, backprop):
    net = make_net("softmax", backprop)
    X, Y = good_batch(net)
    Y = one_hot(Y)
    Y[2] = torch.tensor(row)
    match = r"softmax head needs one-hot rows .*do not sum to 1"
    assert_cost_raises(net, X, Y, 0.0, ValueError, match)
    assert_backpropagate_raises(net, X, Y, 0.0, ValueError, match)


@pytest.mark.parametrize("value", [2.0, 0.5, -1.0])
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_sigmoid_targets_must_be_0_or_1(value, backprop):
    net = make_net("sigmoid", backprop)
    X, Y = good_batch(net)
    Y[1, 1] = value
    match = rf"sigmoid head needs 0/1 targets.*{value}"
    assert_cost_raises(net, X, Y, 0.0, ValueError, match)
    assert_backpropagate_raises(net, X, Y, 0.0, ValueError, match)


@pytest.mark.parametrize("backprop", BACKPROPS)
def test_sigmoid_single_output_bad_targets(backprop):
    """K = 1 accepts Y of shape (n,), but its values are still checked."""
    net = make_net("sigmoid", backprop, sizes=(S1, 4, 1))
    X, _ = good_batch(net)
    Y = torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0])
    assert_cost_raises(net, X, Y, 0.0, ValueError, r"sigmoid head needs 0/1 targets")


# -- λ -----------------------------------------------------------------------------------------
LAM_CASES = [
    (-0.1, ValueError, r"lam \(λ\) must be a finite number >= 0, got -0\.1"),
    (math.nan, ValueError, r"lam \(λ\) must be a finite number >= 0, got nan"),
    (math.inf, ValueError, r"lam \(λ\) must be a finite number >= 0, got inf"),
    ("0.1", TypeError, r"lam \(λ\) must be a finite number >= 0, got '0\.1'"),  # check_lam's wording
    (None, TypeError, r"lam \(λ\) must be a finite number >= 0, got None"),
]


@pytest.mark.parametrize("lam,exc,match", LAM_CASES)
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_bad_lam(lam, exc, match, backprop):
    net = make_net("sigmoid", backprop)
    X, Y = good_batch(net)
    assert_cost_raises(net, X, Y, lam, exc, match)
    assert_backpropagate_raises(net, X, Y, lam, exc, match)


# -- construction ------------------------------------------------------------------------------
CONSTRUCTOR_CASES = {
    "hidden": ({"hidden": "sigmoidd"}, ValueError, r"unknown activation 'sigmoidd'; choose one of"),
    "output": ({"output": "softmaxx"}, ValueError, r"unknown output head 'softmaxx'; choose one"),
    "backprop": ({"backprop": "numeric"}, ValueError, r"unknown backprop 'numeric'.*'manual'"),
    "init": ({"init": "kaiming"}, ValueError, r"unknown init 'kaiming'; choose one of .*'glorot'"),
    "one-layer": ({"sizes": [3]}, ValueError, r"sizes needs at least 2 layers"),
    "empty": ({"sizes": []}, ValueError, r"sizes needs at least 2 layers"),
    "zero-width": ({"sizes": [3, 0, 2]}, ValueError, r"sizes\[1\] .*must be an int >= 1, got 0"),
    "negative": ({"sizes": [3, -4, 2]}, ValueError, r"sizes\[1\] .*must be an int >= 1, got -4"),
    "non-int": ({"sizes": [3, 2.5, 2]}, (ValueError, TypeError), r"sizes\[1\] .*int.*2\.5"),
    "string": ({"sizes": "3,4,2"}, TypeError, r"sizes must be a list of layer widths"),
    "softmax-K1": (
        {"sizes": [3, 4, 1], "output": "softmax"},
        ValueError,
        r"softmax head needs at least 2 outputs",
    ),
}


@pytest.mark.parametrize("case", sorted(CONSTRUCTOR_CASES))
def test_bad_constructor_arguments(case):
    kwargs, exc, match = CONSTRUCTOR_CASES[case]
    kwargs = {"sizes": [3, 4, 2], **kwargs}
    with pytest.raises(exc, match=match):
        ln.ThetaMLP(**kwargs)


def test_theta_index_out_of_range():
    net = make_net()  # L = 2
    for l in (0, 3, -1):
        with pytest.raises(IndexError, match=r"Θ\^\(l\) exists for l = 1\.\.2"):
            net.theta(l)


# -- diverged Θ --------------------------------------------------------------------------------
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_nan_theta_reports_divergence(head, backprop):
    net = make_net(head, backprop)
    X, Y = good_batch(net)
    with torch.no_grad():
        net.thetas[0][1, 2] = math.nan
    assert_cost_raises(net, X, Y, 0.0, FloatingPointError, r"Θ\^\(1\) contains NaN.*diverged")
    assert_backpropagate_raises(net, X, Y, 0.0, FloatingPointError, r"diverged")


# -- gaps found while writing these tests, now fixed --------------------------------------------
@pytest.mark.parametrize("backprop", BACKPROPS)
def test_inf_theta_reports_divergence_at_lam_zero(backprop):
    net = make_net("sigmoid", backprop)
    X, Y = good_batch(net)  # no zero in X, so inf * x is ±inf, never NaN
    with torch.no_grad():
        net.thetas[0][0, 1] = math.inf
    assert_backpropagate_raises(net, X, Y, 0.0, FloatingPointError, r"diverged")
    assert_cost_raises(net, X, Y, 0.0, FloatingPointError, r"Θ\^\(1\) contains NaN or inf")


def test_Y_none():
    net = make_net()
    X, _ = good_batch(net)
    assert_cost_raises(net, X, None, 0.0, (TypeError, ValueError), r"Y must be")


def test_Y_string():
    net = make_net()
    X, _ = good_batch(net)
    assert_cost_raises(net, X, "0101", 0.0, TypeError, r"Y must be")


def test_infinite_epsilon():
    with pytest.raises(ValueError, match=r"epsilon"):
        ln.ThetaMLP([3, 4, 2], init="epsilon", epsilon=math.inf)


def test_theta_linear_dtype_mismatch():
    layer = ln.ThetaLinear(3, 2, "sigmoid", generator=0)
    with pytest.raises(TypeError, match=r"dtype"):
        layer(torch.zeros(4, 3, dtype=torch.float64))


def test_propagate_rejects_nan():
    net = make_net()
    X, _ = good_batch(net)
    X[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"X contains NaN"):
        net.propagate(X)


def test_numpy_integer_sizes_are_accepted():
    import numpy as np

    net = ln.ThetaMLP([np.int64(2), 3, 1])
    assert net.sizes == [2, 3, 1] and all(type(s) is int for s in net.sizes)
