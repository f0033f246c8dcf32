"""The built-in poisson head (h = e^z, cost_i = Σ_k (e^z − y z), δ = h − y) and
``ThetaMLPRegressor(loss="poisson")``, against independent references: torch.distributions.Poisson's
log-probability, autograd and finite differences, scikit-learn's ``MLPRegressor(loss="poisson")`` and
its public ``mean_poisson_deviance``."""

import math
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import xlogy
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import mean_poisson_deviance, r2_score
from sklearn.neural_network import MLPRegressor
from torch import nn

import lecturenn as ln
from lecturenn.estimators import ThetaMLPRegressor
from lecturenn.heads import HEADS, TASK_HEADS, Exp, head_for_task

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64


def counts(n=40, d=3, seed=0):
    """Rows X (n, d) and counts y ~ Poisson(e^{0.5 x_1 − 0.3 x_2})."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, rng.poisson(np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1])).astype(float)


def half_deviance_constant(y, w=None):
    """(1/Σw) Σ_i w_i Σ_k (y log y − y): scikit-learn's half deviance minus the head's J (its data term)."""
    Y = np.asarray(y, dtype=float).reshape(len(y), -1)
    return float(np.average((xlogy(Y, Y) - Y).sum(axis=1), weights=w))


# -- the head ------------------------------------------------------------------------------------
def test_the_entry_names_itself_in_every_format():
    head = HEADS["poisson"]
    assert (head.sklearn, head.onnx, head.tasks) == ("exp", "Exp", ("regression",))
    assert type(head.torch_module()) is Exp and list(head.torch_module().parameters()) == []
    assert TASK_HEADS["regression"] == "identity"  # the squared error stays regression's default
    assert head_for_task("regression", "poisson") is head
    with pytest.raises(ValueError, match="serves regression, not the data's task 'binary'"):
        head_for_task("binary", "poisson")


def test_cost_is_the_poisson_negative_log_likelihood_without_log_y_factorial():
    """cost_i = −log p(y_i | rate e^{z_i}) − log y_i!, from torch.distributions.Poisson; δ = e^z − y."""
    head, gen = HEADS["poisson"], torch.Generator().manual_seed(0)
    z = torch.randn(7, 2, generator=gen, dtype=F64)
    Y = torch.poisson(torch.full((7, 2), 3.0, dtype=F64), generator=gen)
    nll = -torch.distributions.Poisson(z.exp()).log_prob(Y) - torch.lgamma(Y + 1)  # (7, 2)
    torch.testing.assert_close(head.cost_sum(z, Y), nll.sum(), rtol=1e-13, atol=0)
    w = torch.rand(7, generator=gen, dtype=F64) * 3
    torch.testing.assert_close(head.cost_sum(z, Y, w), (w * nll.sum(dim=1)).sum(), rtol=1e-13, atol=0)
    torch.testing.assert_close(head.h(z), z.exp())
    torch.testing.assert_close(head.delta(head.h(z), Y), z.exp() - Y, rtol=0, atol=0)
    cost, delta = head.cost_and_error(z, Y)  # the one-exp speed option: the same numbers
    torch.testing.assert_close(cost, head.cost_sum(z, Y), rtol=1e-14, atol=0)
    torch.testing.assert_close(delta, z.exp() - Y, rtol=0, atol=0)
    # by hand: z = [0.1, 1.1], y = [1, 3] -> (e^0.1 − 0.1) + (e^1.1 − 3.3)
    z, Y = torch.tensor([[0.1], [1.1]], dtype=F64), torch.tensor([[1.0], [3.0]], dtype=F64)
    assert head.cost_sum(z, Y).item() == pytest.approx(math.exp(0.1) - 0.1 + math.exp(1.1) - 3.3, abs=1e-15)


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_gradient_check_float64_with_and_without_weights(backprop):
    net = ln.ThetaMLP([3, 5, 4, 2], "tanh", "poisson", backprop, generator=1, dtype=F64)
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(9, 3, generator=gen, dtype=F64)
    Y = torch.poisson(torch.full((9, 2), 2.0, dtype=F64), generator=gen)
    w = torch.rand(9, generator=gen, dtype=F64) + 0.5
    for weight in (None, w):
        check = ln.gradient_check(net, X, Y, lam=0.7, sample_weight=weight)
        assert check.passed and check.relative_difference < 1e-8, str(check)


def test_manual_equals_autograd_and_the_teaching_path():
    manual = ln.ThetaMLP([4, 6, 3], "relu", "poisson", "manual", generator=3, dtype=F64)
    auto = ln.ThetaMLP([4, 6, 3], "relu", "poisson", "autograd", dtype=F64)
    auto.load_state_dict(manual.state_dict())
    gen = torch.Generator().manual_seed(4)
    X = torch.randn(11, 4, generator=gen, dtype=F64)
    Y = torch.poisson(torch.full((11, 3), 1.5, dtype=F64), generator=gen)
    Jm, Ja = manual.cost(X, Y, lam=0.3), auto.cost(X, Y, lam=0.3)
    torch.testing.assert_close(Jm, Ja, rtol=1e-13, atol=0)
    Jm.backward()
    Ja.backward()
    bp = ln.backpropagate(manual, X, Y, lam=0.3)
    torch.testing.assert_close(bp.delta[3], (manual(X) - Y).detach())  # δ^(L+1) = a − y
    for l in (1, 2):
        torch.testing.assert_close(manual.theta(l).grad, auto.theta(l).grad, rtol=1e-11, atol=1e-13)
        torch.testing.assert_close(bp.D[l], auto.theta(l).grad, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize(
    "y,message",
    [([1.0, -1.0], r"the poisson head needs targets y >= 0 \(counts or rates\).*\[-1\.0\]"),
     ([1.0, float("nan")], "Y contains NaN or inf"),
     ([1.0, float("inf")], "Y contains NaN or inf")],
)  # fmt: skip
def test_bad_targets_are_named(y, message):
    net = ln.ThetaMLP([2, 3, 1], "tanh", "poisson", dtype=F64)
    with pytest.raises(ValueError, match=message):
        net.cost(torch.zeros(2, 2, dtype=F64), torch.tensor(y, dtype=F64))


def test_rates_are_targets_too_and_overflow_is_reported():
    net = ln.ThetaMLP.from_thetas([torch.tensor([[0.2, 1.0]], dtype=F64)], output="poisson")
    X, Y = torch.tensor([[0.0], [1.0]], dtype=F64), torch.tensor([0.25, 0.0], dtype=F64)  # y ≥ 0, not integer
    assert net.cost(X, Y).item() == pytest.approx((math.exp(0.2) - 0.05 + math.exp(1.2)) / 2, abs=1e-15)
    big = ln.ThetaMLP.from_thetas([torch.tensor([[100.0, 1.0]])], output="poisson")  # e^100: inf in float32
    with pytest.raises(FloatingPointError, match=r"J\(Θ\) = inf is not finite .*the output overflowed"):
        big.cost(X.float(), Y.float())


def test_torch_nn_and_onnx_export():
    net = ln.ThetaMLP([3, 5, 2], "tanh", "poisson", generator=0, dtype=F64)
    seq = net.to_sequential()
    assert [type(m) for m in seq] == [nn.Linear, nn.Tanh, nn.Linear, Exp]
    X = torch.randn(6, 3, dtype=F64)
    # nn.Linear adds the bias after the product (addmm), ThetaMLP multiplies [1, a] by Θ: rounding apart
    torch.testing.assert_close(seq(X), net(X), rtol=1e-14, atol=1e-15)
    back = ln.ThetaMLP.from_sequential(seq)
    assert back.head is HEADS["poisson"]
    torch.testing.assert_close(back(X), net(X), rtol=0, atol=0)


@pytest.mark.slow  # ~8 s: torch.onnx.export
def test_onnx_runs_the_exp_head(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = ln.ThetaMLP([3, 4, 1], "tanh", "poisson", generator=0)
    path = ln.export_onnx(net, tmp_path / "poisson.onnx")
    X = torch.randn(5, 3)
    (out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": X.numpy()})
    np.testing.assert_allclose(out, net(X).detach().numpy(), rtol=1e-6, atol=0)


# -- scikit-learn: MLPRegressor(loss="poisson") ------------------------------------------------------
def test_sklearns_own_loss_is_the_lectures_J_plus_the_deviance_constant():
    """scikit-learn's lbfgs fit reports loss_ at its final weights; the same weights in a ThetaMLP give
    J(Θ) with λ = alpha, and J + (1/Σw) Σ w (y log y − y) is that loss_ (with and without weights)."""
    X, y = counts(60)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    for weight in (None, w):
        sk = MLPRegressor(loss="poisson", hidden_layer_sizes=(4,), activation="tanh", solver="lbfgs",
                          alpha=0.3, max_iter=30, random_state=0)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk.fit(X, y, sample_weight=weight)
        net = ln.from_sklearn(sk)
        assert net.head is HEADS["poisson"] and net.thetas[0].dtype == F64
        sw = None if weight is None else torch.from_numpy(weight)
        J = net.cost(torch.from_numpy(X), torch.from_numpy(y), lam=0.3, sample_weight=sw).item()
        assert J + half_deviance_constant(y, weight) == pytest.approx(sk.loss_, rel=1e-12, abs=0)


def test_loss_poisson_fits_like_sklearn_and_reports_its_loss():
    X, y = counts(60)
    est = ThetaMLPRegressor((4,), activation="tanh", loss="poisson", solver="lbfgs", alpha=0.3, max_iter=40,
                            dtype="float64", random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.out_activation_ == "exp" and est.net_.head is HEADS["poisson"]
    pred = est.predict(X)
    np.testing.assert_allclose(pred, np.exp(est.net_.logits(torch.from_numpy(X)).detach().numpy()[:, 0]))
    # loss_ = scikit-learn's half deviance (its public metric halved) + alpha/(2n) ΣW² ...
    penalty = 0.3 / (2 * len(y)) * sum((c**2).sum() for c in est.coefs_)
    assert est.loss_ == pytest.approx(mean_poisson_deviance(y, pred) / 2 + penalty, rel=1e-12, abs=0)
    # ... = the lecture's J at the same Θ plus the targets' constant
    J = est.net_.cost(torch.from_numpy(X), torch.from_numpy(y), lam=0.3).item()
    assert est.loss_ == pytest.approx(J + half_deviance_constant(y), rel=1e-12, abs=0)
    assert est.loss_curve_[-1] == est.loss_ and est.best_loss_ == min(est.loss_curve_)
    # to_sklearn: an MLPRegressor(loss="poisson") with the same predictions; and back
    sk = ln.to_sklearn(est.net_)
    assert type(sk) is MLPRegressor and sk.loss == "poisson" and sk.out_activation_ == "exp"
    np.testing.assert_allclose(sk.predict(X), pred, rtol=1e-13, atol=0)
    np.testing.assert_allclose(
        ln.from_sklearn(sk)(torch.from_numpy(X)).detach().numpy()[:, 0], pred, rtol=1e-13
    )
    assert est.score(X, y) > 0.2  # R² of e^z, not of z
    # early stopping's validation score is the same R² of ŷ = e^z
    z, Y = est.net_.logits(torch.from_numpy(X)).detach(), torch.from_numpy(y)[:, None]
    assert est._val_score(z, Y).item() == pytest.approx(r2_score(y, pred), rel=1e-12)


def test_mini_batch_loss_is_the_epoch_mean_plus_the_constant():
    X, y = counts(50)
    est = ThetaMLPRegressor((3,), loss="poisson", solver="gd", learning_rate_init=0.05, max_iter=3,
                            dtype="float64", random_state=0, verbose=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    # gd: one full-batch step per epoch, loss_ is J before the last step; refit 2 epochs to get that Θ
    before = ThetaMLPRegressor(**{**est.get_params(), "max_iter": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        before.fit(X, y)
    J = before.net_.cost(torch.from_numpy(X), torch.from_numpy(y), lam=est.alpha).item()
    assert est.loss_ == pytest.approx(J + half_deviance_constant(y), rel=1e-12)


def test_bad_loss_and_negative_targets_are_refused_before_any_work():
    X, y = counts(20)
    with pytest.raises(
        ValueError, match=r"^loss must be one of \['squared_error', 'poisson'\], got 'huber'$"
    ):
        ThetaMLPRegressor(loss="huber").fit(X, y)
    with pytest.raises(ValueError, match="loss must be one of"):
        ThetaMLPRegressor(loss=None).fit(X, y)
    negative = "^Some value\\(s\\) of y are negative which is not allowed for Poisson regression.$"
    est = ThetaMLPRegressor((3,), loss="poisson", max_iter=1)
    with pytest.raises(ValueError, match=negative):
        est.fit(X, y - 1)
    assert not hasattr(est, "net_")
    with pytest.raises(ValueError, match=negative):
        est.partial_fit(X, y - 1)
    with pytest.raises(ValueError, match=negative):  # checked as given: in float32 it would be -0.0
        est.fit(X, np.r_[-1e-300, y[1:]])
    # MLPRegressor's first positional parameter is loss; ours is hidden_layer_sizes
    with pytest.raises(ValueError, match=r"pass loss='poisson' by keyword"):
        ThetaMLPRegressor("poisson").fit(X, y)
    # a warm start may not swap the head under the fitted Θ
    est = ThetaMLPRegressor((3,), max_iter=2, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    with pytest.raises(ValueError, match=r"output head, dtype\) changed .*'identity'.*'poisson'"):
        est.set_params(loss="poisson").fit(X, y)


def test_save_load_and_pickle_keep_the_head(tmp_path):
    X, y = counts(30)
    est = ThetaMLPRegressor((4,), loss="poisson", max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    loaded = ThetaMLPRegressor.load(est.save(tmp_path / "poisson.npz"))
    assert loaded.loss == "poisson" and loaded.out_activation_ == "exp"
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))
    assert (est.predict(X) > 0).all()


# -- the app -----------------------------------------------------------------------------------------
def test_app_trains_the_poisson_head_and_refuses_negative_targets(tmp_path, capsys):
    """In process, as tests/test_reliability.py runs train.py: model.head=poisson on a counts table
    trains (the checkpoint records the head); negative targets exit 2 with one line, nothing trained."""
    pytest.importorskip("hydra")
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "scripts"))
    from test_app import QUIET, make_cfg
    from train import train

    X, y = counts(80, d=2)
    for name, target in (("counts", y), ("negative", y - 2)):
        rows = "".join(f"{a:.4f},{b:.4f},{c:g}\n" for (a, b), c in zip(X, target))
        (tmp_path / f"{name}.csv").write_text("x1,x2,count\n" + rows)
    args = ["data=table", "data.target=count", "data.task=regression", "data.standardize=false",
            "model.head=poisson", "model.hidden_sizes=[3]", "trainer.max_epochs=2", "test=false",
            "callbacks.plots=null", *QUIET]  # fmt: skip
    run = tmp_path / "run"
    train(make_cfg(run, [*args, f"data.path={tmp_path / 'counts.csv'}"]))
    hp = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hp["head"] == "poisson"
    capsys.readouterr()
    bad = tmp_path / "bad"
    with pytest.raises(SystemExit) as info:
        train(make_cfg(bad, [*args, f"data.path={tmp_path / 'negative.csv'}"]))
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert (
        len(lines) == 1
        and "do not suit model.head=poisson: the poisson head needs targets y >= 0" in lines[0]
    )
    assert not (bad / "checkpoints").exists()
