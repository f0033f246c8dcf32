"""The validation/test metrics of :class:`~lecturenn.training.ThetaMLPModule`, one collection per stage.

Classification (binary, multiclass, multilabel): ``acc``, ``f1`` and ``auroc``, macro averages
taken only over the classes a split can score (a validation split that lacks the rare class must
not count that class as a failure):

* ``f1`` — macro F1 over the classes present in the targets **or** the predictions, as
  scikit-learn's ``f1_score(average="macro")`` computes it (a class neither present nor predicted
  has no F1; one predicted but never present scores 0). Binary: the classes 0 and 1 of the
  thresholded P(y = 1) (> 0.5); multiclass: the argmax; multilabel: each label thresholded at 0.5,
  "present" meaning at least one positive row.
* ``auroc`` — one-vs-rest macro AUROC over the classes (labels) that have both a positive and a
  negative row in the targets, i.e. ``roc_auc_score(..., multi_class="ovr", average="macro")``
  restricted to those classes. Binary: the AUROC of P(y = 1), defined when both classes occur.
  torchmetrics would score a class without positives as 0 and average it in.
  With ``thresholds=T`` (``model.auroc_thresholds``) the same macro average is taken over binned ROC
  curves, as torchmetrics' ``thresholds=T``: T evenly spaced thresholds in [0, 1] (a score s counts
  as positive at threshold t when s ≥ t), the curve's points joined by the trapezoidal rule. Its
  state is a fixed (C, 2, T+1) table of counts, updated with one ``bucketize`` and one
  ``scatter_add_`` per batch and summed across processes; ``compute`` never waits for the device
  (the exact AUROC synchronises a few times per class). The error against the exact AUROC is of
  the order of the bin width, 1/(T−1).
* When no class is left (a split of one class only, or a multilabel split with no positive label
  and no positive prediction), the metric is **NaN** — not skipped: every epoch logs the same names
  (:meth:`StageMetrics.names`, which monitors and sweeps rely on), and NaN is what "undefined" is;
  ``metrics.json`` writes it as ``null``.

Regression: ``mse``, ``mae`` and ``r2`` in the targets' own units. With K > 1 target columns they
are the uniform averages over the outputs (R² is scikit-learn's ``multioutput="uniform_average"``),
and each output is logged too as ``mse_<target>``, ``mae_<target>``, ``r2_<target>`` (the target
column's name, or its index 0..K-1 when names are missing or not usable as metric names).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import Accuracy
from torchmetrics.functional.classification import binary_auroc
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score
from torchmetrics.utilities import dim_zero_cat

from ..validation import check_integer

__all__ = [
    "MacroAUROC",
    "MacroF1",
    "StageMetrics",
    "classification_metrics",
    "output_names",
    "regression_metrics",
]

THRESHOLD = 0.5  # P(y = 1) > 0.5 is a positive prediction (binary and multilabel), as in predict.py


def _nan(like: Tensor) -> Tensor:
    return torch.tensor(float("nan"), device=like.device)


class MacroF1(Metric):
    """Macro F1 over the classes present in the targets or the predictions (see the module docstring).

    Keeps per-class true/false positive and false negative counts (summed across processes), so an
    epoch costs a few bincounts per batch. Inputs as :meth:`ThetaMLPModule.model_step` gives
    them: binary P(y = 1) (n,) and ids (n,); multiclass probabilities (n, K) and ids (n,);
    multilabel probabilities (n, K) and 0/1 (n, K).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, task: str, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.num_classes = 2 if task == "binary" else int(num_classes)
        for name in ("tp", "fp", "fn"):
            self.add_state(
                name, default=torch.zeros(self.num_classes, dtype=torch.long), dist_reduce_fx="sum"
            )

    def update(self, preds: Tensor, target: Tensor) -> None:
        K = self.num_classes
        if self.task == "multilabel":
            predicted, actual = preds > THRESHOLD, target == 1
            tp = (predicted & actual).sum(0)
            self.tp += tp
            self.fp += predicted.sum(0) - tp
            self.fn += actual.sum(0) - tp
            return
        predicted = (preds > THRESHOLD).long() if self.task == "binary" else preds.argmax(dim=1)
        actual = target.argmax(dim=1) if target.ndim == 2 else target.long()
        tp = torch.bincount(actual[predicted == actual], minlength=K)
        self.tp += tp
        self.fp += torch.bincount(predicted, minlength=K) - tp
        self.fn += torch.bincount(actual, minlength=K) - tp

    def compute(self) -> Tensor:
        present = (self.tp + self.fp + self.fn) > 0
        if not present.any():
            return _nan(self.tp)
        tp, errors = self.tp[present].double(), (self.fp + self.fn)[present].double()
        return (2 * tp / (2 * tp + errors)).mean().float()


