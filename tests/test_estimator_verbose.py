"""verbose=True prints scikit-learn's lines: "Iteration %d, loss = %.8f" per epoch (per iteration for
lbfgs), "Validation score: %f" with early stopping, and its stopping / learning-rate messages.

The reference is scikit-learn's own MLPClassifier run on the same case with its stdout captured: the
two outputs must have the same lines once the loss and score values (which differ: other initial
weights) are masked; and our printed values must be ``loss_curve_`` / ``validation_scores_``.
"""

import contextlib
import io
import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from lecturenn.estimators import ThetaMLPClassifier, ThetaMLPRegressor

X, Y = load_iris(return_X_y=True)
VALUE = re.compile(r"(loss = |Validation score: )-?[0-9.]+(e[-+]\d+)?|nan")


def printed(est, *args) -> str:
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(*args)
    return out.getvalue()


# tol=1e9: no epoch ever improves, so both stop (or lower the learning rate) at the same epochs
CASES = {
    "sgd": dict(solver="sgd", tol=1e9, n_iter_no_change=3),
    "adam-early-stopping": dict(solver="adam", tol=1e9, n_iter_no_change=2, early_stopping=True),
    "adaptive": dict(solver="sgd", learning_rate="adaptive", tol=1e9, n_iter_no_change=1, max_iter=50),
    "max_iter": dict(solver="adam", max_iter=4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lines_are_scikit_learns(case):
    kw = dict(hidden_layer_sizes=(5,), random_state=0, verbose=True, **CASES[case])
    ours = printed(ThetaMLPClassifier(**kw), X, Y)
    theirs = printed(MLPClassifier(**kw), X, Y)
    assert VALUE.sub(r"\1#", ours) == VALUE.sub(r"\1#", theirs)
    assert "Iteration 1, loss = " in ours


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs", "lamb"])
def test_printed_values_are_the_curves(solver):
    """Each printed loss is loss_curve_'s (lbfgs: one line per iteration — scikit-learn 1.9 prints
    nothing for lbfgs with SciPy ≥ 1.15, whose L-BFGS-B dropped ``iprint``)."""
    early = solver == "adam"
    est = ThetaMLPClassifier((5,), solver=solver, max_iter=7, random_state=0, verbose=1, early_stopping=early)
    lines = printed(est, X, Y).splitlines()
    losses = [line for line in lines if line.startswith("Iteration")]
    assert losses == [f"Iteration {i}, loss = {loss:.8f}" for i, loss in enumerate(est.loss_curve_, 1)]
    assert len(losses) == est.n_iter_
    scores = [line for line in lines if line.startswith("Validation")]
    assert scores == ([f"Validation score: {s:f}" for s in est.validation_scores_] if early else [])


def test_regressor_and_quiet():
    y = X[:, 0] * 2.0
    est = ThetaMLPRegressor((4,), solver="lbfgs", max_iter=3, verbose=True, random_state=0)
    assert printed(est, X, y).splitlines()[-1] == f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}"
    assert printed(ThetaMLPRegressor((4,), max_iter=3, random_state=0), X, y) == ""
    assert printed(ThetaMLPClassifier((4,), solver="lbfgs", max_iter=3, random_state=0), X, Y) == ""
    assert np.isfinite(est.loss_)
