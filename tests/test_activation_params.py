"""Issue 14 §3: parametrised activations ``leaky_relu:SLOPE`` and ``elu:ALPHA``, everywhere an
activation works. References: torch's own ``F.leaky_relu`` / ``F.elu`` and their autograd,
``torch.nn.init.calculate_gain``, onnxruntime (or onnx's reference evaluator) on the exported file,
a hand-written forward on a checkpoint's Θ, and autograd of scikit-learn's objective written out."""

import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lecturenn as ln
from lecturenn.activations import ACTIVATIONS, get_activation
from lecturenn.theta import init_theta

F64 = torch.float64
ROOT = Path(__file__).resolve().parents[1]

# name -> (torch's function of z, the nn module, its parameter)
PARAMS = {
    "leaky_relu": (lambda z: F.leaky_relu(z, 0.01), nn.LeakyReLU, 0.01),
    "leaky_relu:0.2": (lambda z: F.leaky_relu(z, 0.2), nn.LeakyReLU, 0.2),
    "leaky_relu:0.5": (lambda z: F.leaky_relu(z, 0.5), nn.LeakyReLU, 0.5),
    "elu:0.5": (lambda z: F.elu(z, 0.5), nn.ELU, 0.5),
    "elu:2": (lambda z: F.elu(z, 2.0), nn.ELU, 2.0),
}


def data(n=12, s=3, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, s, generator=g, dtype=F64) * 2, torch.randint(0, k, (n,), generator=g)


# -- the functions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PARAMS)
def test_g_is_torchs_and_gprime_from_a_is_autograds(name):
    ref = PARAMS[name][0]
    act = get_activation(name)
    z = (torch.randn(400, generator=torch.Generator().manual_seed(1), dtype=F64) * 4).requires_grad_()
    a = act.g(z)
    torch.testing.assert_close(a, ref(z), rtol=0, atol=0)
    (dz,) = torch.autograd.grad(ref(z).sum(), z)
    # a + α for z ≤ 0 cancels where e^z is tiny: exact to round-off of α, not relative to α e^z
    torch.testing.assert_close(act.gprime(a.detach()), dz, rtol=1e-15, atol=1e-15)
    delta = torch.randn(400, dtype=F64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(act.backward(delta, a.detach()), delta * dz, rtol=1e-15, atol=1e-14)


@pytest.mark.parametrize("name", PARAMS)
def test_gradient_check_manual_autograd_and_teaching_path_agree(name):
    X, y = data()
    kw = {"dtype": F64, "generator": 3, "init": "he"}
    net = ln.ThetaMLP([3, 6, 5, 3], name, "softmax", **kw)
    twin = ln.ThetaMLP([3, 6, 5, 3], name, "softmax", backprop="autograd", **kw)
    check = ln.gradient_check(net, X, y, lam=0.3)
    assert check.passed, check
    net.cost(X, y, 0.3).backward()
    twin.cost(X, y, 0.3).backward()
    teach = ln.backpropagate(net, X, y, 0.3)
    for l, (a, b) in enumerate(zip(net.thetas, twin.thetas), start=1):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(teach.D[l], a.grad, rtol=1e-12, atol=1e-14)


# -- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "written, canonical",
    [
        ("leaky_relu:0.2", "leaky_relu:0.2"),
        ("leaky_relu:0.20", "leaky_relu:0.2"),
        ("leaky_relu:.2", "leaky_relu:0.2"),
        ("leaky_relu:2e-1", "leaky_relu:0.2"),
        ("leaky_relu:+0.2", "leaky_relu:0.2"),
        ("leaky_relu:0.01", "leaky_relu"),  # the default is the plain name
        ("leaky_relu:1e-5", "leaky_relu:1e-05"),
        ("elu:1", "elu"),
        ("elu:1.0", "elu"),
        ("elu:2.0", "elu:2"),
        ("elu:0.5", "elu:0.5"),
    ],
)
def test_names_are_canonical_cached_and_round_trip(written, canonical):
    act = get_activation(written)
    assert act.name == canonical
    assert get_activation(canonical) is act and ACTIVATIONS[written] is act
    assert ACTIVATIONS.get(written) is act
    assert written in ACTIVATIONS and sorted(ACTIVATIONS) == sorted(ACTIVATIONS.keys())  # no new keys
    net = ln.ThetaMLP([2, 3, 1], written)
    assert net.config["hidden"] == canonical and f"g = {canonical}" in str(net)
    back = pickle.loads(pickle.dumps(net))  # by name (the entry holds lambdas)
    assert back.activation is act