class MacroAUROC(Metric):
    """One-vs-rest macro AUROC over the classes with both a positive and a negative row in the
    targets; NaN when there is none (see the module docstring).

    ``thresholds=None`` (exact): keeps the epoch's scores and targets, as torchmetrics' exact AUROC
    does. ``thresholds=T`` (an int ≥ 2): binned over ``torch.linspace(0, 1, T)``, equal to
    torchmetrics' ``binary_auroc(..., thresholds=T)`` per class; constant memory, no host syncs.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, task: str, num_classes: int, thresholds: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.num_classes = int(num_classes)
        self.binned = thresholds is not None
        if self.binned:
            T = check_integer(thresholds, "auroc thresholds", low=2)
            columns = 1 if task == "binary" else self.num_classes
            # counts[c, y, k]: rows of one-vs-rest problem c with target y (0/1) whose score passes
            # exactly the first k thresholds (k = #{i: t_i <= s}, 0..T)
            self.add_state(
                "counts", default=torch.zeros(columns, 2, T + 1, dtype=torch.long), dist_reduce_fx="sum"
            )
            self.register_buffer("thresholds", torch.linspace(0, 1, T), persistent=False)
        else:
            self.add_state("preds", default=[], dist_reduce_fx="cat")
            self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        if not self.binned:
            self.preds.append(preds.detach())
            self.target.append(target.detach())
            return
        scores, positive = self.one_vs_rest(preds.detach(), target.detach())  # (n, C), (n, C)
        dtype = torch.promote_types(scores.dtype, self.thresholds.dtype)  # torchmetrics' s >= t
        passed = torch.bucketize(scores.to(dtype), self.thresholds.to(dtype), right=True)  # (n, C)
        C, width = self.counts.shape[0], self.counts.shape[2]
        column = torch.arange(C, device=passed.device) * (2 * width)  # (C,) offset of counts[c]
        index = column + positive.long() * width + passed  # (n, C) flat index into counts
        flat = self.counts.view(-1)
        flat.scatter_add_(0, index.flatten(), torch.ones_like(flat[:1]).expand(index.numel()))

    def compute(self) -> Tensor:
        if self.binned:
            return self._binned_compute()
        preds, target = dim_zero_cat(self.preds), dim_zero_cat(self.target)
        scores, positive = self.one_vs_rest(preds, target)
        n_positive = positive.sum(0)
        scorable = ((n_positive > 0) & (n_positive < len(positive))).nonzero().flatten().tolist()
        aurocs = [binary_auroc(scores[:, k], positive[:, k].long(), validate_args=False) for k in scorable]
        return torch.stack(aurocs).mean() if aurocs else _nan(preds)

    def _binned_compute(self) -> Tensor:
        """Σ over the scorable classes of the trapezoid under (FPR_i, TPR_i), i = T−1..0, divided by
        their number (0/0 = NaN when there is none): device tensors only, no host sync."""
        negative, positive = self.counts[:, 0], self.counts[:, 1]  # (C, T+1) by thresholds passed
        # TP_i = #positives with score >= t_i = #positives passing more than i thresholds, i < T
        tps = positive.flip(-1).cumsum(-1).flip(-1)[:, 1:]  # (C, T)
        fps = negative.flip(-1).cumsum(-1).flip(-1)[:, 1:]
        P, N = positive.sum(-1, keepdim=True), negative.sum(-1, keepdim=True)  # (C, 1)
        tpr = torch.where(P > 0, tps.float() / P.float(), 0.0).flip(-1)  # torchmetrics' _safe_divide
        fpr = torch.where(N > 0, fps.float() / N.float(), 0.0).flip(-1)
        auroc = torch.trapz(tpr, fpr, dim=-1)  # (C,)
        scorable = ((P > 0) & (N > 0)).squeeze(-1)
        return torch.where(scorable, auroc, 0.0).sum() / scorable.sum()

    def one_vs_rest(self, preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Scores (n, C) and targets (n, C) bool, one column per one-vs-rest problem (binary: one)."""
        if self.task == "binary":
            return preds.reshape(-1, 1), target.reshape(-1, 1) == 1
        if self.task == "multilabel":
            return preds, target == 1
        ids = target.argmax(dim=1) if target.ndim == 2 else target
        return preds, ids[:, None] == torch.arange(self.num_classes, device=ids.device)


