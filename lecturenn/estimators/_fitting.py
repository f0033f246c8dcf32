"""The estimators' fitting loops: mini-batch epochs with scikit-learn's stopping rules, and L-BFGS.

Both drive an :class:`~lecturenn.estimators._engine.Engine` (one gradient evaluation =
``engine.accumulate``, one update = ``engine.step``); λ is charged per batch by
:func:`lecturenn.regularization.batch_lam`, the one mini-batch rule.
"""

from __future__ import annotations

import math
import warnings

import torch
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from torch import Tensor

from ..regularization import batch_lam, check_lam
from ..theta import with_bias_unit
from ._engine import Batches, as_tensor

NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and "
    "need to be preprocessed."
)


class FitLoops:
    """Mixin of :class:`~lecturenn.estimators._base.BaseThetaMLP`: the two training loops."""

    def _fit_stochastic(self, engine, X, Y, y, device, tdtype, batch, incremental, rng, w=None):
        early_stopping = self.early_stopping and not incremental
        w_val = None
        if early_stopping:
            # stratified on the labels (multi-class) or, as scikit-learn, the 0/1 column (binary); not
            # multi-label (scikit-learn does not stratify multi-class either)
            stratify = None
            if is_classifier(self) and not self._multilabel:
                stratify = Y > 0.5 if Y.shape[1] == 1 else y
            split = train_test_split(
                *([X, Y] if w is None else [X, Y, w]),
                random_state=rng,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
            X, X_val, Y, Y_val = split[:4]
            if w is not None:
                w, w_val = split[4], as_tensor(split[5], device, torch.float64)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the size of "
                    "your dataset."
                )
            X1_val = with_bias_unit(as_tensor(X_val, device, tdtype))
            Y_val = as_tensor(Y_val, device, tdtype)
        N = X.shape[0]
        offset = self._loss_offset(Y, w)  # loss_ = J + offset (0 but for the Poisson deviance)
        batch = min(batch, N)
        X1 = with_bias_unit(as_tensor(X, device, tdtype))  # [1, X]: the bias-augmented layout
        wt = None if w is None else as_tensor(w, device, tdtype)
        data = Batches(X1, as_tensor(Y, device, tdtype), batch, self.shuffle, wt)
        lam = check_lam(self.alpha, "alpha")  # a float also for a 1-element array or tensor
        # each batch B of n_B rows is charged λ_B = λ·n_B/N (the one mini-batch rule)
        batches = [(b[0], b[1], batch_lam(lam, b[0].shape[0], N)) for b in data.batches]
        W = N if wt is None else float(wt.sum(dtype=torch.float64))  # the training set's weight
        loss_sum, step, accumulate, graph = engine.loss_sum, engine.step, engine.accumulate, engine.graph
        best = None
        self.n_iter_ = 0  # this call's epochs (scikit-learn's n_iter_; t_ keeps counting rows)

        try:
            for _ in range(int(self.max_iter)):
                loss_sum.zero_()
                data.epoch(self._generator)  # reshuffles the rows behind the batch views
                if graph is not None:  # the same step, captured per batch size and replayed
                    key = (engine.optimizer.param_groups[0]["lr"],)  # a schedule's new η: a new graph
                    for Xb, Yb, lam_b in batches:
                        graph((Xb, Yb), (lam_b,), key)
                elif wt is None:
                    for Xb, Yb, lam_b in batches:
                        accumulate(Xb, Yb, lam_b)
                        step()
                else:
                    self._weighted_epoch(data.batches, lam, W, engine)
                self.n_iter_ += 1
                self.t_ += N
                if early_stopping:
                    score = self._val_score(engine.logits(X1_val), Y_val, w_val)
                    loss, score = torch.stack([loss_sum / W, score.to(loss_sum.dtype)]).tolist()
                    loss += offset
                else:
                    loss = loss_sum.item() / W + offset
                if not math.isfinite(loss) and not early_stopping:
                    raise ValueError(NON_FINITE)  # with early stopping the best Θ so far is kept
                self.loss_ = loss
                self.loss_curve_.append(loss)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
                if early_stopping:
                    if self._update_validation(score):
                        best = [t.clone() for t in engine.thetas]
                else:
                    self._update_loss()
                self._schedule_ends_epoch(engine)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    if not self._lower_learning_rate(engine, what):
                        break
                if incremental:
                    break
            else:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                    "optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        if early_stopping and best is not None:
            for theta, kept in zip(engine.thetas, best):
                theta.copy_(kept)  # restore the best validation Θ

    @staticmethod
    def _weighted_epoch(batches, lam: float, W: float, engine) -> None:
        """One epoch with sample weights: batch B (weight W_B = Σ_B w) is charged λ_B = λ·W_B/W, the
        one mini-batch rule; the batch weights are read once per epoch (one host sync). A batch
        whose weights are all 0 holds no data and is skipped (no step)."""
        W_B = torch.stack([wb.sum(dtype=torch.float64) for _, _, wb in batches]).tolist()
        for (Xb, Yb, wb), W_b in zip(batches, W_B):
            if W_b > 0:
                engine.accumulate(Xb, Yb, batch_lam(lam, W_b, W), wb)
                engine.step()

    def _schedule_ends_epoch(self, engine) -> None:
        """scikit-learn's "invscaling" (solver="sgd"): η = η_0 / (t + 1)^power_t, t = rows seen so far."""
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            lr = float(self.learning_rate_init) / (self.t_ + 1) ** float(self.power_t)
            engine.optimizer.param_groups[0]["lr"] = lr

    def _lower_learning_rate(self, engine, what: str) -> bool:
        """No improvement for ``n_iter_no_change`` epochs: False (stop), or with scikit-learn's
        "adaptive" schedule (solver="sgd") η / 5 and go on, until η ≤ 1e-6."""
        group = engine.optimizer.param_groups[0]
        message = (
            f"{what} did not improve more than tol={self.tol:f} for "
            f"{self.n_iter_no_change} consecutive epochs."
        )
        if not (self.solver == "sgd" and self.learning_rate == "adaptive"):
            if self.verbose:
                print(f"{message} Stopping.")
            return False
        if group["lr"] <= 1e-6:
            if self.verbose:
                print(f"{message} Learning rate too small. Stopping.")
            return False
        group["lr"] /= 5.0
        self._no_improvement_count = 0
        if self.verbose:
            print(f"{message} Setting learning rate to {group['lr']:f}")
        return True

    def _update_validation(self, score: float) -> bool:
        """sklearn's bookkeeping for early stopping; True when this epoch is the best so far."""
        self.validation_scores_.append(score)
        if self.verbose:
            print(f"Validation score: {score:f}")
        if not score >= self.best_validation_score_ + self.tol:  # NaN (a diverged run): no improvement
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            return True
        return False

    def _update_loss(self) -> None:
        loss = self.loss_curve_[-1]
        if loss > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if loss < self.best_loss_:
            self.best_loss_ = loss

    def _fit_lbfgs(self, engine, X, Y, device, tdtype, w=None):
        offset = self._loss_offset(Y, w)  # loss_ = J + offset (0 but for the Poisson deviance)
        Xt, Yt = with_bias_unit(as_tensor(X, device, tdtype)), as_tensor(Y, device, tdtype)
        wt = None if w is None else as_tensor(w, device, tdtype)
        N = Xt.shape[0] if wt is None else float(wt.sum(dtype=torch.float64))  # W, the set's weight
        lam = batch_lam(check_lam(self.alpha, "alpha"), N, N)  # the full batch: λ itself
        optimizer, loss_sum = engine.optimizer, engine.loss_sum
        curve: list[tuple[int, float]] = []
        state = optimizer.state[engine.param]

        def closure() -> Tensor:
            loss_sum.zero_()
            engine.accumulate(Xt, Yt, lam, wt)
            loss = loss_sum / N
            curve.append((state.get("n_iter", 0), loss))
            if self.verbose and len(curve) > 1 and curve[-2][0] not in (0, curve[-1][0]):
                # iteration curve[-2][0] has ended: its last evaluation is its loss (loss_curve_)
                print(f"Iteration {curve[-2][0]}, loss = {float(curve[-2][1]) + offset:.8f}")
            return loss

        optimizer.step(closure)
        n_iter = int(state.get("n_iter", 0))
        n_evals = int(state.get("func_evals", 0))
        last = {it: loss for it, loss in curve if it > 0}  # an iteration's last evaluation
        self.loss_ = float(closure()) + offset  # J at the final Θ (+ the deviance's constant)
        if not math.isfinite(self.loss_):
            raise ValueError(NON_FINITE)
        self.loss_curve_ = [float(last[it]) + offset for it in sorted(last)[:-1]] + [self.loss_]
        self.n_iter_ = max(n_iter, 1)
        self.t_ = Xt.shape[0] * self.n_iter_
        self.best_loss_ = min(self.loss_curve_)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
        if n_iter >= self.max_iter or n_evals >= self.max_fun:
            warnings.warn(
                f"lbfgs failed to converge after {n_iter} iteration(s) ({n_evals} function "
                f"evaluations; max_iter={self.max_iter}, max_fun={self.max_fun}). Increase the "
                "number of iterations or scale the data.",
                ConvergenceWarning,
                stacklevel=4,
            )
