"""Hostile round after the issue-12 refactor: each input that gave a silent wrong answer, a late
error or a raw traceback, now answered at once with one clear message (or a correct result)."""

import numpy as np
import pytest
import torch

import lecturenn as ln
from lecturenn.backprop import theta_cost


def _net(output="identity", backprop="manual", K=1):
    return ln.ThetaMLP([3, 4, K], "tanh", output, backprop, generator=0, dtype=torch.float64)


def _batch(K=1, n=6):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return X, torch.randn(n, K, generator=g, dtype=torch.float64)


def test_weights_that_require_grad_are_refused_on_the_manual_path_and_differentiated_on_autograd():
    X, Y = _batch()
    w = torch.rand(6, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"sample_weight requires grad.*backprop='autograd'"):
        _net().cost(X, Y, 0.1, w)  # before: w.grad stayed None, silently
    J = _net(backprop="autograd").cost(X, Y, 0.1, w)
    (grad,) = torch.autograd.grad(J, [w])
    # J = Σ w_i c_i / Σw + λ/(2Σw) ΣΘ²: ∂J/∂w against central differences
    net, eps, num = _net(backprop="autograd"), 1e-6, torch.empty(6, dtype=torch.float64)
    for i in range(6):
        step = torch.zeros(6, dtype=torch.float64)
        step[i] = eps
        v = w.detach()
        num[i] = (net.cost(X, Y, 0.1, v + step).item() - net.cost(X, Y, 0.1, v - step).item()) / (2 * eps)
    torch.testing.assert_close(grad, num, rtol=1e-5, atol=1e-8)


def test_sigmoid_weights_are_differentiable_on_the_autograd_path():
    X, _ = _batch()
    Y = (torch.arange(12).reshape(6, 2) % 3 == 0).double()
    w = torch.rand(6, dtype=torch.float64, requires_grad=True)
    J = _net("sigmoid", "autograd", K=2).cost(X, Y, 0.0, w)  # before: torch's "not differentiable" error
    J.backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_theta_cost_checks_what_it_can_without_a_pass_over_the_data():
    net = _net("softmax", K=3)
    X, _ = _batch()
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    thetas = list(net.thetas)
    with pytest.raises(ValueError, match=r"weight has shape \(6, 1\); expected \(6,\)"):
        theta_cost(X, y, thetas, net.activation, net.head, 0.1, torch.full((6, 1), 2.0, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"lam \(λ\) must be a finite number >= 0, got -1.0"):
        theta_cost(X, y, thetas, net.activation, net.head, -1.0)
    with pytest.raises(TypeError, match=r"lam \(λ\)"):
        theta_cost(X, y, thetas, net.activation, net.head, "0.1")
    with pytest.raises(TypeError, match="weight must be a tensor"):
        theta_cost(X, y, thetas, net.activation, net.head, 0.1, np.ones(6))
    by_name = theta_cost(X, y, thetas, "tanh", "softmax", 0.1)[0]  # names are looked up
    torch.testing.assert_close(by_name, net.cost(X, y, 0.1), rtol=0, atol=0)


def test_register_activation_refuses_what_is_not_callable_at_once():
    with pytest.raises(TypeError, match=r"activation 'bad5': g must be callable, got 5"):
        ln.register_activation("bad5", 5, 6)
    with pytest.raises(TypeError, match="fused_backward must be callable"):
        ln.register_activation("bad6", torch.tanh, lambda a: 1 - a * a, 3)
    assert "bad5" not in ln.ACTIVATIONS and "bad6" not in ln.ACTIVATIONS
    with pytest.raises(ValueError, match="without surrounding spaces"):
        ln.register_activation(" relu ", torch.relu, lambda a: (a > 0).to(a.dtype))


def test_a_head_with_min_outputs_refuses_too_few_outputs():
    softmax = ln.HEADS["softmax"]
    ln.register_head(
        "needs3_hostile", softmax.h, softmax.cost_sum, softmax.delta, tasks=("multiclass",), min_outputs=3
    )
    try:
        with pytest.raises(ValueError, match="needs at least 3 outputs"):
            ln.ThetaMLP([2, 3, 2], output="needs3_hostile")
    finally:
        ln.HEADS.pop("needs3_hostile", None)


def test_estimator_alpha_as_a_one_element_array_fits():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    a = ln.ThetaMLPClassifier(hidden_layer_sizes=(5,), alpha=np.array([0.5]), max_iter=5, random_state=0)
    b = ln.ThetaMLPClassifier(hidden_layer_sizes=(5,), alpha=0.5, max_iter=5, random_state=0)
    with pytest.warns(Warning):  # not converged in 5 epochs
        a.fit(X, y)
    with pytest.warns(Warning):
        b.fit(X, y)
    assert a.loss_ == b.loss_  # before: TypeError from float(np.array([0.5])) deep in the fit


def test_weights_out_of_the_dtype_range_are_named_as_such():
    net = ln.ThetaMLP([3, 4, 1], "tanh", "identity", generator=0)  # float32
    X, Y = _batch()
    with pytest.raises(ValueError, match=r"NaN or inf in the network's dtype torch.float32.*overflow"):
        net.cost(X.float(), Y.float(), 0.0, np.full(6, 1e300))
    with pytest.raises(ValueError, match=r"sums to zero in torch.float32.*underflow"):
        net.cost(X.float(), Y.float(), 0.0, np.full(6, 1e-50))
