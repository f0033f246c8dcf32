"""scikit-learn parity of the estimators, scikit-learn's MLP being the reference: the dtype rule
(``dtype=None`` follows X as scikit-learn does; predictions in X's float32), single-class targets,
the stratified early-stopping split's error, and sample weights of 1 being no weights."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from lecturenn.estimators import ThetaMLPClassifier, ThetaMLPRegressor

X, Y = load_iris(return_X_y=True)
KW = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize(
    "ours, theirs", [(ThetaMLPClassifier, MLPClassifier), (ThetaMLPRegressor, MLPRegressor)]
)
def test_dtype_none_follows_x_like_scikit_learn(ours, theirs, x_dtype):
    Xd = (X * 10).astype(x_dtype)
    y = Y if ours is ThetaMLPClassifier else X[:, 0]
    ref = theirs(**KW).fit(Xd, y)
    est = ours(**KW, dtype=None).fit(Xd, y)
    assert [c.dtype for c in est.coefs_] == [c.dtype for c in ref.coefs_]
    assert [b.dtype for b in est.intercepts_] == [b.dtype for b in ref.intercepts_]
    assert est.predict(Xd).dtype == ref.predict(Xd).dtype
    if ours is ThetaMLPClassifier:
        assert est.predict_proba(Xd).dtype == ref.predict_proba(Xd).dtype


@pytest.mark.parametrize("dtype", ["float32", "float64", None])
def test_predictions_keep_float32_x(dtype):
    """Whatever Θ's dtype, float32 X gives float32 predictions (scikit-learn's), float64 X float64."""
    reg = ThetaMLPRegressor(**KW, dtype=dtype).fit(X, X[:, 0])
    clf = ThetaMLPClassifier(**KW, dtype=dtype).fit(X, Y)
    X32 = X.astype(np.float32)
    assert reg.predict(X32).dtype == np.float32 and reg.predict(X).dtype == np.float64
    assert np.array_equal(reg.predict(X32), reg.predict(X32.astype(np.float64)).astype(np.float32))
    proba, log_proba = clf.predict_proba(X32), clf.predict_log_proba(X32)
    assert proba.dtype == log_proba.dtype == np.float32
    assert np.array_equal(log_proba[proba > 0], np.log(proba[proba > 0]))


def test_default_dtype_is_float32_whatever_x():
    """The documented default: float32 Θ also for float64 X (the speed; see the estimators' README)."""
    est = ThetaMLPClassifier(**KW).fit(X, Y)
    assert est.coefs_[0].dtype == np.float32 and est.get_params()["dtype"] == "float32"


def test_dtype_none_continues_in_the_fitted_dtype():
    est = ThetaMLPClassifier(**KW, dtype=None, warm_start=True).fit(X.astype(np.float32), Y)
    est.fit(X, Y)  # float64 X now: the float32 network goes on training (no refit, no error)
    assert est.coefs_[0].dtype == np.float32
    est.partial_fit(X, Y)
    assert est.coefs_[0].dtype == np.float32


def test_dtype_none_checks_alpha_against_x_dtype():
    big = ThetaMLPClassifier(**KW, dtype=None, alpha=1e39)
    with pytest.raises(ValueError, match="alpha must be at most 3.4e\\+38, the largest float32"):
        big.fit(X.astype(np.float32), Y)
    big.fit(X, Y)  # float64 X: float64 Θ, where 1e39 is representable


def test_single_class_fits_and_predicts_it_like_scikit_learn():
    y = np.full(len(X), 7)
    ref = MLPClassifier(**KW).fit(X, y)
    est = ThetaMLPClassifier(**KW).fit(X, y)
    assert np.array_equal(est.classes_, ref.classes_)
    assert np.array_equal(est.predict(X), ref.predict(X))
    assert est.predict_proba(X).shape == ref.predict_proba(X).shape  # scikit-learn's [1 - p, p]
    assert est.score(X, y) == 1.0
    est.set_params(early_stopping=True).fit(X, y)  # scikit-learn's test_preserve_feature_names case
    assert est.validation_scores_[-1] == 1.0


def test_stratified_split_error_is_scikit_learns():
    X4, y4 = [[1, 2], [2, 3], [3, 4], [4, 5]], [0, 0, 0, 1]
    with pytest.raises(ValueError) as theirs:
        MLPClassifier(early_stopping=True).fit(X4, y4)
    with pytest.raises(ValueError) as ours:
        ThetaMLPClassifier(early_stopping=True).fit(X4, y4)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_of_one_are_no_weights(dtype):
    kw = dict(KW, early_stopping=True, batch_size=10, dtype=dtype)
    a = ThetaMLPRegressor(**kw).fit(X, X[:, 0], sample_weight=np.ones(len(X)))
    b = ThetaMLPRegressor(**kw).fit(X, X[:, 0])
    assert np.array_equal(a.predict(X), b.predict(X)) and a.loss_curve_ == b.loss_curve_