class StageMetrics(MetricCollection):
    """A ``MetricCollection`` whose :meth:`compute` gives scalars only, under the names :meth:`names`
    lists: a metric with one value per output (multi-output regression) becomes its uniform average
    under its own name plus one ``<name>_<output>`` entry per output."""

    def __init__(self, metrics: dict[str, Metric], outputs: Sequence[str] | None = None) -> None:
        super().__init__(metrics)
        self.outputs = list(outputs) if outputs else None

    def compute(self) -> dict[str, Tensor]:
        values = super().compute()
        if self.outputs is None:
            return values
        flat = {key: value.mean() if value.ndim else value for key, value in values.items()}
        for key, value in values.items():
            if value.ndim:
                flat.update({f"{key}_{name}": value[k] for k, name in enumerate(self.outputs)})
        return flat

    def names(self) -> list[str]:
        """Every key :meth:`compute` returns (prefixed, e.g. ``val/mae_price``), in that order."""
        keys = [str(k) for k in self.keys(keep_base=False)]
        if self.outputs is None:
            return keys
        return keys + [f"{key}_{name}" for key in keys for name in self.outputs]


def classification_metrics(task: str, K: int, auroc_thresholds: int | None = None) -> StageMetrics:
    """acc, f1 and auroc for a binary, multiclass (K classes) or multilabel (K labels) task;
    ``auroc_thresholds``: None (exact AUROC) or T ≥ 2 (binned, see :class:`MacroAUROC`)."""
    kind = {"binary": {"task": "binary"}, "multiclass": {"task": "multiclass", "num_classes": K}}.get(
        task, {"task": "multilabel", "num_labels": K}
    )
    return StageMetrics(
        {
            "acc": Accuracy(**kind, validate_args=False),
            "f1": MacroF1(task, K),
            "auroc": MacroAUROC(task, K, auroc_thresholds),
        }
    )


_METRIC_NAME = re.compile(r"[^0-9A-Za-z_.-]+")


def output_names(K: int, target_names: Sequence[str] | None = None) -> list[str]:
    """Suffixes of the per-output regression metrics: the target names where there are K of them
    and they stay distinct once characters other than letters, digits, ``_ . -`` become ``_``
    (a monitor or a command-line override must be able to name them); else ``0``..``K-1``."""
    if target_names is not None and len(target_names) == K:
        names = [_METRIC_NAME.sub("_", str(n)).strip("_") for n in target_names]
        if all(names) and len(set(names)) == K:
            return names
    return [str(k) for k in range(K)]


def regression_metrics(K: int, target_names: Sequence[str] | None = None) -> StageMetrics:
    """mse, mae and r2 (uniform averages over K outputs), plus per-output ones when K > 1."""
    if K == 1:
        metrics = {"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()}
        return StageMetrics(metrics)
    metrics = {
        "mse": MeanSquaredError(num_outputs=K),
        "mae": MeanAbsoluteError(num_outputs=K),
        "r2": R2Score(multioutput="raw_values"),
    }
    return StageMetrics(metrics, output_names(K, target_names))
