"""Registries that are registries: a registered activation (leaky ReLU, slope 0.01) and a registered
head (my_poisson, a registered twin of the built-in poisson: h = e^z, cost_i = Σ_k (e^z − y z),
δ = e^z − y, no scikit-learn name) work everywhere they can — net.cost
(manual and autograd backprop, gradcheck), the estimators, the Hydra app through ``plugins``, the
torch.nn exporter — and the formats that cannot express them say so by name. Also: no module-level
import cycle in lecturenn."""

import ast
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_script
from torch import nn

import lecturenn as ln
from lecturenn.activations import ACTIVATIONS
from lecturenn.heads import HEADS, TASK_HEADS, head_for_task

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64
SLOPE = 0.01


# -- the two entries ----------------------------------------------------------------------------
def leaky_g(z):
    return F.leaky_relu(z, SLOPE)


def leaky_gprime(a):  # g'(z) from a = g(z): a > 0 exactly when z > 0; 1 there, SLOPE elsewhere
    return (a > 0).to(a.dtype) * (1 - SLOPE) + SLOPE


def poisson_cost(z, Y, weight=None):  # Σ_i w_i Σ_k (e^{z_ik} − y_ik z_ik), log y! dropped
    per_row = (torch.exp(z) - Y * z).sum(dim=1)
    return per_row.sum() if weight is None else (per_row * weight).sum()


def poisson_delta(h, Y, inplace=False):  # ∂cost/∂z = e^z − y = h − y
    return h.sub_(Y) if inplace else h - Y


class Exp(nn.Module):
    def forward(self, z):
        return torch.exp(z)


@pytest.fixture
def leaky():
    entry = ln.register_activation(
        "my_leaky", leaky_g, leaky_gprime, torch_module=lambda: nn.LeakyReLU(SLOPE)
    )
    yield entry
    ACTIVATIONS.pop("my_leaky")


@pytest.fixture
def poisson():
    entry = ln.register_head(
        "my_poisson",
        torch.exp,
        poisson_cost,
        poisson_delta,
        valid=lambda Y: (Y >= 0).all(),
        explain=lambda Y: "the my_poisson head needs counts y >= 0",
        tasks=("regression",),
        torch_module=Exp,
    )
    yield entry
    HEADS.pop("my_poisson")


def counts(net, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, net.sizes[0], generator=gen, dtype=F64)
    Y = torch.poisson(torch.full((n, net.sizes[-1]), 2.0, dtype=F64), generator=gen)
    return X, Y


def kink_free(net):
    """Shift every hidden bias by +2, away from leaky ReLU's kink at z = 0 (finite differences)."""
    with torch.no_grad():
        for theta in net.thetas[:-1]:
            theta[:, 0] += 2.0
    return net


# -- the registries themselves ------------------------------------------------------------------
def test_builtin_entries_carry_their_names_in_other_formats():
    assert {n: a.sklearn for n, a in ACTIVATIONS.items()} == {
        "sigmoid": "logistic", "tanh": "tanh", "softplus": None, "relu": "relu", "leaky_relu": None,
        "elu": None, "identity": "identity",
    }  # fmt: skip
    assert {n: h.sklearn for n, h in HEADS.items()} == {
        "sigmoid": "logistic", "softmax": "softmax", "identity": "identity", "poisson": "exp"
    }  # fmt: skip
    assert [type(a.torch_module()) for a in ACTIVATIONS.values()] == [
        nn.Sigmoid, nn.Tanh, nn.Softplus, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Identity
    ]  # fmt: skip
    assert HEADS["softmax"].torch_module().dim == 1
    assert {n: h.onnx for n, h in HEADS.items()} == {
        "sigmoid": "Sigmoid",
        "softmax": "Softmax",
        "identity": "Identity",
        "poisson": "Exp",
    }
    assert TASK_HEADS == {
        "binary": "sigmoid",
        "multiclass": "softmax",
        "multilabel": "sigmoid",
        "regression": "identity",
    }
    from lecturenn.training import TASK_HEADS as reexported

    assert reexported is TASK_HEADS


