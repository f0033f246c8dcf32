"""The estimators' ``sample_weight`` and ``class_weight`` (issue 14 §2, issue 12 §2's weights at the
estimators): scikit-learn's weighted loss J = (1/Σw) Σ w_i cost_i + λ/(2Σw) ΣΘ², integer weights
acting as repeated rows, class_weight = per-class sample weights, bad weights refused up front."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.class_weight import compute_sample_weight

import lecturenn as ln
from lecturenn.estimators import ThetaMLPClassifier, ThetaMLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def _net(est):
    net = ln.ThetaMLP(**{**est.net_.config, "backprop": "autograd"}, dtype=torch.float64)
    with torch.no_grad():
        for p, t in zip(net.thetas, est.net_.thetas):
            p.copy_(t)
    return net


def _same(a, b, **tol):
    for ta, tb in zip(a.net_.thetas, b.net_.thetas):
        torch.testing.assert_close(ta, tb, **tol) if tol else torch.testing.assert_close(
            ta, tb, rtol=0, atol=0
        )


def test_lbfgs_loss_is_the_weighted_cost_at_the_final_theta():
    X, y = _iris()
    w = np.random.default_rng(0).uniform(0, 3, len(y))
    est = ThetaMLPClassifier((6,), solver="lbfgs", alpha=0.3, dtype="float64", random_state=0, max_iter=50)
    est.fit(X, y, sample_weight=w)
    J = _net(est).cost(torch.tensor(X), torch.tensor(y), lam=0.3, sample_weight=torch.tensor(w))
    assert est.loss_ == pytest.approx(J.item(), rel=1e-12)
    reg = ThetaMLPRegressor((6,), solver="lbfgs", alpha=0.3, dtype="float64", random_state=0, max_iter=50)
    reg.fit(X, X[:, 0] - X[:, 1], sample_weight=w)
    t = torch.tensor(X[:, 0] - X[:, 1])
    J = _net(reg).cost(torch.tensor(X), t, lam=0.3, sample_weight=torch.tensor(w))
    assert reg.loss_ == pytest.approx(J.item(), rel=1e-12)


@pytest.mark.parametrize("solver", ["gd", "lbfgs"])
def test_integer_weights_equal_repeated_rows(solver):
    X, y = _iris()
    k = np.random.default_rng(1).integers(0, 4, len(y))
    kw = dict(solver=solver, alpha=0.1, dtype="float64", random_state=0, max_iter=15, learning_rate_init=0.1)
    a = ThetaMLPClassifier((5,), **kw).fit(X, y, sample_weight=k)
    b = ThetaMLPClassifier((5,), **kw).fit(np.repeat(X, k, axis=0), np.repeat(y, k))
    _same(a, b, rtol=1e-9, atol=1e-11)
    assert a.loss_ == pytest.approx(b.loss_, rel=1e-9)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_unit_weights_train_like_no_weights(solver):
    X, y = _iris()
    kw = dict(solver=solver, dtype="float64", random_state=0, max_iter=5, batch_size=32)
    a = ThetaMLPClassifier((5,), **kw).fit(X, y, sample_weight=np.ones(len(y)))
    b = ThetaMLPClassifier((5,), **kw).fit(X, y)
    _same(a, b, rtol=1e-10, atol=1e-12)
    assert a.loss_curve_ == pytest.approx(b.loss_curve_, rel=1e-10)


def test_class_weight_is_per_class_sample_weight():
    X, y = _iris()
    y = np.where(y == 2, 1, y)  # unbalanced: 50 vs 100
    kw = dict(solver="adam", dtype="float64", random_state=0, max_iter=5)
    for cw in ("balanced", {0: 3.0, 1: 0.5}):
        a = ThetaMLPClassifier((5,), class_weight=cw, **kw).fit(X, y)
        b = ThetaMLPClassifier((5,), **kw).fit(X, y, sample_weight=compute_sample_weight(cw, y))
        _same(a, b)
    s = np.linspace(0.5, 2, len(y))  # both: multiplied
    a = ThetaMLPClassifier((5,), class_weight={0: 3.0, 1: 0.5}, **kw).fit(X, y, sample_weight=s)
    b = ThetaMLPClassifier((5,), **kw).fit(X, y, sample_weight=s * compute_sample_weight({0: 3.0, 1: 0.5}, y))
    _same(a, b)
    with pytest.raises(ValueError, match="partial_fit cannot use it"):
        ThetaMLPClassifier((5,), class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="class_weight must be None, 'balanced' or a dict"):
        ThetaMLPClassifier((5,), class_weight="auto").fit(X, y)


@pytest.mark.parametrize(
    "w,error,match",
    [(np.ones(3), ValueError, r"shape \(3,\); expected \(150,\)"), (-np.ones(150), ValueError, ">= 0"),
     (np.full(150, np.nan), ValueError, "NaN or inf"), (np.zeros(150), ValueError, "sums to zero"),
     ("heavy", TypeError, "sample_weight")],
)  # fmt: skip
def test_bad_weights_are_refused_before_anything_is_fitted(w, error, match):
    X, y = _iris()
    est = ThetaMLPClassifier((5,), max_iter=3)
    with pytest.raises(error, match=match):
        est.fit(X, y, sample_weight=w)
    assert not hasattr(est, "classes_") and not hasattr(est, "net_")


def test_a_batch_of_zero_weights_is_skipped():
    """Rows 0..49 weigh 0 and form the first batch (shuffle=False): training equals training on
    rows 50..149 alone, batch for batch (the same N-relative λ_B: W_B/W = n_B/N)."""
    X, y = _iris()
    order = np.argsort(np.arange(150) % 3, kind="stable")  # every third row first: all classes in each part
    X, y = X[order], y[order]
    w = np.ones(150)
    w[:50] = 0
    kw = dict(solver="sgd", batch_size=50, shuffle=False, max_iter=5, random_state=0, dtype="float64")
    a = ThetaMLPClassifier((5,), **kw).fit(X, y, sample_weight=w)
    b = ThetaMLPClassifier((5,), **kw).fit(X[50:], y[50:])
    _same(a, b, rtol=1e-10, atol=1e-12)
    assert a.loss_curve_ == pytest.approx(b.loss_curve_, rel=1e-10)


def test_weighted_validation_scores_are_scikit_learns():
    est = ThetaMLPClassifier()
    est._multiclass = True
    g = torch.Generator().manual_seed(0)
    z, labels = torch.randn(40, 3, generator=g), torch.randint(0, 3, (40,), generator=g)
    w = torch.rand(40, generator=g, dtype=torch.float64)
    Y = torch.nn.functional.one_hot(labels, 3).double()
    got = est._val_score(z, Y, w).item()
    assert got == pytest.approx(accuracy_score(labels, z.argmax(1), sample_weight=w), rel=1e-12)
    reg = ThetaMLPRegressor()
    t = torch.randn(40, 2, generator=g, dtype=torch.float64)
    p = torch.randn(40, 2, generator=g, dtype=torch.float64)
    assert reg._val_score(p, t, w).item() == pytest.approx(r2_score(t, p, sample_weight=w), rel=1e-12)


def test_early_stopping_and_partial_fit_take_weights():
    X, y = _iris()
    w = np.random.default_rng(2).uniform(0.5, 2, len(y))
    est = ThetaMLPClassifier((8,), early_stopping=True, max_iter=20, random_state=0, learning_rate_init=0.01)
    est.fit(X, y, sample_weight=w)
    assert len(est.validation_scores_) == est.n_iter_ and 0.5 < est.best_validation_score_ <= 1
    part = ThetaMLPClassifier((8,), random_state=0).partial_fit(X, y, w, classes=[0, 1, 2])
    assert np.isfinite(part.loss_)
    reg = ThetaMLPRegressor((8,), random_state=0).partial_fit(X, X[:, 0], sample_weight=w)
    assert np.isfinite(reg.loss_)


@pytest.mark.parametrize(
    "est",
    [ThetaMLPClassifier((8,), max_iter=50, random_state=0, solver="lbfgs", dtype="float64"),
     ThetaMLPRegressor((8,), max_iter=50, random_state=0, solver="lbfgs", activation="softplus",
                       dtype="float64")],
)  # fmt: skip
def test_scikit_learns_weight_equivalence_checks_pass_in_float64(est):
    from sklearn.utils.estimator_checks import (
        check_sample_weight_equivalence_on_dense_data,
        check_sample_weight_equivalence_on_sparse_data,
    )

    check_sample_weight_equivalence_on_dense_data(type(est).__name__, est)
    check_sample_weight_equivalence_on_sparse_data(type(est).__name__, est)