BAD = {
    "leaky_relu(": "form",
    "leaky_relu(abc)": "form",
    "leaky_relu(-1)": "form",
    "leaky_relu(0.2)": "form",
    "leaky_relu(0.2, 3)": "form",
    "leaky_relu:": "form",
    "leaky_relu:abc": "form",
    "leaky_relu:nan": "form",
    "leaky_relu:inf": "form",
    "leaky_relu:0x1": "form",
    "leaky_relu:1_0": "form",
    "leaky_relu:0.2:0.3": "form",
    "leaky_relu:0.2,3": "form",
    "leaky_relu:٠.٢": "form",  # Arabic-Indic digits: float() would take them
    "leaky_relu:０.２": "form",  # full-width digits
    "leaky_relu: 0.2": "form",
    "leaky_relu :0.2": "form",
    "leaky_relu:0.2 ": "form",
    "leaky_relu:0.2\n": "form",
    "leaky_relu:1e400": "not a finite float",
    "leaky_relu:-1": "outside",
    "leaky_relu:-0.2": "outside",
    "leaky_relu:0": "outside",
    "leaky_relu:1": "outside",
    "leaky_relu:1.5": "outside",
    "leaky_relu:1e-400": "outside",  # rounds to 0.0
    "elu:0": "outside",
    "elu:-1": "outside",
    "elu:1e400": "not a finite float",
    "elu(0.5)": "form",
    "relu(0.2)": "takes no parameter",
    "relu:0.2": "takes no parameter",
    "sigmoid:1": "takes no parameter",
    " leaky_relu:0.2": "unknown",
    "LEAKY_RELU:0.2": "unknown",
    "leaky:0.2": "unknown",
}


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_one_line_naming_the_value_and_the_form(name):
    with pytest.raises(ValueError) as info:
        get_activation(name)
    message = str(info.value)
    assert "\n" not in message and repr(name) in message
    assert {"form": "write ", "outside": "is outside", "unknown": "unknown activation"}.get(
        BAD[name], BAD[name]
    ) in message
    assert "leaky_relu:SLOPE" in message or "elu:ALPHA" in message  # the allowed form
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        ln.ThetaMLP([2, 3, 1], name)
    assert name not in ACTIVATIONS.keys()


def test_hostile_values_are_named_as_written():
    with pytest.raises(ValueError, match=r"'leaky_relu:-1': the slope -1 is outside .*0 < SLOPE < 1"):
        get_activation("leaky_relu:-1")
    with pytest.raises(ValueError, match=r"the alpha -1 is outside elu:ALPHA \(ALPHA > 0"):
        get_activation("elu:-1")
    with pytest.raises(TypeError):
        get_activation(0.2)


