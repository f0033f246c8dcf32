"""backprop="manual" under double backward and torch.func: exact where supported, a clear error
naming backprop="autograd" where not — never a silently wrong gradient (issue 12 §6)."""

import pytest
import torch
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, vmap

import lecturenn as ln
from lecturenn.backprop import ThetaCost, ThetaForward

X = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 2, 1, 1, 0, 2])
W = torch.tensor([1.0, 0.5, 2.0, 0.0, 1.5, 1.0], dtype=torch.float64)


def _net(backprop, hidden="tanh"):
    return ln.ThetaMLP(
        [3, 4, 3], hidden=hidden, output="softmax", backprop=backprop, generator=0, dtype=torch.float64
    )


def _penalised(net, weight=None):
    """J + ‖∂J/∂Θ‖² (a gradient penalty) and its gradient."""
    J = net.cost(X, Y, 0.3, sample_weight=weight)
    g = torch.autograd.grad(J, list(net.thetas), create_graph=True)
    P = J + sum((gi**2).sum() for gi in g)
    P.backward()
    return P.detach(), [t.grad for t in net.thetas]


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize("weight", [None, W])
def test_gradient_penalty_equals_autograd(hidden, weight):
    (P_m, D_m), (P_a, D_a) = (_penalised(_net(bp, hidden), weight) for bp in ("manual", "autograd"))
    torch.testing.assert_close(P_m, P_a, rtol=1e-13, atol=0)
    for a, b in zip(D_m, D_a):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)
    plain = _net("manual", hidden).cost(X, Y, 0.3, sample_weight=weight)
    assert P_m > plain.detach() + 1e-3  # the penalty term is really there


def test_gradgradcheck_of_both_functions():
    net = _net("manual")
    thetas = [t.detach().clone().requires_grad_() for t in net.thetas]
    x = X.clone().requires_grad_()

    def cost(x, *thetas):
        return ThetaCost.apply(x, Y, W, net.activation, net.head, 0.7, True, *thetas)[0]

    def forward(x, *thetas):
        return ThetaForward.apply(x, net.activation, True, *thetas)[0]

    assert torch.autograd.gradgradcheck(cost, (x, *thetas))
    assert torch.autograd.gradgradcheck(forward, (x, *thetas))


def _functional_cost(net):
    def J(params, x, y):
        return functional_call(net, params, args=(x,), strict=True).log().mean() + 0 * y.sum()

    return J


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_torch_func_grad_and_vmap_work(backprop):
    net = _net(backprop)  # validate_inputs stays on: under transforms the value checks are skipped
    params = {k: v.detach() for k, v in net.named_parameters()}
    ref = _net("autograd")
    J = _functional_cost(net)
    g = grad(J)(params, X, Y)
    g_ref = grad(_functional_cost(ref))(params, X, Y)
    for k in params:
        torch.testing.assert_close(g[k], g_ref[k], rtol=1e-12, atol=1e-14)
    per_row = vmap(grad(J), in_dims=(None, 0, 0))(params, X.unsqueeze(1), Y.unsqueeze(1))
    assert per_row["thetas.0"].shape == (6, 4, 4)
    torch.testing.assert_close(per_row["thetas.0"][2], grad(J)(params, X[2:3], Y[2:3])["thetas.0"])
    jac = jacrev(lambda p: functional_call(net, p, (X,)))(params)
    assert jac["thetas.1"].shape == (6, 3, 3, 5)


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_per_example_gradients_of_net_cost_with_the_default_checks(backprop):
    """vmap(grad(...)) over ``net.cost`` — the per-example-gradient recipe — with validate_inputs left
    on (the default; the value checks cannot read a batched value, so transforms skip them) equals a
    loop of one-row ``cost().backward()`` calls; outside a transform the checks still run."""
    net = _net(backprop)
    assert net.validate_inputs
    model = _Cost(net)
    params = {f"net.{k}": v.detach() for k, v in net.named_parameters()}

    def J(p, x, y):
        model.batch = (x.unsqueeze(0), y.unsqueeze(0))
        return functional_call(model, p, ())

    per_row = vmap(grad(J), in_dims=(None, 0, 0))(params, X, Y)
    h = vmap(
        lambda p, x: functional_call(net, {k[4:]: v for k, v in p.items()}, (x.unsqueeze(0),)),
        in_dims=(None, 0),
    )(params, X)
    torch.testing.assert_close(h.squeeze(1), net(X).detach(), rtol=1e-14, atol=0)
    for i in range(X.shape[0]):
        net.zero_grad()
        net.cost(X[i : i + 1], Y[i : i + 1]).backward()
        for l, theta in enumerate(net.thetas):
            torch.testing.assert_close(per_row[f"net.thetas.{l}"][i], theta.grad, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="NaN or inf"):
        net.cost(X.clone().fill_(float("nan")), Y)


@pytest.mark.parametrize("transform", [hessian, jacfwd])
def test_forward_mode_transforms_work_on_the_manual_path(transform):
    params = {k: v.detach() for k, v in _net("manual").named_parameters()}
    h = transform(_functional_cost(_net("manual")))(params, X, Y)
    h_ref = transform(_functional_cost(_net("autograd")))(params, X, Y)
    torch.testing.assert_close(h["thetas.0"], h_ref["thetas.0"], rtol=1e-12, atol=1e-14)


class _Cost(torch.nn.Module):
    """net.cost(X, Y, λ, w) as a module, so torch.func.functional_call can swap Θ."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.batch = None  # (X, Y) without λ or weights; None: the module-level X, Y, λ = 0.2, W

    def forward(self):
        if self.batch is not None:
            return self.net.cost(*self.batch)
        return self.net.cost(X, Y, 0.2, sample_weight=W)


def test_hessian_of_the_weighted_cost_matches_autograd():
    params = {f"net.{k}": v.detach() for k, v in _net("manual").named_parameters()}
    hs = [
        hessian(lambda p, m=_Cost(_net(bp)): functional_call(m, p, ()))(params)
        for bp in ("manual", "autograd")
    ]
    for a in params:
        for b in params:
            torch.testing.assert_close(hs[0][a][b], hs[1][a][b], rtol=1e-11, atol=1e-13)


def test_forward_ad_is_a_clear_error_on_the_manual_path():
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        x = fwAD.make_dual(X, torch.ones_like(X))
        with pytest.raises(NotImplementedError, match="backprop='autograd'"):
            _net("manual").cost(x, Y)
        out = _net("autograd").cost(x, Y)
        assert fwAD.unpack_dual(out).tangent is not None


def test_first_order_path_builds_no_graph():
    """Plain backward() keeps the δ-recursion: no graph is built for the gradient."""
    net = _net("manual")
    J = net.cost(X, Y, 0.3)
    g = torch.autograd.grad(J, list(net.thetas))
    assert all(gi.grad_fn is None and not gi.requires_grad for gi in g)
