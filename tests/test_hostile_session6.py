"""The hostile round of session 6 (issue 12's closing checks): the low-level δ-recursion entry point
and its Workspace refuse what would silently give wrong numbers, and non-finite costs name their
cause (the weights' sum, the penalty, the output) instead of always blaming the output."""

import numpy as np
import pytest
import torch

import lecturenn as ln
from lecturenn.backprop import Workspace, cost_and_gradient
from lecturenn.regularization import batch_lam


def _setup():
    g = torch.Generator().manual_seed(0)
    net = ln.ThetaMLP([3, 4, 3], "tanh", "softmax", dtype=torch.float64, generator=0)
    X = torch.randn(6, 3, generator=g, dtype=torch.float64)
    Y = torch.nn.functional.one_hot(torch.randint(0, 3, (6,), generator=g), 3).double()
    return net, X, Y, [t.detach() for t in net.thetas]


@pytest.mark.parametrize("lam", [-1.0, float("nan"), float("inf")])
def test_cost_and_gradient_checks_lambda(lam):
    net, X, Y, thetas = _setup()
    with pytest.raises(ValueError, match="lam"):
        cost_and_gradient(X, Y, thetas, net.activation, net.head, lam)


def test_cost_and_gradient_refuses_empty_batches_bad_weights_and_takes_names():
    net, X, Y, thetas = _setup()
    with pytest.raises(ValueError, match="no rows"):
        cost_and_gradient(X[:0], Y[:0], thetas, net.activation, net.head, 0.0)
    with pytest.raises(ValueError, match=r"shape \(6, 1\); expected \(6,\)"):
        cost_and_gradient(X, Y, thetas, net.activation, net.head, 0.0, weight=torch.ones(6, 1))
    J, _ = cost_and_gradient(X, Y, thetas, "tanh", "softmax", 0.5)  # names are looked up
    torch.testing.assert_close(J, net.cost(X, Y, 0.5).detach())


def test_workspace_must_be_built_on_the_thetas_used():
    net, X, Y, thetas = _setup()
    ws = Workspace(thetas, [torch.empty_like(t) for t in thetas])
    X1 = torch.cat([torch.ones(6, 1, dtype=X.dtype), X], 1)
    other = [2 * t for t in thetas]
    with pytest.raises(ValueError, match="not the tensors the workspace was built on"):
        cost_and_gradient(X1, Y, other, net.activation, net.head, 0.5, workspace=ws)
    J, _ = cost_and_gradient(X1, Y, thetas, net.activation, net.head, 0.5, workspace=ws)
    torch.testing.assert_close(J, net.cost(X, Y, 0.5).detach())


def test_workspace_checks_its_tensors_once():
    _, _, _, thetas = _setup()
    with pytest.raises(ValueError, match="D\\^\\(1\\) must be a contiguous tensor of Θ\\^\\(1\\)'s shape"):
        Workspace(thetas, [torch.zeros(2, 2)] * 2)
    with pytest.raises(ValueError, match="not require grad"):
        Workspace([t.clone().requires_grad_() for t in thetas], [torch.empty_like(t) for t in thetas])
    # flat=(θ, d) whose layers are not views of θ and d: the ridge term would land elsewhere
    theta = torch.cat([t.reshape(-1) for t in thetas])
    d = torch.zeros_like(theta)
    with pytest.raises(ValueError, match="not the next contiguous view of the 1-D θ"):
        Workspace(thetas, [torch.empty_like(t) for t in thetas], flat=(theta, d))
    views, grads, offset = [], [], 0
    for t in thetas:
        views.append(theta[offset : offset + t.numel()].view(t.shape))
        grads.append(d[offset : offset + t.numel()].view(t.shape))
        offset += t.numel()
    with pytest.raises(ValueError, match="not the next contiguous view of the 1-D θ"):
        Workspace(views[::-1], grads[::-1], flat=(theta, d))  # layers out of order
    Workspace(views, grads, flat=(theta, d))  # the right layout is accepted


@pytest.mark.parametrize(
    "args,match",
    [((-1.0, 5, 10), "lam"), ((1.0, 5, float("nan")), "total_weight"), ((1.0, -1, 10), "batch_weight"),
     ((1.0, 5, 0), "must be > 0")],
)  # fmt: skip
def test_batch_lam_checks_its_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        batch_lam(*args)


def test_non_finite_cost_names_its_cause():
    net = ln.ThetaMLP([4, 5, 3], "tanh", "softmax", generator=0)
    X = torch.randn(150, 4)
    y = torch.randint(0, 3, (150,))
    with pytest.raises(FloatingPointError, match="weights' sum Σw overflows torch.float32"):
        net.cost(X, y, sample_weight=torch.full((150,), 3e38))
    with pytest.raises(FloatingPointError, match="penalty λ/\\(2W\\) ΣΘ² overflows torch.float32"):
        net.cost(X, y, lam=1e300)
    with pytest.raises(FloatingPointError, match="the output overflowed"):
        big = ln.ThetaMLP([4, 3], "tanh", "identity", generator=0)
        with torch.no_grad():
            big.thetas[0].fill_(1e30)
        big.cost(torch.full((2, 4), 1e10), torch.zeros(2, 3))


def test_weight_messages_do_not_claim_scaling_keeps_j():
    """With λ > 0, scaling the weights changes the penalty's share: the message says the data term."""
    net = ln.ThetaMLP([4, 3], "tanh", "softmax", generator=0)
    with pytest.raises(ValueError, match="keeps the data term of J"):
        net.cost(torch.randn(5, 4), torch.randint(0, 3, (5,)), sample_weight=torch.zeros(5))


def test_estimator_alpha_beyond_the_dtype_is_refused():
    from lecturenn.estimators import ThetaMLPClassifier

    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(ValueError, match="alpha must be at most 3.4e\\+38, the largest float32"):
        ThetaMLPClassifier((3,), alpha=1e39).fit(X, y)
    ThetaMLPClassifier((3,), alpha=1e39, dtype="float64", max_iter=2).fit(X, y)  # float64 holds it
