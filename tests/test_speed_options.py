"""The speed options of the one δ-recursion (design.md §8) give the plain path's numbers:
``Activation.into`` (g written into a strided buffer), ``Head.cost_and_error`` (a head's fused cost
and output error), and ``cost_and_gradient``'s buffers / flat ridge / α-folded 1/n."""

import pytest
import torch

import lecturenn as ln
from lecturenn.activations import ACTIVATIONS
from lecturenn.backprop import Workspace, cost_and_gradient
from lecturenn.heads import HEADS


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_into_writes_g_into_a_strided_buffer(name):
    act = ACTIVATIONS[name]
    z = torch.randn(7, 5, dtype=torch.float64)
    buf = torch.full((7, 6), 9.0, dtype=torch.float64)
    out = act.into(z, buf[:, 1:])
    torch.testing.assert_close(buf[:, 1:], act.g(z))
    assert (buf[:, 0] == 9).all()  # the bias column is left alone
    assert out.data_ptr() == buf[:, 1:].data_ptr()


def test_into_without_g_out_falls_back_to_g():
    act = ln.Activation("sine", torch.sin, lambda a: torch.sqrt(1 - a * a))
    z, out = torch.randn(4, 3), torch.empty(4, 3)
    act.into(z, out)
    torch.testing.assert_close(out, torch.sin(z))


@pytest.mark.parametrize("name", list(HEADS))
@pytest.mark.parametrize("indices", [False, True])
def test_cost_and_error_equals_cost_sum_and_delta(name, indices):
    head = HEADS[name]
    if indices and not head.class_indices:
        pytest.skip("class indices are a softmax option")
    g = torch.Generator().manual_seed(0)
    n, K = 9, 4
    z = torch.randn(n, K, dtype=torch.float64, generator=g)
    labels = torch.randint(0, K, (n,), generator=g)
    if indices:
        Y = labels
    elif name == "identity":
        Y = torch.randn(n, K, dtype=torch.float64, generator=g)
    elif name == "softmax":
        Y = torch.nn.functional.one_hot(labels, K).double()
    else:
        Y = (torch.rand(n, K, generator=g) > 0.5).double()
    cost, delta = head.cost_and_error(z, Y)
    torch.testing.assert_close(cost, head.cost_sum(z, Y))
    torch.testing.assert_close(delta, head.delta(head.h(z), Y))
    # and δ is ∂(Σ cost_i)/∂z
    zz = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(head.cost_sum(zz, Y), zz)
    torch.testing.assert_close(delta, grad)


@pytest.mark.parametrize("hidden", ["sigmoid", "relu", "softplus"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_cost_and_gradient_options_match_net_cost(hidden, output):
    """buffers + flat ridge + α (the estimators' call) and the plain call both equal autograd."""
    torch.manual_seed(0)
    net = ln.ThetaMLP([5, 6, 4, 3], hidden, output, backprop="autograd", dtype=torch.float64, generator=1)
    n, lam = 11, 0.3
    X = torch.randn(n, 5, dtype=torch.float64)
    labels = torch.randint(0, 3, (n,))
    Y = (
        torch.nn.functional.one_hot(labels, 3).double()
        if output != "identity"
        else torch.randn(n, 3).double()
    )
    J_ref = net.cost(X, Y, lam)
    ref = torch.autograd.grad(J_ref, list(net.thetas))
    thetas = [t.detach() for t in net.thetas]
    J, grads = cost_and_gradient(X, Y, thetas, net.activation, net.head, lam)
    torch.testing.assert_close(J, J_ref.detach())
    for d, r in zip(grads, ref):
        torch.testing.assert_close(d, r)
    # the estimators' layout: one flat θ and d, [1, X], a Workspace (views, [1, a] buffers, ridge scratch)
    flat = torch.cat([t.reshape(-1) for t in thetas])
    views, dflat, off = [], torch.full_like(flat, float("nan")), 0
    outs = []
    for t in thetas:
        k = t.numel()
        views.append(flat[off : off + k].view(t.shape))
        outs.append(dflat[off : off + k].view(t.shape))  # NaN-filled: beta=0 must ignore it
        off += k
    X1 = torch.cat([torch.ones(n, 1, dtype=X.dtype), X], 1)
    for flat_option in (None, (flat, dflat)):
        ws = Workspace(views, outs, flat=flat_option)
        J2, grads2 = cost_and_gradient(X1, Y, views, net.activation, net.head, lam, workspace=ws)
        torch.testing.assert_close(J2, J_ref.detach())
        for d, r, o in zip(grads2, ref, outs):
            torch.testing.assert_close(d, r)
            assert d.data_ptr() == o.data_ptr()  # written into the workspace's D^(l)
        # loss=: n·J added to a running sum on the device, same gradient
        total = torch.full((), 5.0, dtype=X.dtype)
        dflat.fill_(float("nan"))
        out, _ = cost_and_gradient(X1, Y, views, net.activation, net.head, lam, workspace=ws, loss=total)
        assert out is total
        torch.testing.assert_close(total, 5.0 + n * J_ref.detach())
        for d, r in zip(outs, ref):
            torch.testing.assert_close(d, r)


@pytest.mark.parametrize("output", ["softmax", "identity"])
def test_cost_and_gradient_weighted_loss_sum(output):
    """With sample weights, loss= receives W·J = Σ w_i cost_i + λ/2 ΣΘ², W = Σ w_i."""
    torch.manual_seed(1)
    net = ln.ThetaMLP([4, 5, 3], "tanh", output, dtype=torch.float64, generator=2)
    X, w, lam = torch.randn(8, 4, dtype=torch.float64), torch.rand(8, dtype=torch.float64) + 0.1, 0.7
    labels = torch.randint(0, 3, (8,))
    Y = torch.nn.functional.one_hot(labels, 3).double() if output == "softmax" else torch.randn(8, 3).double()
    J_ref = net.cost(X, Y, lam, sample_weight=w).detach()
    thetas = [t.detach() for t in net.thetas]
    total = torch.zeros((), dtype=torch.float64)
    _, grads = cost_and_gradient(X, Y, thetas, net.activation, net.head, lam, weight=w, loss=total)
    torch.testing.assert_close(total, w.sum() * J_ref)
    J, grads2 = cost_and_gradient(X, Y, thetas, net.activation, net.head, lam, weight=w)
    torch.testing.assert_close(J, J_ref)
    for a, b in zip(grads, grads2):
        torch.testing.assert_close(a, b)
