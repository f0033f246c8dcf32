"""The estimators' predictions reuse one float64 copy of a float32 Θ (issue 13 §3: it was rebuilt on
every call) and never a stale one: after partial_fit, a refit, an in-place edit of ``net_.thetas`` or
pickling, predictions equal a fresh float64 evaluation of the current Θ."""

import pickle

import numpy as np
import pytest
import torch

from lecturenn.estimators import ThetaMLPClassifier, ThetaMLPRegressor


def _fresh_logits(est, X):
    thetas = [t.detach().double() for t in est.net_.thetas]
    a = torch.as_tensor(X, dtype=torch.float64)
    for theta in thetas[:-1]:
        a = est.net_.activation.g(a @ theta[:, 1:].T + theta[:, 0])
    return (a @ thetas[-1][:, 1:].T + thetas[-1][:, 0]).numpy()


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int), X @ rng.normal(size=4)


def test_copy_is_made_once_and_reused():
    X, y, _ = _data()
    est = ThetaMLPClassifier((5,), max_iter=5, random_state=0).fit(X, y)
    est.predict(X)
    first = est._float64_net()
    est.predict_proba(X[:3])
    assert est._float64_net() is first  # no copy per call
    assert first.thetas[0].dtype == torch.float64 and est.net_.thetas[0].dtype == torch.float32


def test_partial_fit_and_refit_are_seen():
    X, y, _ = _data()
    est = ThetaMLPClassifier((5,), learning_rate_init=0.1, random_state=0)
    est.partial_fit(X, y, classes=[0, 1])
    before = est.predict_proba(X)
    est.partial_fit(X, y)  # the optimizer writes Θ through the flat parameter
    after = est.predict_proba(X)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(est._logits(X).numpy(), _fresh_logits(est, X), rtol=1e-12)
    est.set_params(max_iter=3).fit(X, 1 - y)
    np.testing.assert_allclose(est._logits(X).numpy(), _fresh_logits(est, X), rtol=1e-12)


def test_in_place_edit_of_theta_is_seen():
    X, _, t = _data()
    est = ThetaMLPRegressor((5,), max_iter=5, random_state=0).fit(X, t)
    p1 = est.predict(X)
    with torch.no_grad():
        est.net_.thetas[-1][:, 0] += 1.0  # the output bias: every prediction moves by +1
    np.testing.assert_allclose(est.predict(X), p1 + 1.0, rtol=0, atol=1e-6)


def test_pickle_round_trip_drops_the_copy():
    X, y, _ = _data()
    est = ThetaMLPClassifier((5,), max_iter=5, random_state=0).fit(X, y)
    p = est.predict_proba(X)
    state = est.__getstate__()
    assert "_predict_cache" not in state  # refilled after loading
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict_proba(X), p)


def test_log_proba_is_log_of_proba_where_probabilities_round_to_one():
    """scikit-learn's test_mlp asserts allclose(predict_log_proba, np.log(predict_proba)) with atol 0:
    a probability that rounds to 1 must have log 0 exactly; an underflowed one keeps a finite log."""
    X = np.array([[-30.0, 0.0], [30.0, 0.0], [0.5, 0.0], [-0.5, 0.0]])
    for y in ([0, 1, 1, 0], [0, 1, 2, 2]):
        est = ThetaMLPClassifier((3,), max_iter=3, random_state=0, dtype="float64").fit(X, y)
        with torch.no_grad():
            for t in est.net_.thetas:
                t.mul_(40)  # saturate: some probabilities round to exactly 1
        proba, log_proba = est.predict_proba(X), est.predict_log_proba(X)
        assert (proba == 1).any()
        with np.errstate(divide="ignore"):
            logp = np.log(proba)
        finite = proba > 0
        np.testing.assert_allclose(log_proba[finite], logp[finite], rtol=1e-14, atol=0)  # log(proba)
        assert np.isfinite(log_proba).all()
        np.testing.assert_array_equal(proba.argmax(1), log_proba.argmax(1))


def test_coefs_and_intercepts_either_change_the_model_or_raise():
    """Issue 14 §2: an in-place edit of coefs_ raised nothing and changed nothing; now it raises,
    and assigning a whole list changes Θ (and so the predictions, and a continued partial_fit)."""
    X, y, _ = _data()
    est = ThetaMLPClassifier((5,), max_iter=5, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="read-only"):
        est.coefs_[0][0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        est.intercepts_[1][0] = 1.0
    W = [np.zeros_like(c) for c in est.coefs_]
    b = [np.full_like(i, 0.25) for i in est.intercepts_]
    est.coefs_, est.intercepts_ = W, b
    np.testing.assert_array_equal(est.net_.thetas[0].detach().numpy()[:, 1:], 0)
    p = torch.sigmoid(torch.tensor(0.25)).item()  # every logit is the output bias 0.25
    np.testing.assert_allclose(est.predict_proba(X)[:, 1], p, rtol=1e-6)
    est.partial_fit(X, y)  # training continues from the assigned Θ
    assert not np.allclose(est.coefs_[0], 0)
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape \(4, 5\)"):
        est.coefs_ = [np.zeros((3, 5)), W[1]]
    with pytest.raises(ValueError, match="a list of 2 arrays"):
        est.intercepts_ = b[:1]