def test_a_head_is_callables_not_a_name():
    """Head("poisson", "regression") used to build a head that silently computed the squared error."""
    with pytest.raises(TypeError, match="h must be callable"):
        ln.Head("poisson", "regression", None, None)
    with pytest.raises(ValueError, match="unknown task"):
        ln.Head("p", torch.exp, poisson_cost, poisson_delta, tasks=("counting",))


def test_registration_errors(leaky, poisson):
    with pytest.raises(ValueError, match="already registered"):
        ln.register_activation("my_leaky", leaky_g, leaky_gprime)
    with pytest.raises(ValueError, match="already registered"):
        ln.register_head("softmax", torch.exp, poisson_cost, poisson_delta)
    with pytest.raises(ValueError, match="unknown output head 'nope'.*register it first"):
        ln.ThetaMLP([2, 1], output="nope")
    assert ln.get_activation("my_leaky") is leaky and ln.get_head("my_poisson") is poisson


def test_head_for_task(poisson):
    assert head_for_task("multiclass").name == "softmax"
    assert head_for_task("regression", "my_poisson") is poisson
    with pytest.raises(ValueError, match="serves regression, not the data's task 'binary'"):
        head_for_task("binary", "my_poisson")
    with pytest.raises(ValueError, match="unknown task"):
        head_for_task("ranking")


# -- net.cost: values by hand, gradcheck, manual = autograd ----------------------------------------
def test_cost_values_by_hand(leaky, poisson):
    # leaky hidden unit, identity head: Θ1 = [0 1] so a2 = leaky(x); Θ2 = [0.5 2] so h = 0.5 + 2 a2
    thetas = [torch.tensor([[0.0, 1.0]], dtype=F64), torch.tensor([[0.5, 2.0]], dtype=F64)]
    net = ln.ThetaMLP.from_thetas(thetas, "my_leaky", "identity")
    X, Y = torch.tensor([[-2.0], [3.0]], dtype=F64), torch.tensor([[1.0], [0.0]], dtype=F64)
    # a2 = [-0.02, 3], h = [0.46, 6.5]; J = ((0.46 - 1)² + 6.5²)/2 = (0.2916 + 42.25)/2
    assert net.cost(X, Y).item() == pytest.approx(21.2708, abs=1e-12)
    # Poisson head, no hidden layer: z = 0.1 + 0.5 x = [0.1, 1.1] for x = [0, 2], y = [1, 3]
    net = ln.ThetaMLP.from_thetas([torch.tensor([[0.1, 0.5]], dtype=F64)], output="my_poisson")
    X, Y = torch.tensor([[0.0], [2.0]], dtype=F64), torch.tensor([[1.0], [3.0]], dtype=F64)
    by_hand = ((math.exp(0.1) - 0.1) + (math.exp(1.1) - 3.3)) / 2  # = 0.35466847...
    for backprop in ("manual", "autograd"):
        net.backprop = backprop
        assert net.cost(X, Y).item() == pytest.approx(by_hand, abs=1e-12)
        # + λ/(2n) Σ w² = 1/(2·2) · 0.5² (the bias 0.1 is not penalised)
        assert net.cost(X, Y, lam=1.0).item() == pytest.approx(by_hand + 0.0625, abs=1e-12)
    h = net(X)
    torch.testing.assert_close(h, torch.exp(torch.tensor([[0.1], [1.1]], dtype=F64)))
    # weighted cost: Σ_i w_i cost_i
    z = torch.tensor([[0.1], [1.1]], dtype=F64)
    w = torch.tensor([2.0, 0.5], dtype=F64)
    expected = 2 * (math.exp(0.1) - 0.1) + 0.5 * (math.exp(1.1) - 3.3)
    assert poisson.cost_sum(z, Y, w).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name,targets", [("sigmoid", "01"), ("softmax", "index"), ("softmax", "onehot"),
                                          ("identity", "real")])  # fmt: skip