# -- initialisation ----------------------------------------------------------------------------
@pytest.mark.parametrize("slope", [0.01, 0.2, 0.5])
def test_he_gain_is_torchs_calculate_gain_and_the_bound_kaiming_uniform(slope):
    name = "leaky_relu" if slope == 0.01 else f"leaky_relu:{slope}"
    gain = nn.init.calculate_gain("leaky_relu", slope)
    assert get_activation(name).he_gain == pytest.approx(gain, rel=1e-15)
    net = ln.ThetaMLP([250, 40, 3], name, "softmax", init="he", generator=5, dtype=F64)
    bound = gain * math.sqrt(3.0 / 250)  # torch's kaiming_uniform_(a=slope, nonlinearity="leaky_relu")
    ref = torch.empty(40, 251, dtype=F64).uniform_(-bound, bound, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(net.thetas[0].detach(), ref, rtol=1e-15, atol=0)
    assert get_activation("relu").he_gain == nn.init.calculate_gain("relu")  # √2: unchanged for the rest
    with pytest.raises(ValueError, match="gain"):
        init_theta(torch.empty(2, 3), "he", gain=-1.0)


# -- exporters ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["leaky_relu:0.2", "elu:0.5"])
def test_torch_nn_export_and_import(name):
    ref, module, value = PARAMS[name]
    X, _ = data()
    net = ln.ThetaMLP([3, 6, 5, 3], name, "softmax", dtype=F64, generator=4)
    seq = net.to_sequential()
    assert type(seq[1]) is module
    assert getattr(seq[1], "negative_slope", getattr(seq[1], "alpha", None)) == value
    torch.testing.assert_close(seq(X), net(X), rtol=0, atol=1e-15)
    back = ln.ThetaMLP.from_sequential(seq)
    assert back.activation is net.activation
    torch.testing.assert_close(back(X), net(X), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"module 1 \(ELU\(alpha=-1.0\)\).*the alpha -1.0 is outside"):
        ln.ThetaMLP.from_sequential(nn.Sequential(nn.Linear(3, 4), nn.ELU(-1.0), nn.Linear(4, 1)))


@pytest.mark.parametrize("name, op", [("leaky_relu:0.2", "LeakyRelu"), ("elu:0.5", "Elu")])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_onnx_export_carries_the_parameter_and_computes_the_forward(tmp_path, name, op, dtype):
    """float32: the ONNX operator with attribute alpha = SLOPE / α; float64: plain ops (onnxruntime
    has no double LeakyRelu/Elu, and a float32 attribute would round the slope)."""
    onnx = pytest.importorskip("onnx")
    X, _ = data()
    net = ln.ThetaMLP([3, 5, 3], name, "softmax", generator=0, dtype=dtype)
    path = ln.export_onnx(net, tmp_path / "net.onnx")
    model = onnx.load(str(path))
    nodes = [n for n in model.graph.node if n.op_type == op]
    if dtype == torch.float32:
        alpha = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}["alpha"]
        assert len(nodes) == 1 and alpha == pytest.approx(PARAMS[name][2], rel=1e-7)  # a float32
    else:
        assert not nodes
    x = X.to(dtype).numpy()
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {"x": x})[0]
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        out = ReferenceEvaluator(model).run(None, {"x": x})[0]
    tol = 1e-6 if dtype == torch.float32 else 1e-15
    np.testing.assert_allclose(out, net(X.to(dtype)).detach().numpy(), rtol=0, atol=tol)


def test_sklearn_export_refuses_in_one_line():
    with pytest.raises(ValueError, match=r"activation 'leaky_relu:0.2' has no scikit-learn equivalent"):
        ln.to_sklearn(ln.ThetaMLP([2, 3, 2], "leaky_relu:0.2", "softmax"))


@pytest.mark.parametrize("suffix", [".npz", ".mat"])
def test_theta_files_keep_the_parameter(tmp_path, suffix):
    X, _ = data()
    net = ln.ThetaMLP([3, 6, 3], "leaky_relu:0.2", "softmax", dtype=F64, generator=6)
    back = ln.load_thetas(ln.save_thetas(net, tmp_path / f"net{suffix}"))
    assert back.activation is net.activation
    torch.testing.assert_close(back(X), net(X), rtol=0, atol=0)


