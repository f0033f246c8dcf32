"""ThetaMLPClassifier / ThetaMLPRegressor: scikit-learn conformance, the training engine's gradient
against net.cost().backward(), the lecture's λ, and the estimator API (pipelines, pickles, ...)."""

import io
import pickle
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits, load_iris, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import lecturenn as ln
from lecturenn.estimators import ThetaMLPClassifier, ThetaMLPRegressor
from lecturenn.estimators._engine import Engine
from lecturenn.regularization import batch_lam
from lecturenn.theta import with_bias_unit

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ---------------------------------------------------------------------------------------------
# scikit-learn's conformance suite
# ---------------------------------------------------------------------------------------------
_EARLY_STOPPING_TINY = (
    "the check fits on at most 10 rows, so validation_fraction=0.1 leaves fewer than 2 held-out rows "
    "and fit raises ValueError('The validation set is too small...'), as MLPRegressor does"
)
_EARLY_STOPPING_PARTIAL = "partial_fit raises ValueError with early_stopping=True, as MLPRegressor does"


_MINI_BATCH_WEIGHTS = (
    "mini-batch solvers: repeated rows fall into other batches (and shuffles) than a weighted row, "
    "so weights equal repetition only in expectation, as for MLPClassifier's sgd/adam; the full-batch "
    "solvers match (tests/test_estimator_sample_weight.py)"
)
_FLOAT32_WEIGHTS = (
    "float32 Θ (the default dtype): weights and repeated rows differ by float32 rounding, beyond the "
    "check's rtol=1e-7; with dtype='float64' the check passes (tests/test_estimator_sample_weight.py)"
)


def _expected_failed_checks(est):
    weights = _FLOAT32_WEIGHTS if est.solver in ("lbfgs", "gd") else _MINI_BATCH_WEIGHTS
    failing = {} if est.solver == "gd" and est.dtype == "float64" else {
        "check_sample_weight_equivalence_on_dense_data": weights,
        "check_sample_weight_equivalence_on_sparse_data": weights,
    }  # fmt: skip
    if not est.early_stopping:
        return failing
    return {
        **failing,
        "check_fit_score_takes_y": _EARLY_STOPPING_PARTIAL,
        "check_n_features_in_after_fitting": _EARLY_STOPPING_PARTIAL,
        "check_estimators_partial_fit_n_features": _EARLY_STOPPING_PARTIAL,
        "check_estimators_nan_inf": _EARLY_STOPPING_TINY,
        "check_regressors_no_decision_function": _EARLY_STOPPING_TINY,
        "check_fit2d_1feature": _EARLY_STOPPING_TINY,
    }


_SMALL = dict(hidden_layer_sizes=(8,), max_iter=50, random_state=0)


