"""Issue 14 §3: the built-in leaky_relu (slope 0.01) and elu (α = 1), whose g' is written from
a = g(z), and He initialisation. Checked against autograd of torch's own functions, by hand values,
by gradient checking, through the estimators and the exporters (Sequential, ONNX names)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lecturenn as ln
from lecturenn.activations import ACTIVATIONS
from lecturenn.theta import init_theta

REFERENCE = {"leaky_relu": lambda z: F.leaky_relu(z, 0.01), "elu": F.elu}


@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_g_and_gprime_from_a_equal_torch_and_autograd(name):
    act = ACTIVATIONS[name]
    z = torch.linspace(-6, 6, 49, dtype=torch.float64).requires_grad_()
    a = act.g(z)
    torch.testing.assert_close(a, REFERENCE[name](z), rtol=0, atol=0)
    (dz,) = torch.autograd.grad(REFERENCE[name](z).sum(), z)
    mask = z.detach() != 0  # the kink at 0: no derivative to compare
    torch.testing.assert_close(act.gprime(a.detach())[mask], dz[mask])


def test_hand_values():
    leaky, elu = ACTIVATIONS["leaky_relu"], ACTIVATIONS["elu"]
    z = torch.tensor([-2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(leaky.g(z), torch.tensor([-0.02, 3.0], dtype=torch.float64))
    torch.testing.assert_close(leaky.gprime(leaky.g(z)), torch.tensor([0.01, 1.0], dtype=torch.float64))
    a = elu.g(z)  # e^-2 − 1 = −0.8646647167633873
    torch.testing.assert_close(a, torch.tensor([math.exp(-2) - 1, 3.0], dtype=torch.float64))
    torch.testing.assert_close(elu.gprime(a), torch.tensor([math.exp(-2), 1.0], dtype=torch.float64))


@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_gradient_check_manual_equals_autograd_and_exporters(name):
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(9, 3, generator=g, dtype=torch.float64), torch.randint(0, 3, (9,), generator=g)
    net = ln.ThetaMLP([3, 6, 5, 3], name, "softmax", dtype=torch.float64, generator=1, init="he")
    assert ln.gradient_check(net, X, y).passed
    twin = ln.ThetaMLP([3, 6, 5, 3], name, "softmax", dtype=torch.float64, generator=1, init="he",
                       backprop="autograd")  # fmt: skip
    net.cost(X, y, 0.2).backward()
    twin.cost(X, y, 0.2).backward()
    for a, b in zip(net.thetas, twin.thetas):
        torch.testing.assert_close(a.grad, b.grad)
    seq = net.to_sequential()
    assert type(seq[1]) is {"leaky_relu": nn.LeakyReLU, "elu": nn.ELU}[name]
    torch.testing.assert_close(seq(X), net(X), rtol=0, atol=1e-12)
    assert ln.ThetaMLP.from_sequential(seq).activation.name == name
    assert ACTIVATIONS[name].onnx == {"leaky_relu": "LeakyRelu", "elu": "Elu"}[name]
    assert ACTIVATIONS[name].sklearn is None  # scikit-learn's MLP has neither


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_estimators_train_with_them(name):
    from sklearn.datasets import load_iris

    from lecturenn.estimators import ThetaMLPClassifier

    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    est = ThetaMLPClassifier((16,), activation=name, learning_rate_init=0.01, max_iter=200, random_state=0)
    assert est.fit(X, y).score(X, y) > 0.9
    with pytest.raises(ValueError, match="scikit-learn"):
        ln.to_sklearn(est.net_)


def test_he_init_is_torchs_kaiming_uniform_bound_and_variance():
    theta = torch.empty(400, 251, dtype=torch.float64)
    init_theta(theta, "he", generator=torch.Generator().manual_seed(0))
    bound = math.sqrt(6 / 250)  # √6/√s_l, s_l = 250 inputs (the bias column is not a fan-in)
    w = torch.empty(400, 250)
    nn.init.kaiming_uniform_(w, nonlinearity="relu")  # torch's bound: gain·√(3/fan_in), gain √2
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.99 * bound
    assert float(theta.abs().max()) <= bound and float(theta.abs().max()) > 0.99 * bound
    assert float(theta.var()) == pytest.approx(2 / 250, rel=0.02)  # Var U(±b) = b²/3 = 2/s_l
    with pytest.raises(ValueError, match="unknown init"):
        init_theta(theta, "kaiming")


def test_he_keeps_relu_activations_alive_in_a_deep_net():
    """Glorot halves the ReLU signal's variance per layer in a deep, wide-to-narrow-free stack; He keeps it:
    after 20 layers of 256 ReLU units the mean square activation stays O(1) with He."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(512, 256, generator=g, dtype=torch.float64)
    out = {}
    for init in ("glorot", "he"):
        net = ln.ThetaMLP([256] * 21 + [1], "relu", "identity", init=init, dtype=torch.float64, generator=0)
        with torch.no_grad():
            for theta in net.thetas:
                theta[:, 0] = 0  # the bias column: look at the weights' effect alone
        a = X
        with torch.no_grad():
            for theta in net.thetas[:-1]:
                a = torch.relu(a @ theta[:, 1:].T)
        out[init] = float(a.pow(2).mean())
    assert 0.2 < out["he"] < 5
    assert out["glorot"] < 1e-3 * out["he"] or out["glorot"] < 0.01
    assert np.isfinite(list(out.values())).all()


@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_onnx_export_computes_the_same(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = ln.ThetaMLP([3, 5, 2], name, "softmax", generator=0)
    ln.export_onnx(net, tmp_path / "net.onnx")
    X = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)) * 3  # both signs of z
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    out = session.run(None, {session.get_inputs()[0].name: X.numpy()})[0]
    np.testing.assert_allclose(out, net(X).detach().numpy(), rtol=0, atol=1e-6)