def test_builtin_weighted_cost_is_the_weighted_sum_of_row_costs(name, targets):
    """cost_sum(z, Y, w) = Σ_i w_i cost_i for every built-in head; weight=None is Σ_i cost_i."""
    head, gen = HEADS[name], torch.Generator().manual_seed(0)
    z = torch.randn(6, 3, generator=gen, dtype=F64)
    Y = {
        "01": lambda: torch.randint(0, 2, (6, 3), generator=gen).to(F64),
        "index": lambda: torch.randint(0, 3, (6,), generator=gen),
        "onehot": lambda: F.one_hot(torch.randint(0, 3, (6,), generator=gen), 3).to(F64),
        "real": lambda: torch.randn(6, 3, generator=gen, dtype=F64),
    }[targets]()
    w = torch.rand(6, generator=gen, dtype=F64) * 3
    rows = torch.stack([head.cost_sum(z[i : i + 1], Y[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(head.cost_sum(z, Y, w), (w * rows).sum(), rtol=1e-12, atol=0)
    torch.testing.assert_close(head.cost_sum(z, Y), rows.sum(), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        head.cost_sum(z, Y, torch.ones(6, dtype=F64)), head.cost_sum(z, Y), rtol=1e-14, atol=0
    )


def test_bad_targets_for_a_registered_head(poisson):
    net = ln.ThetaMLP([2, 3, 1], "tanh", "my_poisson", dtype=F64)
    with pytest.raises(ValueError, match="needs counts y >= 0"):
        net.cost(torch.zeros(2, 2, dtype=F64), torch.tensor([1.0, -1.0], dtype=F64))


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_gradcheck_float64(leaky, poisson, backprop):
    """torch.autograd.gradcheck of J(Θ) through net.cost, and the library's numerical gradient check."""
    net = kink_free(ln.ThetaMLP([3, 4, 3, 2], "my_leaky", "my_poisson", backprop, generator=1, dtype=F64))
    X, Y = counts(net, 6, seed=2)
    thetas = [t.detach().clone().requires_grad_() for t in net.thetas]

    class Cost(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, X, Y):
            return self.net.cost(X, Y, lam=0.7)

    cost = Cost()

    def J(*thetas):
        return torch.func.functional_call(cost, {f"net.thetas.{i}": t for i, t in enumerate(thetas)}, (X, Y))

    assert torch.autograd.gradcheck(J, thetas)
    check = ln.gradient_check(net, X, Y, lam=0.7)
    assert check.passed, str(check)


@pytest.mark.parametrize("output", ["my_poisson", "sigmoid", "softmax", "identity"])
def test_manual_equals_autograd(leaky, poisson, output):
    manual = ln.ThetaMLP([5, 6, 4, 3], "my_leaky", output, "manual", generator=3, dtype=F64)
    auto = ln.ThetaMLP([5, 6, 4, 3], "my_leaky", output, "autograd", dtype=F64)
    auto.load_state_dict(manual.state_dict())
    X, Y = counts(manual, 9, seed=4)
    if output == "sigmoid":
        Y = (Y > 1).to(F64)
    elif output == "softmax":
        Y = Y[:, 0].long().clamp(0, 2)
    Jm, Ja = manual.cost(X, Y, lam=0.3), auto.cost(X, Y, lam=0.3)
    torch.testing.assert_close(Jm, Ja, rtol=1e-12, atol=0)
    Jm.backward()
    Ja.backward()
    for l in (1, 2, 3):
        torch.testing.assert_close(manual.theta(l).grad, auto.theta(l).grad, rtol=1e-10, atol=1e-12)


def test_teaching_backprop_with_registered_entries(leaky, poisson):
    net = kink_free(ln.ThetaMLP([3, 4, 2], "my_leaky", "my_poisson", generator=5, dtype=F64))
    X, Y = counts(net, 7, seed=5)
    bp = ln.backpropagate(net, X, Y, lam=0.2)
    net.cost(X, Y, lam=0.2).backward()
    for l in (1, 2):
        torch.testing.assert_close(bp.D[l], net.theta(l).grad, rtol=1e-10, atol=1e-12)


def test_pickle_stores_registered_entries_by_name(leaky, poisson):
    net = ln.ThetaMLP([3, 4, 2], "my_leaky", "my_poisson", generator=0)
    again = pickle.loads(pickle.dumps(net))
    assert again.activation is leaky and again.head is poisson


# -- estimators --------------------------------------------------------------------------------
def test_estimator_accepts_a_registered_activation(leaky):
    from sklearn.datasets import make_classification

    from lecturenn.estimators import ThetaMLPClassifier, ThetaMLPRegressor

    X, y = make_classification(n_samples=120, n_features=5, random_state=0)
    clf = ThetaMLPClassifier((8,), activation="my_leaky", max_iter=60, random_state=0).fit(X, y)
    assert clf.net_.activation is leaky and clf.score(X, y) > 0.8
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    reg = ThetaMLPRegressor((8,), activation="my_leaky", solver="lbfgs", max_iter=30, random_state=0)
    reg.fit(X, X[:, 0] - X[:, 1])
    assert reg.net_.activation is leaky and reg.score(X, X[:, 0] - X[:, 1]) > 0.8


def test_estimator_refuses_an_unregistered_activation():
    from lecturenn.estimators import ThetaMLPClassifier

    with pytest.raises(ValueError, match="activation must be one of .*logistic"):
        ThetaMLPClassifier(activation="my_leaky").fit([[0.0], [1.0]], [0, 1])


# -- exporters ---------------------------------------------------------------------------------
def test_to_sequential_and_back(leaky, poisson):
    net = ln.ThetaMLP([3, 5, 4, 2], "my_leaky", "my_poisson", generator=2, dtype=F64)
    seq = net.to_sequential()
    assert [type(m) for m in seq] == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.LeakyReLU, nn.Linear, Exp]
    assert seq[1].negative_slope == SLOPE
    X, _ = counts(net, 8)
    torch.testing.assert_close(seq(X), net(X), rtol=0, atol=1e-12)
    back = ln.ThetaMLP.from_sequential(seq)
    # a module maps to the first registered entry with that module: my_leaky here (a built-in leaky
    # ReLU with the same slope, registered earlier, would take it — computing the same function)
    first = next(a for a in ACTIVATIONS.values() if a.torch_module and repr(a.torch_module()) == repr(seq[1]))
    assert back.activation is first and first.name in ("my_leaky", "leaky_relu")
    assert back.head is poisson
    torch.testing.assert_close(back(X), net(X), rtol=0, atol=0)
    # a LeakyReLU of another slope is the built-in family's leaky_relu:SLOPE, not this activation;
    # a slope outside its range is refused naming the module
    other = nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.2), nn.Linear(4, 1))
    assert ln.ThetaMLP.from_sequential(other).activation.name == "leaky_relu:0.2"
    other[1] = nn.LeakyReLU(-0.2)
    with pytest.raises(ValueError, match=r"module 1 .*the slope -0.2 is outside leaky_relu:SLOPE"):
        ln.ThetaMLP.from_sequential(other)


def test_to_sequential_refuses_an_entry_without_torch_module(poisson):
    ln.register_activation("bare", torch.sin, lambda a: torch.sqrt(1 - a * a))  # no torch.nn module
    try:
        with pytest.raises(ValueError, match="hidden activation 'bare' has no torch.nn module"):
            ln.ThetaMLP([2, 3, 1], "bare").to_sequential()
    finally:
        ACTIVATIONS.pop("bare")


def test_sklearn_export_names_what_it_cannot_express(leaky, poisson):
    with pytest.raises(ValueError, match="hidden activation 'my_leaky' has no scikit-learn equivalent"):
        ln.to_sklearn(ln.ThetaMLP([3, 4, 1], "my_leaky", "sigmoid"))
    with pytest.raises(ValueError, match="output head 'my_poisson' has no scikit-learn equivalent"):
        ln.to_sklearn(ln.ThetaMLP([3, 4, 1], "tanh", "my_poisson"))


def test_a_head_with_a_sklearn_name_converts_both_ways():
    """MLPRegressor(loss="poisson") has out_activation_ = "exp": the head whose sklearn name is "exp"
    (the built-in poisson) takes it, and to_sklearn gives it back. scikit-learn's four output
    activations are all built-in heads' names now, so a registered head cannot take one."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0]))
    with pytest.warns(ConvergenceWarning):
        est = MLPRegressor(hidden_layer_sizes=(5,), loss="poisson", max_iter=20, random_state=0).fit(X, y)
    net = ln.from_sklearn(est)
    assert net.head is HEADS.find("sklearn", "exp") is HEADS["poisson"] and net.activation.name == "relu"
    np.testing.assert_allclose(net(torch.from_numpy(X)).detach().numpy()[:, 0], est.predict(X), rtol=1e-12)
    back = ln.to_sklearn(net)
    assert type(back) is MLPRegressor and back.out_activation_ == "exp" and back.loss == "poisson"
    np.testing.assert_allclose(back.predict(X), est.predict(X), rtol=1e-12)
    with pytest.raises(ValueError, match=r"sklearn='exp' is already the scikit-learn name of .*'poisson'"):
        ln.register_head(
            "exp_head", torch.exp, poisson_cost, poisson_delta, tasks=("regression",), sklearn="exp"
        )
    assert "exp_head" not in HEADS


def test_onnx_export_names_what_it_cannot_express(tmp_path, leaky, poisson):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="hidden activation 'my_leaky' has no ONNX operator"):
        ln.export_onnx(ln.ThetaMLP([3, 4, 1], "my_leaky", "sigmoid"), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="output head 'my_poisson' has no ONNX operator"):
        ln.export_onnx(ln.ThetaMLP([3, 4, 1], "tanh", "my_poisson"), tmp_path / "b.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_onnx_export_of_a_registered_activation_with_an_operator(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    ln.register_activation(
        "leaky_onnx", leaky_g, leaky_gprime, torch_module=lambda: nn.LeakyReLU(SLOPE), onnx="LeakyRelu"
    )
    try:
        net = ln.ThetaMLP([3, 5, 2], "leaky_onnx", "softmax", generator=0)
        path = ln.export_onnx(net, tmp_path / "net.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        X = torch.randn(7, 3)
        (out,) = session.run(None, {"x": X.numpy()})
        np.testing.assert_allclose(out, net(X).detach().numpy(), rtol=0, atol=1e-6)
    finally:
        ACTIVATIONS.pop("leaky_onnx")


# -- the app: plugins=[...] ----------------------------------------------------------------------
PLUGIN = '''
"""A plugin: registers a leaky ReLU and a Poisson head (and notes each import in $PLUGIN_MARKER)."""
import os

import torch
import torch.nn.functional as F
from torch import nn

import lecturenn as ln

if os.environ.get("PLUGIN_MARKER"):
    with open(os.environ["PLUGIN_MARKER"], "a") as f:
        f.write("imported\\n")


def cost(z, Y, weight=None):
    per_row = (torch.exp(z) - Y * z).sum(dim=1)
    return per_row.sum() if weight is None else (per_row * weight).sum()


ln.register_activation("my_leaky", lambda z: F.leaky_relu(z, 0.01),
                       lambda a: (a > 0).to(a.dtype) * 0.99 + 0.01,
                       torch_module=lambda: nn.LeakyReLU(0.01))
ln.register_head("my_poisson", torch.exp, cost, lambda h, Y, inplace=False: h.sub_(Y) if inplace else h - Y,
                 valid=lambda Y: (Y >= 0).all(), tasks=("regression",))
'''

QUIET = ["++trainer.enable_progress_bar=false", "callbacks.progress_bar=null"]


@pytest.mark.slow
def test_app_trains_evaluates_and_predicts_with_plugins(tmp_path):
    pytest.importorskip("hydra")
    (tmp_path / "reg_plugin.py").write_text(PLUGIN)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 2))
    y = rng.poisson(np.exp(0.6 * x[:, 0] - 0.4 * x[:, 1]))
    table = "x1,x2,count\n" + "".join(f"{a:.4f},{b:.4f},{c}\n" for (a, b), c in zip(x, y))
    (tmp_path / "counts.csv").write_text(table)
    marker = tmp_path / "imports.txt"
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    env["PLUGIN_MARKER"] = str(marker)
    run = tmp_path / "run"
    proc = run_script(
        "train.py",
        "plugins=[reg_plugin]",
        "data=table",
        f"data.path={tmp_path / 'counts.csv'}",
        "data.target=count",
        "data.task=regression",
        "data.standardize=false",
        "model.activation=my_leaky",
        "model.head=my_poisson",
        "model.hidden_sizes=[6]",
        "model.lam=0.0",
        "optimizer.lr=0.05",
        "trainer.max_epochs=25",
        f"hydra.run.dir={run}",
        *QUIET,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "g = my_leaky" in proc.stdout and "head my_poisson" in proc.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/mse"] < float(np.var(y))  # better than predicting the mean
    ckpt = run / "checkpoints" / "last.ckpt"
    hp = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    assert (hp["activation"], hp["head"]) == ("my_leaky", "my_poisson")
    assert "reg_plugin" in (run / ".hydra" / "config.yaml").read_text()  # recorded ...
    assert marker.read_text().count("imported") == 1

    # ... but never imported from there: eval without plugins= refuses, naming the way out
    proc = run_script(
        "eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'e1'}", cwd=tmp_path, env=env
    )
    assert proc.returncode == 2
    assert "unknown output head 'my_poisson'" in proc.stderr and "pass plugins=[<module>]" in proc.stderr
    assert marker.read_text().count("imported") == 1
    proc = run_script(
        "eval.py", "plugins=[reg_plugin]", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'e2'}",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "e2" / "eval_metrics.json").read_text())
    assert math.isfinite(evaluated["test/mse"]) and evaluated["test/mse"] < float(np.var(y))
    proc = run_script(
        "predict.py", "plugins=[reg_plugin]", f"ckpt_path={ckpt}", f"input={tmp_path / 'counts.csv'}",
        f"output={tmp_path / 'pred.csv'}", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    predictions = np.loadtxt(tmp_path / "pred.csv", delimiter=",", skiprows=1, usecols=3)
    assert len(predictions) == 150 and (predictions > 0).all()  # h = e^z: a positive rate


def test_load_plugins_refuses_bad_values(tmp_path, monkeypatch):
    pytest.importorskip("hydra")
    from omegaconf import OmegaConf

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from app import Failed, load_plugins
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert load_plugins(OmegaConf.create({"plugins": []})) == []
    with pytest.raises(Failed) as err:
        load_plugins(OmegaConf.create({"plugins": ["no_such_module_xyz"]}))
    assert "plugins[0]='no_such_module_xyz' could not be imported: ModuleNotFoundError" in err.value.message
    with pytest.raises(Failed) as err:
        load_plugins(OmegaConf.create({"plugins": "my_plugin"}))
    assert "config: plugins='my_plugin' is invalid; expected a list of" in err.value.message
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('plugin bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(Failed) as err:
        load_plugins(OmegaConf.create({"plugins": ["broken_plugin"]}))
    assert "RuntimeError: plugin bug" in err.value.message
    # a plugin that exits (hostile round 3: rc 0, nothing trained, nothing said) is refused too
    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit(0)\n")
    with pytest.raises(Failed) as err:
        load_plugins(OmegaConf.create({"plugins": ["exiting_plugin"]}))
    assert "plugins[0]='exiting_plugin' could not be imported: called sys.exit(0)" in err.value.message


# -- §7: no import cycle ---------------------------------------------------------------------------
def _module_level_imports(path: Path, package: str) -> set[str]:
    """lecturenn modules ``path`` imports when it is executed (function bodies excluded)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue  # runs later (a class body runs now, but none imports)
            if isinstance(item, ast.If) and "TYPE_CHECKING" in ast.unparse(item.test):
                stack.extend(item.orelse)  # annotations only: never runs
                continue
            if isinstance(item, ast.Import):
                found.update(a.name for a in item.names)
            elif isinstance(item, ast.ImportFrom):
                base = item.module or ""
                if item.level:
                    parts = package.split(".")[: len(package.split(".")) - item.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in item.names)
            stack.extend(ast.iter_child_nodes(item))
    return found


def test_no_module_level_import_cycle():
    modules = {}
    for path in (ROOT / "lecturenn").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        package = name if is_package else ".".join(parts[:-1])
        modules[name] = (path, package)
    graph = {}
    for name, (path, package) in modules.items():
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets = set()
        for imported in _module_level_imports(path, package):
            parts = imported.split(".")  # importing a.b.c runs a, a.b and a.b.c (ancestors: running)
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[name] = {t for t in targets if t in modules and t != name and t not in ancestors}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert graph["lecturenn.interop.torch_nn"] >= {"lecturenn.network"}  # the walk sees real edges


def test_interop_first_in_a_fresh_process():
    code = (
        "import lecturenn.interop.torch_nn as t, lecturenn.interop.sklearn, lecturenn.interop.files;"
        "import lecturenn as ln; net = ln.ThetaMLP([2, 3, 1]);"
        "assert type(ln.ThetaMLP.from_sequential(net.to_sequential())) is ln.ThetaMLP"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_example_plugin(tmp_path):
    """examples/my_plugin.py (the README's code) registers entries that pass the gradient check (also
    weighted); the log-cosh head exports to torch.nn and is refused by name by to_sklearn."""
    code = (
        "import torch, lecturenn as ln, my_plugin\n"
        "net = ln.ThetaMLP([3, 5, 2], 'leaky', 'logcosh', generator=0, dtype=torch.float64)\n"
        "with torch.no_grad(): net.thetas[0][:, 0] += 2.0\n"  # away from the kink
        "X = torch.randn(6, 3, dtype=torch.float64); Y = 3 * torch.randn(6, 2, dtype=torch.float64)\n"
        "check = ln.gradient_check(net, X, Y, lam=0.1); assert check.passed, str(check)\n"
        "check = ln.gradient_check(net, X, Y, sample_weight=torch.rand(6) + 0.5); assert check.passed\n"
        "torch.testing.assert_close(net.to_sequential()(X), net(X))\n"
        "try: ln.to_sklearn(ln.ThetaMLP([3, 4, 1], 'tanh', 'logcosh'))\n"
        "except ValueError as err: assert \"output head 'logcosh' has no scikit-learn\" in str(err), err\n"
        "else: raise AssertionError('to_sklearn accepted a head without a scikit-learn name')\n"
    )
    path = os.pathsep.join([str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize(
    "counts,standardize,expect",
    [("negative", "false", "do not suit model.head=my_poisson"),
     ("counts", "true", "data.standardize=true standardises regression targets too")],
)  # fmt: skip
def test_app_refuses_targets_the_head_cannot_take(tmp_path, counts, standardize, expect):
    """Hostile round (session 6): the app checks the targets the network will see against the head's
    ``valid`` before training (negative counts for a Poisson head; counts shifted negative by
    data.standardize=true), exit 2 with one line; nothing is trained."""
    pytest.importorskip("hydra")
    (tmp_path / "reg_plugin.py").write_text(PLUGIN)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = rng.poisson(2.0, size=60) - (3 if counts == "negative" else 0)
    table = "x1,x2,count\n" + "".join(f"{a:.4f},{b:.4f},{c}\n" for (a, b), c in zip(x, y))
    (tmp_path / "counts.csv").write_text(table)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    env["PLUGIN_MARKER"] = str(tmp_path / "imports.txt")
    run = tmp_path / "run"
    proc = run_script(
        "train.py", "plugins=[reg_plugin]", "data=table", f"data.path={tmp_path / 'counts.csv'}",
        "data.target=count", "data.task=regression", f"data.standardize={standardize}",
        "model.head=my_poisson", "trainer.max_epochs=2", f"hydra.run.dir={run}", *QUIET,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expect in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (run / "checkpoints").exists()
