"""What one training step costs in aten ops (≈ kernel launches), counted with torch.profiler on the CPU.

A step at the lecture's sizes is launch-bound on a GPU and Python/dispatch-bound on a CPU, so the
number of aten ops is the cost that can creep back unnoticed. The ceilings below are the counts
measured when they were written: a change that adds an op to the step fails here and must either
be justified (raise the ceiling, saying why in the commit) or be removed.
"""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import lecturenn as ln
from lecturenn.autograd_support import apply_function
from lecturenn.backprop import ThetaCost, ThetaForward

ZERO_FILLS = {"aten::zeros", "aten::zero_", "aten::fill_", "aten::zeros_like"}


def _net(sizes, backprop="manual", hidden="sigmoid", output="softmax", dtype=torch.float32):
    return ln.ThetaMLP(sizes, hidden, output, backprop, generator=0, dtype=dtype)


def _batch(net, n, seed=1, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, net.sizes[0], generator=gen, dtype=dtype)
    K = net.sizes[-1]
    if net.head.name == "softmax":
        return X, torch.randint(0, K, (n,), generator=gen)
    if net.head.name == "sigmoid":
        return X, torch.randint(0, 2, (n, K), generator=gen).to(dtype)
    return X, torch.randn(n, K, generator=gen, dtype=dtype)


def _events(fn):
    """Run ``fn`` once under the CPU profiler; its events (after two unprofiled warm-up calls)."""
    fn(), fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.events()


def _direct_aten_children(events, node_name):
    """Names of the aten ops a backward node (e.g. ``ThetaCostBackward``) calls itself."""
    names = []
    for e in events:
        if e.name == node_name:
            names += [c.name for c in e.cpu_children if c.name.startswith("aten::")]
    return names


# -- ctx.set_materialize_grads(False): the Functions' extra outputs cost nothing in backward ---------
class _MaterializingCost(ThetaCost):
    """ThetaCost as it was before: autograd zero-fills a gradient for each unused extra output."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        ThetaCost.setup_context(ctx, inputs, output)
        ctx.set_materialize_grads(True)


class _MaterializingForward(ThetaForward):
    @staticmethod
    def setup_context(ctx, inputs, output):
        ThetaForward.setup_context(ctx, inputs, output)
        ctx.set_materialize_grads(True)


def _grads(function, args, thetas, X, pick):
    for t in (X, *thetas):
        t.grad = None
    pick(apply_function(function, *args, *thetas)).backward()
    return [X.grad.clone(), *(t.grad.clone() for t in thetas)]


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_unmaterialized_extras_give_bitwise_equal_gradients(output, lam):
    """∂J/∂x and ∂J/∂Θ^(l) are bitwise those of the same Function with zero-filled extra gradients,
    for ThetaCost (J) and ThetaForward (a function of z^(L+1)), and equal autograd's to rounding."""
    net = _net([5, 7, 6, 3], output=output, dtype=torch.float64)
    X, Y = _batch(net, 11, dtype=torch.float64)
    X.requires_grad_()
    thetas = [t.detach().clone().requires_grad_() for t in net.thetas]
    Yp = net.head.prepare_targets(Y, 11, 3, X.dtype, X.device)
    cost_args = (X, Yp, None, net.activation, net.head, lam, True)
    new = _grads(ThetaCost, cost_args, thetas, X, lambda out: out[0])
    old = _grads(_MaterializingCost, cost_args, thetas, X, lambda out: out[0])
    for a, b in zip(new, old):
        assert torch.equal(a, b)

    fwd_args = (X, net.activation, True)
    weights = torch.linspace(-1, 1, 33, dtype=torch.float64).view(11, 3)  # Σ w ⊙ z: a generic grad_z
    new = _grads(ThetaForward, fwd_args, thetas, X, lambda out: (out[0] * weights).sum())
    old = _grads(_MaterializingForward, fwd_args, thetas, X, lambda out: (out[0] * weights).sum())
    for a, b in zip(new, old):
        assert torch.equal(a, b)

    auto = ln.ThetaMLP([5, 7, 6, 3], "sigmoid", output, "autograd", dtype=torch.float64)
    auto.load_state_dict(net.state_dict())
    auto.cost(X.detach(), Y, lam).backward()
    net.cost(X.detach(), Y, lam).backward()
    for a, b in zip(net.thetas, auto.thetas):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sizes", [[6, 5, 3], [6, 5, 4, 3]])
def test_backward_makes_no_zero_gradients_for_extra_outputs(sizes):
    """``net.cost(X, Y).backward()`` and ``net(X).sum().backward()``: the Functions' backward nodes
    call no zero-filling op (autograd would otherwise make a zero tensor for z^(L+1) and each a^(l));
    the same Function with materialised gradients does (the check can see them)."""
    net = _net(sizes)
    X, Y = _batch(net, 8)

    events = _events(lambda: net.cost(X, Y).backward())
    called = _direct_aten_children(events, "ThetaCostBackward")
    assert called and not ZERO_FILLS & set(called), called

    events = _events(lambda: net(X).sum().backward())
    called = _direct_aten_children(events, "ThetaForwardBackward")
    assert called and not ZERO_FILLS & set(called), called

    thetas = list(net.thetas)
    Yp = net.head.prepare_targets(Y, 8, sizes[-1], X.dtype, X.device)
    args = (X, Yp, None, net.activation, net.head, 0.0, True)
    events = _events(lambda: apply_function(_MaterializingCost, *args, *thetas)[0].backward())
    zeros = [n for n in _direct_aten_children(events, "_MaterializingCostBackward") if n in ZERO_FILLS]
    assert len(zeros) == len(sizes) - 1  # z^(L+1) and the L − 1 hidden activations
