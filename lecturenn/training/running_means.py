"""Epoch means of J and of the running train statistic, accumulated without host syncs.

:class:`RunningMeans` keeps, for one stage of one epoch, Σ J·n, Σ n and Σ statistic; the
LightningModule logs ``Σ J·n / Σ n`` (the mean J over the epoch's rows) and ``Σ statistic / Σ n``
once per epoch. :func:`train_statistic` is the statistic the training steps record: correct
predictions, or the squared error in the targets' own units.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["RunningMeans", "StageMeans", "train_statistic"]


def train_statistic(task: str, z: Tensor, Y: Tensor, y_std: Tensor) -> Tensor:
    """Σ over the batch of the running train statistic, straight from the logits z^(L+1) (m, K).

    Correct predictions (argmax z = argmax h; h > 0.5 ⟺ z > 0; multilabel: the fraction of a row's
    labels that are right) or, for regression, the squared error in the targets' own units
    ((z − Y)·y_std, averaged over the K outputs; z and Y are standardised). A 0-d tensor.
    """
    if task == "multiclass":
        return (z.argmax(dim=1) == Y).sum()
    if task == "binary":
        return ((z > 0) == (Y > 0.5)).sum()
    if task == "multilabel":
        return ((z > 0) == (Y > 0.5)).float().mean(dim=1).sum()
    return ((z - Y).square() * y_std.square()).mean(dim=1).sum()  # (m, K) -> (m,) -> ()


class RunningMeans:
    """Σ J·n, Σ n and Σ statistic of one stage over an epoch, without host syncs and with almost no
    per-step work: steps append their J (0-d) and, for the statistic, their detached logits and
    targets; every ``FOLD`` steps (or once the kept logits reach ``FOLD_ELEMENTS`` numbers — the
    memory stays bounded) they are folded into one float64 sum with a handful of batched ops.

    Args:
        statistic: ``(z (m, K), Y) -> Σ over the m rows`` (0-d), or None (J only).
    """

    FOLD, FOLD_ELEMENTS = 256, 1 << 21

    def __init__(self, statistic: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        self.statistic = statistic
        self._J: list[Tensor] = []
        self._n: list[int] = []
        self._z: list[Tensor] = []
        self._Y: list[Tensor] = []
        self._elements = 0
        self._total: Tensor | None = None  # [Σ J·n, Σ n, Σ statistic], float64 (3,)

    def add(self, J: Tensor, n: int, z: Tensor | None = None, Y: Tensor | None = None) -> None:
        """Record one batch of ``n`` rows: its J (0-d) and, when there is a statistic, its logits z
        and targets Y."""
        self._J.append(J.detach())
        self._n.append(n)
        if self.statistic is not None and z is not None:
            self._z.append(z.detach())
            self._Y.append(Y)
            self._elements += z.numel()
        if len(self._n) >= self.FOLD or self._elements >= self.FOLD_ELEMENTS:
            self._fold()

    def add_sums(self, total: Tensor) -> None:
        """Add sums made elsewhere: ``total`` = [Σ J·n, Σ n, Σ statistic] (3,), float64 — what a
        captured training step accumulates on the device (:func:`.fast_path.make_step_graph`)."""
        self._fold()
        total = total.detach().to(torch.float64).clone()
        self._total = total if self._total is None else self._total + total

    def _fold(self) -> None:
        if not self._n:
            return
        J = torch.stack(self._J).to(torch.float64)  # (s,) for s recorded steps
        n = torch.tensor(self._n, dtype=torch.float64, device=J.device)
        if self._z:
            stat = self.statistic(torch.cat(self._z), torch.cat(self._Y)).to(torch.float64)
        else:
            stat = J.new_zeros(())
        part = torch.stack(((J * n).sum(), n.sum(), stat))
        self._total = part if self._total is None else self._total + part
        self._J, self._n, self._z, self._Y, self._elements = [], [], [], [], 0

    def means(self, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """(Σ J·n / Σ n, Σ statistic / Σ n) as float32 0-d tensors on the device of the recorded J.

        When nothing was recorded (an empty epoch, a rank without batches) both are NaN on
        ``device`` — the module's device, so that logging them with ``sync_dist=True`` reduces a
        tensor where the process group can (NCCL cannot all-reduce a CPU tensor).
        """
        self._fold()
        total = self._total
        if total is None:
            nan = torch.full((), float("nan"), device=device)
            return nan, nan
        means = (total / total[1].clamp_min(1)).float()
        return means[0], means[2]


class StageMeans:
    """One :class:`RunningMeans` per stage (``"train"``, ``"val"``, ``"test"``), started by the
    stage's first :meth:`add`; the train stage records ``train_statistic`` too.

    Args:
        train_statistic: ``(z (m, K), Y) -> Σ over the m rows`` for the training steps.
    """

    def __init__(self, train_statistic: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.train_statistic = train_statistic
        self._stages: dict[str, RunningMeans] = {}

    def add(self, stage: str, J: Tensor, n: int, z: Tensor | None = None, Y: Tensor | None = None) -> None:
        means = self._stages.get(stage)
        if means is None:
            statistic = self.train_statistic if stage == "train" else None
            means = self._stages[stage] = RunningMeans(statistic)
        means.add(J, n, z, Y)

    def add_sums(self, stage: str, total: Tensor) -> None:
        """:meth:`RunningMeans.add_sums` for ``stage`` (started if needed)."""
        means = self._stages.get(stage)
        if means is None:
            statistic = self.train_statistic if stage == "train" else None
            means = self._stages[stage] = RunningMeans(statistic)
        means.add_sums(total)

    def reset(self, stage: str) -> None:
        self._stages.pop(stage, None)

    def pop(self, stage: str, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """(mean J, mean statistic) of the stage's epoch (see :meth:`RunningMeans.means`); clears it."""
        return self._stages.pop(stage, RunningMeans()).means(device)
