"""scikit-learn's learning-rate schedules of solver="sgd" (issue 14 §2), checked against
scikit-learn's own SGDOptimizer (sklearn.neural_network._stochastic_optimizers) step by step and
against MLPClassifier's epoch counts, not against a reading of its documentation."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.neural_network import MLPClassifier
from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

from lecturenn.estimators import ThetaMLPClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


@pytest.mark.parametrize("power_t", [0.5, 0.25])
def test_invscaling_rates_equal_sgd_optimizers_epoch_by_epoch(power_t):
    X, y = _iris()
    est = ThetaMLPClassifier((5,), solver="sgd", learning_rate="invscaling", learning_rate_init=0.2,
                             power_t=power_t, random_state=0)  # fmt: skip
    ref = SGDOptimizer([np.zeros(1)], learning_rate_init=0.2, lr_schedule="invscaling", power_t=power_t)
    for epoch in range(6):
        est.partial_fit(X, y, classes=[0, 1, 2])
        ref.iteration_ends(est.t_)  # scikit-learn: after each epoch, with the rows seen so far
        assert est._engine.optimizer.param_groups[0]["lr"] == pytest.approx(ref.learning_rate, rel=1e-15)
    assert ref.learning_rate == pytest.approx(0.2 / (6 * 150 + 1) ** power_t)


def test_the_rate_set_by_the_schedule_is_the_one_the_step_uses():
    """The fast functional step reads the group's lr at each call (it used to bind it once)."""
    X, y = _iris()
    kw = dict(solver="sgd", momentum=0.0, dtype="float64", random_state=0, batch_size=150, shuffle=False)
    a = ThetaMLPClassifier((5,), learning_rate="invscaling", learning_rate_init=0.5, **kw)
    a.partial_fit(X, y, classes=[0, 1, 2])
    theta = [t.detach().clone() for t in a.net_.thetas]
    a.partial_fit(X, y)  # one full-batch plain step at η = 0.5 / 151^0.5
    grads = [t.grad.detach().clone() for t in a.net_.thetas]  # D of that step
    eta = 0.5 / (150 + 1) ** 0.5
    for t0, g, t1 in zip(theta, grads, a.net_.thetas):
        torch.testing.assert_close(t1.detach(), t0 - eta * g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n_iter_no_change", [1, 3])
def test_adaptive_divides_by_5_and_stops_like_mlpclassifier(n_iter_no_change):
    """tol = 1e9: no epoch ever counts as an improvement, so only the schedule decides: η / 5 after
    every n_iter_no_change + 1 epochs until η ≤ 1e-6, then stop — the same epochs and η as
    scikit-learn's MLPClassifier (its optimizer's learning_rate at the end)."""
    X, y = _iris()
    kw = dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.01, tol=1e9,
              n_iter_no_change=n_iter_no_change, max_iter=500, random_state=0)  # fmt: skip
    ours = ThetaMLPClassifier((5,), **kw).fit(X, y)
    theirs = MLPClassifier((5,), **kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 500
    assert ours._engine.optimizer.param_groups[0]["lr"] == pytest.approx(theirs._optimizer.learning_rate)


def test_constant_is_unchanged_and_bad_values_are_named():
    X, y = _iris()
    est = ThetaMLPClassifier((5,), solver="sgd", learning_rate_init=0.05, max_iter=5, random_state=0).fit(
        X, y
    )
    assert est._engine.optimizer.param_groups[0]["lr"] == 0.05
    with pytest.raises(ValueError, match="learning_rate must be one of"):
        ThetaMLPClassifier(learning_rate="cosine").fit(X, y)
    with pytest.raises(ValueError, match="power_t must be a finite number"):
        ThetaMLPClassifier(power_t=float("nan")).fit(X, y)


def test_a_diverging_run_with_early_stopping_keeps_the_best_weights():
    """scikit-learn's test_mlp_diverging_loss (issue #29504): lr 1 on raw iris diverges; with
    early_stopping the NaN epochs are recorded, count as no improvement, and the best Θ is kept."""
    from lecturenn.estimators import ThetaMLPRegressor

    X, y = load_iris(return_X_y=True)
    mlp = ThetaMLPRegressor(hidden_layer_sizes=100, activation="identity", solver="sgd", alpha=0.0001,
                            learning_rate_init=1, max_iter=20, early_stopping=True, n_iter_no_change=10,
                            random_state=0)  # fmt: skip
    mlp.fit(X, y)
    assert str(mlp.validation_scores_[-1]) == "nan" and isinstance(mlp.validation_scores_[-1], float)
    assert mlp.n_iter_ <= 12  # NaN never improves: stopped after n_iter_no_change epochs, not max_iter
    assert all(np.isfinite(t).all() for t in mlp.thetas_) and np.isfinite(mlp.predict(X)).all()
    with pytest.raises(ValueError, match="non-finite parameter weights"):  # without early stopping: raise
        mlp.set_params(early_stopping=False).fit(X, y)