@parametrize_with_checks(
    [
        ThetaMLPClassifier(**_SMALL, learning_rate_init=0.05),  # adam, manual δ-recursion
        ThetaMLPClassifier(**_SMALL, solver="lbfgs"),
        ThetaMLPClassifier(**_SMALL, solver="sgd", learning_rate_init=0.05, backprop="autograd"),
        ThetaMLPClassifier(**_SMALL, solver="gd", learning_rate_init=0.5, activation="tanh", dtype="float64"),
        ThetaMLPRegressor(**_SMALL, learning_rate_init=0.05),
        ThetaMLPRegressor(**_SMALL, solver="lbfgs", activation="softplus"),
        ThetaMLPRegressor(**_SMALL, learning_rate_init=0.05, early_stopping=True),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_conformance(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------------------------
# the engine: the same gradient as net.cost(X, Y, λ).backward()
# ---------------------------------------------------------------------------------------------
def _targets(head, n, K, gen):
    if head == "softmax":
        idx = torch.randint(0, K, (n,), generator=gen)
        return torch.nn.functional.one_hot(idx, K).double()
    if head == "sigmoid":
        return torch.randint(0, 2, (n, K), generator=gen).double()
    return torch.randn(n, K, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("head", ["softmax", "sigmoid", "identity"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "softplus", "identity"])
@pytest.mark.parametrize("hidden", [[], [6], [5, 4]])
def test_engine_gradient_is_dcost(head, activation, hidden):
    gen = torch.Generator().manual_seed(1)
    K = 1 if head == "sigmoid" and not hidden else 3
    sizes = [4, *hidden, K]
    n, N, lam = 7, 20, 0.7  # a batch of n rows out of N is charged λ·n/N
    X = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    Y = _targets(head, n, K, gen)
    for backprop in ("manual", "autograd"):
        ref = ln.ThetaMLP(
            sizes, hidden=activation, output=head, backprop=backprop, generator=3, dtype=torch.float64
        )
        J = ref.cost(X, Y, lam * n / N)
        J.backward()
        net = ln.ThetaMLP(sizes, hidden=activation, output=head, generator=3, dtype=torch.float64)
        engine = Engine(net, "adam", ThetaMLPClassifier(), "manual")
        engine.accumulate(with_bias_unit(X), Y, batch_lam(lam, n, N))
        assert engine.loss_sum.item() == pytest.approx(n * J.item(), rel=1e-12)
        for l, (grad, theta) in enumerate(zip(engine.grads, ref.thetas), start=1):
            torch.testing.assert_close(grad, theta.grad, rtol=1e-10, atol=1e-12, msg=f"D^({l})")
            assert net.thetas[l - 1].grad is grad  # D^(l) is the network's own .grad


def test_engine_trains_the_networks_own_parameters():
    """The engine's flat parameter is the storage of net.thetas: a step moves net.cost, and the
    Parameter objects are the network's own (no copies to sync back)."""
    X = torch.randn(9, 3, dtype=torch.float64)
    Y = _targets("softmax", 9, 2, torch.Generator().manual_seed(0))
    net = ln.ThetaMLP([3, 4, 2], output="softmax", generator=0, dtype=torch.float64)
    params = list(net.thetas)
    engine = Engine(net, "sgd", ThetaMLPClassifier(learning_rate_init=0.5), "manual")
    before = net.cost(X, Y).item()
    engine.accumulate(with_bias_unit(X), Y, 0.0)
    engine.step()
    assert all(p is q for p, q in zip(net.thetas, params)) and engine.drives(net, "sgd")
    assert net.cost(X, Y).item() < before
    flat = torch.cat([t.detach().reshape(-1) for t in net.thetas])
    torch.testing.assert_close(flat, engine.param.detach(), rtol=0, atol=0)


def test_minibatch_gradients_average_to_the_full_batch_D():
    """alpha is the lecture's λ for any batch size: Σ_b (n_b/N) D_b = Δ/N + (λ/N)Θ."""
    gen = torch.Generator().manual_seed(0)
    N, lam = 23, 2.0
    X = torch.randn(N, 5, generator=gen, dtype=torch.float64)
    Y = _targets("softmax", N, 3, gen)
    net = ln.ThetaMLP([5, 6, 3], hidden="tanh", output="softmax", generator=0, dtype=torch.float64)
    engine = Engine(net, "sgd", ThetaMLPClassifier(), "manual")
    X1 = with_bias_unit(X)
    total = torch.zeros_like(engine.param)
    for i in range(0, N, 5):
        n = min(i + 5, N) - i
        engine.accumulate(X1[i : i + 5], Y[i : i + 5], batch_lam(lam, n, N))
        total += engine.param.grad * n / N
    batch_loss = engine.loss_sum.item() / N
    engine.loss_sum.zero_()
    engine.accumulate(X1, Y, batch_lam(lam, N, N))
    torch.testing.assert_close(total, engine.param.grad, rtol=1e-12, atol=1e-14)
    assert batch_loss == pytest.approx(net.cost(X, Y, lam).item(), rel=1e-12)  # Θ fixed: Σ n_b J_b / N = J


def test_fast_optimizer_step_matches_optimizer_step():
    """Pins the one private torch call (lecturenn.estimators._fast_step): the functional update
    gives bitwise the Θ of optimizer.step(), for every stochastic solver."""
    for solver in ("adam", "sgd", "gd"):
        steps = []
        for fast in (True, False):
            net = ln.ThetaMLP([3, 4, 2], output="softmax", generator=0, dtype=torch.float64)
            engine = Engine(net, solver, ThetaMLPClassifier(learning_rate_init=0.1), "manual")
            step = engine.step if fast else engine.optimizer.step
            gen = torch.Generator().manual_seed(0)
            for _ in range(4):
                engine.param.grad.copy_(torch.randn(engine.param.shape, generator=gen, dtype=torch.float64))
                step()
            steps.append(engine.param.detach().clone())
        torch.testing.assert_close(steps[0], steps[1], rtol=0, atol=0, msg=solver)


def test_fast_step_takes_the_functional_path_after_the_first_step(monkeypatch):
    """After its first step() (which creates the state) fast_step no longer calls step(): if this
    fails after a torch upgrade, the functional API changed and the fast path silently fell back."""
    net = ln.ThetaMLP([3, 4, 2], output="softmax", generator=0, dtype=torch.float64)
    engine = Engine(net, "adam", ThetaMLPClassifier(), "manual")
    engine.param.grad.fill_(0.5)
    engine.step()
    calls = []
    monkeypatch.setattr(engine.optimizer, "step", lambda *a, **k: calls.append(1))
    before = engine.param.detach().clone()
    engine.step()
    assert not calls and not torch.equal(before, engine.param.detach())


def test_manual_and_autograd_fits_agree():
    X, y = load_iris(return_X_y=True)
    fits = [
        ThetaMLPClassifier(
            (6,),
            activation="tanh",
            alpha=0.5,
            batch_size=32,
            max_iter=15,
            random_state=0,
            backprop=bp,
            dtype="float64",
        ).fit(X, y)  # fmt: skip
        for bp in ("manual", "autograd")
    ]
    np.testing.assert_allclose(fits[0].loss_curve_, fits[1].loss_curve_, rtol=1e-10)
    for a, b in zip(fits[0].thetas_, fits[1].thetas_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the lecture's cost: loss_ is J(Θ)
# ---------------------------------------------------------------------------------------------
def test_lbfgs_loss_is_the_lecture_cost():
    X, y = load_iris(return_X_y=True)
    clf = ThetaMLPClassifier((5,), solver="lbfgs", alpha=1.0, dtype="float64", random_state=0).fit(X, y)
    J = clf.net_.cost(torch.tensor(X), torch.tensor(y), lam=1.0).item()
    assert clf.loss_ == pytest.approx(J, rel=1e-12)
    assert clf.loss_curve_[-1] == clf.loss_ and len(clf.loss_curve_) == clf.n_iter_

    Xr, yr = make_regression(60, 3, n_targets=2, noise=1.0, random_state=0)
    reg = ThetaMLPRegressor((5,), solver="lbfgs", alpha=0.3, dtype="float64", random_state=0).fit(Xr, yr / 50)
    J = reg.net_.cost(torch.tensor(Xr), torch.tensor(yr / 50), lam=0.3).item()  # (1/N) Σ ‖y − ŷ‖² + R
    assert reg.loss_ == pytest.approx(J, rel=1e-12)


def test_gd_is_full_batch_gradient_descent():
    """solver="gd": Θ ← Θ − η D(Θ) once per epoch on all rows, the lecture's loop."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = ThetaMLPClassifier(
        (4,), solver="gd", alpha=0.1, learning_rate_init=0.3, max_iter=1, warm_start=True, dtype="float64",
        random_state=0,
    ).fit(X, y)  # fmt: skip
    net = ln.ThetaMLP([4, 4, 3], hidden="relu", output="softmax", dtype=torch.float64)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    for epoch in range(1, 4):
        with torch.no_grad():
            for mine, theirs in zip(net.thetas, clf.thetas_):
                mine.copy_(torch.from_numpy(theirs))
        net.zero_grad()
        J = net.cost(Xt, yt, lam=0.1)  # the full-batch J(Θ) and, by backward, D(Θ)
        J.backward()
        clf.fit(X, y)  # one more epoch (warm start; plain gradient descent has no optimizer state)
        assert clf.n_iter_ == 1 and len(clf.loss_curve_) == epoch + 1  # this call's epochs; the curve goes on
        assert clf.loss_curve_[-1] == pytest.approx(J.item(), rel=1e-12)
        for theta, fitted in zip(net.thetas, clf.thetas_):
            np.testing.assert_allclose(
                fitted, (theta - 0.3 * theta.grad).detach().numpy(), rtol=1e-12, atol=1e-14
            )


# ---------------------------------------------------------------------------------------------
# tasks and shapes
# ---------------------------------------------------------------------------------------------
def test_binary_multiclass_multilabel_heads():
    X, y = make_classification(120, 6, n_classes=3, n_informative=4, random_state=0)
    kw = dict(hidden_layer_sizes=(10,), max_iter=30, learning_rate_init=0.02, random_state=0)

    multi = ThetaMLPClassifier(**kw).fit(X, y)
    assert multi.out_activation_ == "softmax" and multi.n_outputs_ == 3 and multi.net_.sizes == [6, 10, 3]
    proba = multi.predict_proba(X)
    assert proba.shape == (120, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(multi.predict_log_proba(X), np.log(proba), rtol=1e-9, atol=1e-12)
    assert np.array_equal(multi.predict(X), multi.classes_[proba.argmax(axis=1)])

    labels = np.where(y == 1, "yes", "no")
    binary = ThetaMLPClassifier(**kw).fit(X, labels)
    assert binary.out_activation_ == "logistic" and binary.n_outputs_ == 1
    proba = binary.predict_proba(X)
    assert proba.shape == (120, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(binary.predict_log_proba(X), np.log(proba), rtol=1e-9, atol=1e-12)
    assert set(binary.predict(X)) <= {"yes", "no"}
    assert np.array_equal(binary.predict(X), binary.classes_[(proba[:, 1] > 0.5).astype(int)])

    Y = np.stack([y == 0, y == 1, (y == 2) | (X[:, 0] > 0)], axis=1).astype(int)
    multilabel = ThetaMLPClassifier(**kw).fit(X, Y)
    assert multilabel.out_activation_ == "logistic" and multilabel.n_outputs_ == 3
    assert multilabel.predict(X).shape == (120, 3) and set(np.unique(multilabel.predict(X))) <= {0, 1}
    proba = multilabel.predict_proba(X)
    assert proba.shape == (120, 3) and ((proba >= 0) & (proba <= 1)).all()
    assert np.array_equal(multilabel.predict(X), (proba > 0.5).astype(int))


def test_regression_shapes():
    X, Y = make_regression(80, 5, n_targets=3, random_state=0)
    reg = ThetaMLPRegressor((16,), max_iter=20, random_state=0).fit(X, Y / 100)
    assert reg.predict(X).shape == (80, 3) and reg.n_outputs_ == 3 and reg.out_activation_ == "identity"
    single = ThetaMLPRegressor((16,), max_iter=20, random_state=0).fit(X, Y[:, 0] / 100)
    assert single.predict(X).shape == (80,) and single.predict(X).dtype == np.float64
    x = np.linspace(-3, 3, 200).reshape(-1, 1)
    sine = ThetaMLPRegressor((32,), activation="tanh", solver="lbfgs", random_state=0).fit(
        x, np.sin(x).ravel()
    )
    assert sine.score(x, np.sin(x).ravel()) > 0.99  # universal approximation, as in the lecture


def test_fitted_attributes():
    X, y = load_iris(return_X_y=True)
    clf = ThetaMLPClassifier((7, 5), max_iter=5, random_state=0).fit(X, y)
    assert [t.shape for t in clf.thetas_] == [(7, 5), (5, 8), (3, 6)]
    assert all(isinstance(t, np.ndarray) and t.dtype == np.float32 for t in clf.thetas_)
    assert clf.n_layers_ == 4 and clf.n_features_in_ == 4 and clf.n_iter_ == 5 and clf.t_ == 5 * 150
    assert len(clf.loss_curve_) == 5 and clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ <= clf.loss_
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    np.testing.assert_array_equal(clf.coefs_[0], clf.thetas_[0][:, 1:].T)
    np.testing.assert_array_equal(clf.intercepts_[1], clf.thetas_[1][:, 0])
    assert isinstance(clf.net_, ln.ThetaMLP)
    for t, p in zip(clf.thetas_, clf.net_.thetas):
        np.testing.assert_array_equal(t, p.detach().cpu().numpy())
    assert ln.ThetaMLPClassifier is ThetaMLPClassifier and ln.ThetaMLPRegressor is ThetaMLPRegressor
    f64 = ThetaMLPClassifier((3,), max_iter=2, dtype="float64", random_state=0).fit(X, y)
    assert f64.thetas_[0].dtype == np.float64 and f64.net_.thetas[0].dtype == torch.float64


# ---------------------------------------------------------------------------------------------
# scikit-learn machinery
# ---------------------------------------------------------------------------------------------
def test_pipeline_and_grid_search():
    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", ThetaMLPClassifier(max_iter=20, random_state=0))])
    grid = GridSearchCV(
        pipe,
        {"mlp__hidden_layer_sizes": [(16,), (32,)], "mlp__learning_rate_init": [1e-3, 1e-2]},
        cv=2,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_params_["mlp__learning_rate_init"] == 1e-2
    assert grid.score(X, y) > 0.9


def test_pickle_round_trip():
    X, y = load_iris(return_X_y=True)
    clf = ThetaMLPClassifier((8,), max_iter=10, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    # partial_fit continues identically from the unpickled Θ, optimizer moments and RNG
    clf.partial_fit(X, y)
    again.partial_fit(X, y)
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), rtol=1e-6)

    reg = ThetaMLPRegressor((4,), solver="lbfgs", random_state=0).fit(X[:, :3], X[:, 3])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X[:, :3]), reg.predict(X[:, :3]))


def test_reproducible_with_random_state():
    X, y = load_iris(return_X_y=True)
    fit = lambda seed: ThetaMLPClassifier((8,), max_iter=5, batch_size=16, random_state=seed).fit(X, y)  # noqa: E731
    a, b, c = fit(0), fit(0), fit(1)
    for ta, tb in zip(a.thetas_, b.thetas_):
        np.testing.assert_array_equal(ta, tb)
    assert a.loss_curve_ == b.loss_curve_
    assert not np.array_equal(a.thetas_[0], c.thetas_[0])
    rs = ThetaMLPClassifier((8,), max_iter=2, random_state=np.random.RandomState(0)).fit(X, y)
    assert rs.n_iter_ == 2


def test_warm_start_continues():
    X, y = load_iris(return_X_y=True)
    clf = ThetaMLPClassifier((8,), max_iter=5, random_state=0, warm_start=True).fit(X, y)
    theta_before = clf.thetas_[0].copy()
    clf.fit(X, y)
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 10  # as MLPClassifier: this fit's 5 epochs
    assert not np.array_equal(clf.thetas_[0], theta_before)
    cold = ThetaMLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    assert clf.loss_curve_[:5] == cold.loss_curve_
    assert clf.loss_curve_[5] < cold.loss_curve_[0]  # continued from Θ, not re-initialised
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X[y < 2], y[y < 2])
    with pytest.raises(ValueError, match="changed"):
        clf.set_params(hidden_layer_sizes=(9,)).fit(X, y)


def test_partial_fit():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = ThetaMLPClassifier((8,), learning_rate_init=0.05, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    for i in range(0, 150, 50):  # batches that miss classes
        order = np.argsort(y, kind="stable")[i : i + 50]
        clf.partial_fit(X[order], y[order], classes=[0, 1, 2])
    # scikit-learn's counters: n_iter_ is this call's epochs (1), t_ every row seen so far
    assert list(clf.classes_) == [0, 1, 2] and clf.n_iter_ == 1 and clf.t_ == 150
    for _ in range(30):
        clf.partial_fit(X, y)
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X[:5], np.full(5, 7))
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    assert not hasattr(ThetaMLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        ThetaMLPRegressor(early_stopping=True).partial_fit(X[:, :3], X[:, 3])
    reg = ThetaMLPRegressor((4,), random_state=0).partial_fit(X[:, :3], X[:, 3])
    assert reg.predict(X[:, :3]).shape == (150,)


def test_stopping_rules():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        ThetaMLPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        stopped = ThetaMLPClassifier((4,), max_iter=500, tol=10.0, n_iter_no_change=2, random_state=0).fit(
            X, y
        )
    assert stopped.n_iter_ == 4  # epochs 2-4 improve by < tol: more than n_iter_no_change = 2

    es = ThetaMLPClassifier(
        (16,), early_stopping=True, validation_fraction=0.2, learning_rate_init=0.01, max_iter=200,
        n_iter_no_change=5, random_state=0,
    ).fit(X, y)  # fmt: skip
    assert es.best_loss_ is None and len(es.validation_scores_) == es.n_iter_ < 200
    assert es.best_validation_score_ == max(es.validation_scores_) > 0.8


def test_non_finite_weights_raise():
    X, y = make_regression(50, 3, random_state=0)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        ThetaMLPRegressor((8,), solver="sgd", learning_rate_init=10.0, max_iter=50, random_state=0).fit(
            X * 1e3, y
        )


def test_bad_input():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(NotFittedError):
        ThetaMLPClassifier().predict(X)
    with pytest.raises(NotFittedError):
        ThetaMLPRegressor().predict(X)
    clf = ThetaMLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ThetaMLPClassifier().fit(X_nan, y)
    with pytest.raises(ValueError, match="NaN"):
        clf.predict_proba(X_nan)
    with pytest.raises(ValueError, match="Unknown label type"):
        ThetaMLPClassifier().fit(X, y + 0.5)
    # one class fits and predicts it, as in scikit-learn (tests/test_estimator_parity.py)
    for params, match in [
        ({"activation": "swish"}, "activation"),
        ({"solver": "newton"}, "solver"),
        ({"alpha": -1.0}, "alpha"),
        ({"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"backprop": "numeric"}, "backprop"),
        ({"device": "tpu"}, "device"),
        ({"dtype": "float16"}, "dtype"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ]:
        with pytest.raises(ValueError, match=match):
            ThetaMLPClassifier(**params).fit(X, y)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            ThetaMLPClassifier(device="cuda").fit(X, y)


def test_dataframe_sparse_and_verbose():
    pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = ThetaMLPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    assert list(clf.feature_names_in_) == list(X.columns)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X.rename(columns=lambda c: c.upper()))

    Xs = sp.random(60, 8, density=0.3, format="csr", random_state=0)
    ys = np.arange(60) % 2
    sparse = ThetaMLPClassifier((4,), max_iter=3, random_state=0).fit(Xs, ys)
    np.testing.assert_allclose(sparse.predict_proba(Xs), sparse.predict_proba(Xs.toarray()), rtol=1e-6)

    out = io.StringIO()
    with redirect_stdout(out):
        ThetaMLPClassifier((4,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    assert "Iteration 1, loss = " in out.getvalue()


def test_small_nets_train_on_one_thread_and_threads_are_restored(monkeypatch):
    seen = []
    accumulate = Engine.accumulate

    def spy(self, *args):
        seen.append(torch.get_num_threads())
        return accumulate(self, *args)

    monkeypatch.setattr(Engine, "accumulate", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        X, y = load_iris(return_X_y=True)
        ThetaMLPClassifier((4,), max_iter=2, device="cpu", random_state=0).fit(X, y)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        Xbig = np.random.RandomState(0).randn(256, 500)  # 256 rows × (501·400 + 401·1) Θ entries ≥ 50 M
        ThetaMLPClassifier((400,), max_iter=1, batch_size=256, device="cpu", random_state=0).fit(
            Xbig, Xbig[:, 0] > 0
        )
        assert set(seen) == {2} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _start_from(ours, sk):
    """Give a fitted ThetaMLP* the weights of a fitted MLP* (Θ = [intercepts_ | coefs_ᵀ])."""
    with torch.no_grad():
        for theta, W, b in zip(ours.net_.thetas, sk.coefs_, sk.intercepts_):
            theta[:, 0] = torch.from_numpy(b)
            theta[:, 1:] = torch.from_numpy(W.T)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_same_trajectory_as_mlpclassifier_from_the_same_weights(solver):
    """From the same Θ, without shuffling, the loss curves agree with MLPClassifier's — with
    MLPClassifier's alpha = ours · n/N, scikit-learn's per-batch penalty being N/n times ours.
    (Adam's ε enters torch's and scikit-learn's update slightly differently; it is made negligible.)"""
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X, y = StandardScaler().fit_transform(X[:1000]), y[:1000]
    N, n, alpha = 1000, 200, 0.5
    kw = dict(hidden_layer_sizes=(32,), solver=solver, batch_size=n, shuffle=False, tol=0.0, warm_start=True)
    kw.update(
        learning_rate_init=1e-3 if solver == "adam" else 1e-2, random_state=0, max_iter=1, epsilon=1e-14
    )
    sk = MLPClassifier(**kw, alpha=alpha * n / N).fit(X, y)
    ours = ThetaMLPClassifier(**kw, alpha=alpha, dtype="float64").fit(X, y)
    _start_from(ours, sk)
    sk.set_params(max_iter=8).fit(X, y)  # warm start: both continue with a fresh optimizer
    ours.set_params(max_iter=8).fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_[1:], sk.loss_curve_[1:], rtol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-7)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_same_trajectory_as_mlpregressor_from_the_same_weights(alpha):
    """Regression: ours is J = (1/N) Σ‖y − ŷ‖² + R; MLPRegressor steps along the gradient of
    (1/2N) Σ‖y − ŷ‖² + R_sklearn (while it reports the half mean over all N·K entries). Adam is
    scale-invariant (but for ε, made negligible here), so with alpha_sklearn = alpha · n / (2N) the
    two fits coincide, and without a penalty the loss curves differ by the factor 2K."""
    from sklearn.neural_network import MLPRegressor

    X, Y = make_regression(400, 6, n_targets=2, noise=5.0, random_state=0)
    X, Y = StandardScaler().fit_transform(X), Y / Y.std()
    N, n, K = 400, 100, 2
    kw = dict(hidden_layer_sizes=(16,), activation="tanh", batch_size=n, shuffle=False, tol=0.0)
    kw.update(warm_start=True, learning_rate_init=1e-2, random_state=0, max_iter=1, epsilon=1e-14)
    sk = MLPRegressor(**kw, alpha=alpha * n / (2 * N)).fit(X, Y)
    ours = ThetaMLPRegressor(**kw, alpha=alpha, dtype="float64").fit(X, Y)
    _start_from(ours, sk)
    sk.set_params(max_iter=6).fit(X, Y)
    ours.set_params(max_iter=6).fit(X, Y)
    np.testing.assert_allclose(ours.predict(X), sk.predict(X), atol=1e-6)
    if alpha == 0:
        np.testing.assert_allclose(ours.loss_curve_[1:], 2 * K * np.array(sk.loss_curve_[1:]), rtol=1e-6)


@pytest.mark.cuda
def test_cuda_fit_matches_cpu_and_pickles_to_cpu():
    X, y = load_iris(return_X_y=True)
    kw = dict(hidden_layer_sizes=(8,), max_iter=20, batch_size=32, random_state=0, dtype="float64")
    gpu = ThetaMLPClassifier(**kw, device="cuda").fit(X, y)
    cpu = ThetaMLPClassifier(**kw, device="cpu").fit(X, y)
    assert gpu.net_.thetas[0].device.type == "cuda"
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-8)
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), rtol=1e-7, atol=1e-10)
    again = pickle.loads(pickle.dumps(gpu))
    assert again.net_.thetas[0].device.type == "cpu"
    np.testing.assert_allclose(again.predict_proba(X), gpu.predict_proba(X), rtol=1e-12)
    auto = ThetaMLPRegressor((8,), max_iter=5, random_state=0).fit(X[:, :3], X[:, 3])
    assert auto.net_.thetas[0].device.type == "cuda"


def test_counters_and_n_iter_no_change_as_scikit_learn():
    """n_iter_ counts the last call's epochs and np.inf never stops early, as MLPClassifier does
    (compared with scikit-learn itself on the same calls)."""
    from sklearn.neural_network import MLPClassifier

    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    got = {}
    for cls in (MLPClassifier, ThetaMLPClassifier):
        kw = dict(max_iter=7, warm_start=True, random_state=0, tol=0, n_iter_no_change=np.inf)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = cls((5,), **kw).fit(X, y)
            first = (est.n_iter_, est.t_)
            est.fit(X, y)
            part = cls((5,), random_state=0)
            part.partial_fit(X, y, classes=[0, 1, 2])
            part.partial_fit(X, y)
        got[cls.__name__] = (first, est.n_iter_, est.t_, len(est.loss_curve_), part.n_iter_, part.t_)
    assert got["ThetaMLPClassifier"] == got["MLPClassifier"] == ((7, 1050), 7, 2100, 14, 1, 300)
