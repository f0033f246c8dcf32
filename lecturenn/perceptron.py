r"""The lecture's perceptron, in torch: the online rule and the slide's batch version.

Every input gets the constant feature :math:`x_0 = 1`, so for :math:`x \in \mathbb{R}^s` we write
:math:`\tilde x = [1; x] \in \mathbb{R}^{s+1}` and :math:`\theta_0` is the bias weight.

**Online perceptron rule** (labels :math:`y \in \{0, 1\}`). The hypothesis is a step function

.. math::  h_\theta(x) = \operatorname{step}(\theta^\top \tilde x), \qquad
           \operatorname{step}(z) = 1 \text{ if } z \ge 0 \text{ else } 0,

i.e. we pick :math:`\operatorname{step}(0) = 1`: a point on the boundary is predicted positive.
Starting from :math:`\theta = 0`, each epoch visits the examples in order (or in a seeded random
order) and applies

.. math::  \theta \leftarrow \theta + \alpha\,(y - h_\theta(x))\,\tilde x .

A correct prediction gives :math:`y - h = 0` (no change); a false negative adds
:math:`\alpha \tilde x`, a false positive subtracts it. We stop after an epoch with no mistakes
or after ``max_epochs``.

**Batch perceptron** (labels :math:`y \in \{-1, +1\}`). A point is misclassified when
:math:`y_i\,\theta^\top \tilde x_i \le 0` (so a point on the boundary always counts as an error).
Starting from :math:`\theta = 0`, each epoch computes, over the set :math:`M` of misclassified
points,

.. math::  \Delta = -\frac{1}{n} \sum_{i \in M} y_i \tilde x_i, \qquad
           \theta \leftarrow \theta - \alpha \Delta,

which is a gradient step on the perceptron criterion
:math:`J(\theta) = \frac{1}{n}\sum_{i \in M} -y_i \theta^\top \tilde x_i`. We stop when no point is
misclassified, when :math:`\lVert \Delta \rVert_2 < \varepsilon`, or after ``max_epochs``.

A small update does *not* mean success: on XOR at :math:`\theta = 0` all four points are
misclassified yet :math:`\sum_i y_i \tilde x_i = 0`, so :math:`\Delta = 0` and the algorithm stops
at once. ``converged`` is therefore defined as "zero misclassified training points at the end",
independently of why the loop stopped.

Device and dtype follow ``X``: floating ``X`` keeps its dtype, integer/bool ``X`` and Python numbers
(a list) become ``torch.get_default_dtype()`` (as ``torch.tensor`` makes them), and everything is
computed on ``X.device``. ``X`` and ``y`` may be tensors or anything
:func:`~lecturenn.arrays.as_array` takes (numpy in any memory order, lists, pandas objects by
position whatever their index).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .arrays import to_tensor
from .validation import check_integer, check_number

__all__ = ["PerceptronResult", "perceptron_rule", "batch_perceptron"]


@dataclass
class PerceptronResult:
    """What a perceptron run returns.

    ``errors_per_epoch[k]`` is, for :func:`perceptron_rule`, the number of mistakes (= updates)
    made during epoch ``k``; for :func:`batch_perceptron`, the number of misclassified points at
    the start of epoch ``k``. ``n_errors`` is measured with the final ``theta``.
    """

    theta: torch.Tensor  # (s+1,), theta[0] is the bias weight (x_0 = 1)
    epochs: int  # epochs actually run
    converged: bool  # True only if every training point is classified correctly at the end
    n_errors: int  # misclassified training points at the end
    stopped_because: str  # "no errors", "small update" or "max epochs"
    errors_per_epoch: list[int] = field(default_factory=list)
    labels: tuple[int, int] = (0, 1)  # (negative label, positive label) used in training

    def predict(self, X) -> torch.Tensor:
        """Labels (int64, in the training convention): positive iff ``theta^T [1; x] >= 0``."""
        X = _as_features(X).to(self.theta)
        if X.shape[1] != self.theta.shape[0] - 1:
            raise ValueError(
                f"X has {X.shape[1]} features but theta was trained on {self.theta.shape[0] - 1}"
            )
        neg, pos = self.labels
        z = _with_bias(X) @ self.theta
        return torch.where(z >= 0, pos, neg).to(torch.long)


# ---------------------------------------------------------------------------- validation


def _as_features(X) -> torch.Tensor:
    """X as a tensor: numpy in any memory order, lists, pandas by position (one conversion)."""
    python_numbers = isinstance(X, (list, tuple))  # float64 in numpy, the default dtype in torch
    try:
        X = to_tensor(X)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"X must be a tensor or array of numbers: {err}") from None
    if X.is_complex():
        raise ValueError(f"X must be real-valued, got dtype {X.dtype}")
    if python_numbers or not X.is_floating_point():
        X = X.to(torch.get_default_dtype())
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D tensor of shape (n, s), got shape {tuple(X.shape)}")
    if X.numel() == 0:
        raise ValueError(f"X is empty (shape {tuple(X.shape)}); need at least one point")
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or inf")
    return X


def _as_labels(y, X: torch.Tensor, allowed: tuple[int, int]) -> torch.Tensor:
    try:
        y = to_tensor(y, device=X.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"y must be a tensor or array of labels: {err}") from None
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D of length n, got shape {tuple(y.shape)}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y has length {y.shape[0]} but X has {X.shape[0]} rows")
    y = y.to(X.dtype)
    ok = (y == allowed[0]) | (y == allowed[1])
    if not ok.all():
        found = [int(v) if v.is_integer() else v for v in torch.unique(y).tolist()]
        raise ValueError(f"labels must be in {{{allowed[0]}, {allowed[1]}}}, found labels {found}")
    return y


def _check_hyper(alpha, max_epochs, eps=0.0) -> None:
    """TypeError for a value of the wrong kind (a bool is no number), ValueError out of range."""
    check_number(alpha, "alpha", low=0, low_open=True)
    check_number(eps, "eps", low=0)
    check_integer(max_epochs, "max_epochs", low=1)


def _with_bias(X: torch.Tensor) -> torch.Tensor:
    """[1; x] for every row: (n, s) -> (n, s+1)."""
    return torch.cat([torch.ones_like(X[:, :1]), X], dim=1)


# ---------------------------------------------------------------------------- algorithms


def perceptron_rule(X, y, alpha=1.0, max_epochs=100, shuffle=False, seed=None) -> PerceptronResult:
    """Online perceptron rule, labels in {0, 1}: ``theta += alpha (y - h(x)) [1; x]`` per example.

    With ``shuffle=True`` each epoch visits the examples in a fresh random order, drawn from a CPU
    generator seeded with ``seed`` (the global RNG when ``seed`` is None), so a given seed gives
    the same run on every device.
    """
    X = _as_features(X)
    y = _as_labels(y, X, (0, 1))
    _check_hyper(alpha, max_epochs)
    Xb = _with_bias(X)
    n = Xb.shape[0]
    gen = torch.Generator().manual_seed(seed) if seed is not None else None

    theta = torch.zeros(Xb.shape[1], dtype=X.dtype, device=X.device)
    errors_per_epoch: list[int] = []
    stopped_because = "max epochs"
    for _ in range(max_epochs):
        order = torch.randperm(n, generator=gen).tolist() if shuffle else range(n)
        mistakes = torch.zeros((), dtype=torch.long, device=X.device)
        for i in order:
            h = (Xb[i] @ theta >= 0).to(X.dtype)  # step(0) = 1
            err = y[i] - h  # 0 if correct, +1 false negative, -1 false positive
            theta = theta + alpha * err * Xb[i]
            mistakes += err != 0
        errors_per_epoch.append(int(mistakes))  # one device sync per epoch
        if errors_per_epoch[-1] == 0:
            stopped_because = "no errors"
            break

    n_errors = int(((Xb @ theta >= 0).to(X.dtype) != y).sum())
    return PerceptronResult(
        theta=theta,
        epochs=len(errors_per_epoch),
        converged=n_errors == 0,
        n_errors=n_errors,
        stopped_because=stopped_because,
        errors_per_epoch=errors_per_epoch,
        labels=(0, 1),
    )


def batch_perceptron(X, y, alpha=1.0, eps=1e-6, max_epochs=1000) -> PerceptronResult:
    """The slide's batch perceptron, labels in {-1, +1}: ``theta -= alpha * Delta`` per epoch,
    ``Delta = -(1/n) sum over misclassified i (y_i theta^T x_i <= 0) of y_i [1; x_i]``."""
    X = _as_features(X)
    y = _as_labels(y, X, (-1, 1))
    _check_hyper(alpha, max_epochs, eps)
    Xb = _with_bias(X)
    n = Xb.shape[0]

    theta = torch.zeros(Xb.shape[1], dtype=X.dtype, device=X.device)
    errors_per_epoch: list[int] = []
    stopped_because = "max epochs"
    for _ in range(max_epochs):
        wrong = y * (Xb @ theta) <= 0  # (n,) misclassified mask
        errors_per_epoch.append(int(wrong.sum()))
        if errors_per_epoch[-1] == 0:
            stopped_because = "no errors"
            break
        delta = -((wrong * y) @ Xb) / n  # -(1/n) sum_{i in M} y_i x_i
        theta = theta - alpha * delta
        if float(torch.linalg.vector_norm(delta)) < eps:
            stopped_because = "small update"
            break

    n_errors = int((y * (Xb @ theta) <= 0).sum())
    return PerceptronResult(
        theta=theta,
        epochs=len(errors_per_epoch),
        converged=n_errors == 0,
        n_errors=n_errors,
        stopped_because=stopped_because,
        errors_per_epoch=errors_per_epoch,
        labels=(-1, 1),
    )