# -- estimators ----------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_fits_and_its_gradient_is_autograd_of_the_objective():
    from sklearn.datasets import load_iris

    from lecturenn.estimators import ThetaMLPClassifier

    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    alpha = 0.01
    est = ThetaMLPClassifier((8,), activation="leaky_relu:0.20", alpha=alpha, learning_rate_init=0.02,
                             max_iter=80, random_state=0).fit(X, y)  # fmt: skip
    assert est.net_.activation.name == "leaky_relu:0.2" and est.score(X, y) > 0.9
    # D = ∂J/∂Θ by the δ-recursion at the fitted coefs_, against autograd of J written from
    # coefs_/intercepts_ with torch's own leaky_relu(0.2): J = mean cross-entropy + α/(2n) Σ W²
    net = ln.ThetaMLP.from_thetas([torch.from_numpy(t) for t in est.thetas_], "leaky_relu:0.2", "softmax",
                                  dtype=F64)  # fmt: skip
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    net.cost(Xt, yt, alpha).backward()
    W = [torch.tensor(c, dtype=F64, requires_grad=True) for c in est.coefs_]
    b = [torch.tensor(c, dtype=F64, requires_grad=True) for c in est.intercepts_]
    z = F.leaky_relu(Xt @ W[0] + b[0], 0.2) @ W[1] + b[1]
    J = F.cross_entropy(z, yt) + alpha / (2 * len(y)) * sum((w * w).sum() for w in W)
    J.backward()
    for l, theta in enumerate(net.thetas):
        torch.testing.assert_close(theta.grad[:, 1:], W[l].grad.T, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(theta.grad[:, 0], b[l].grad, rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match=r"'leaky_relu:-1': the slope -1 is outside"):
        ThetaMLPClassifier(activation="leaky_relu:-1").fit(X, y)


# -- the app -------------------------------------------------------------------------------------
def test_app_trains_with_a_slope_and_the_checkpoint_keeps_it(tmp_path):
    """``model.activation=leaky_relu:0.2`` on the real command line, unquoted; the checkpoint keeps
    the slope: the loaded net's forward is torch's leaky_relu(·, 0.2) on its Θ."""
    from lecturenn.training.checkpoint import load_module

    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "data=iris", "trainer.max_epochs=1",
         "test=false", "model.hidden_sizes=[4]", "model.activation=leaky_relu:0.2", f"hydra.run.dir={run}",
         "callbacks.plots=null", "callbacks.progress_bar=null", "++trainer.enable_progress_bar=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "HYDRA_FULL_ERROR": "0"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "g = leaky_relu:0.2" in proc.stdout
    net = load_module(run / "checkpoints" / "last.ckpt").net
    assert net.activation is get_activation("leaky_relu:0.2")
    X = torch.randn(7, 4, generator=torch.Generator().manual_seed(0))
    t1, t2 = (t.detach() for t in net.thetas)
    hand = torch.softmax(F.leaky_relu(X @ t1[:, 1:].T + t1[:, 0], 0.2) @ t2[:, 1:].T + t2[:, 0], dim=1)
    torch.testing.assert_close(net(X).detach(), hand, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "value", ["leaky_relu:-1", "leaky_relu:abc", "leaky_relu:1e400", "elu:0", "relu:0.2", '"leaky_relu(0.2)"']
)
def test_app_refuses_a_bad_parameter_in_one_line_exit_2_before_any_work(tmp_path, capsys, value):
    """In process, as tests/test_reliability.py does for every key (train.py's exit 2 is the same
    code path). ``leaky_relu(0.2)`` unquoted never reaches lecturenn: Hydra's grammar refuses it."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from test_app import QUIET, make_cfg
    from train import train

    with pytest.raises(SystemExit) as info:
        train(make_cfg(tmp_path, [f"model.activation={value}", *QUIET]))
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    written = value.strip('"')  # Hydra's quotes are not part of the value
    assert len(lines) == 1 and lines[0].startswith(f"error: config: model.activation={written!r} is invalid")
    assert "leaky_relu:SLOPE (0 < SLOPE < 1" in lines[0] and "elu:ALPHA (ALPHA > 0" in lines[0]
    assert not (tmp_path / "checkpoints").exists()


def test_app_resume_accepts_another_spelling_of_the_same_slope(tmp_path):
    """The checkpoint stores the canonical name (leaky_relu:0.20 -> leaky_relu:0.2), so resuming with
    another spelling of the same function is a resume, not "another network". In process."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from test_app import QUIET, make_cfg
    from train import train

    args = ["data=iris", "model.hidden_sizes=[4]", "test=false", "callbacks.plots=null", *QUIET]
    first = tmp_path / "first"
    train(make_cfg(first, [*args, "model.activation=leaky_relu:0.20", "trainer.max_epochs=1"]))
    last = first / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["hyper_parameters"]["activation"] == "leaky_relu:0.2"
    second = tmp_path / "second"
    overrides = [*args, "model.activation=leaky_relu:0.2000", "trainer.max_epochs=2", f"ckpt_path={last}"]
    assert train(make_cfg(second, overrides))["epochs"] == 2


def test_estimator_message_for_an_unknown_activation_names_the_parametrised_forms():
    from lecturenn.estimators import ThetaMLPRegressor

    with pytest.raises(ValueError) as err:
        ThetaMLPRegressor(activation="swish").fit([[0.0], [1.0]], [0.0, 1.0])
    message = str(err.value)
    assert message.startswith("activation must be one of [") and message.endswith("got 'swish'")
    assert "'logistic'" in message and "leaky_relu:SLOPE (0 < SLOPE < 1" in message
    assert "elu:ALPHA (ALPHA > 0" in message
