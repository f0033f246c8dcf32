"""DivergenceGuard: stop training as soon as J(Θ) or Θ stops being finite, before anything is saved.

Each training step folds ``isfinite(J)`` into a flag on the device (no host sync in the hot loop)
and remembers the first step whose loss was not finite. The flag and Θ are read once per epoch —
before validation and before the checkpoint callbacks (Lightning runs those last), so a diverged
epoch never reaches ``best`` or ``last.ckpt``. The error names the epoch, the step and the likely
cause.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

__all__ = ["DivergenceGuard", "TrainingDiverged"]


class TrainingDiverged(FloatingPointError):
    """Raised when the loss or the weights become NaN/inf."""


class DivergenceGuard(L.Callback):
    """Raise :class:`TrainingDiverged` when the training loss or any parameter is not finite."""

    def __init__(self) -> None:
        self._ok: Tensor | None = None
        self._first_bad_step: Tensor | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._ok = None
        self._first_bad_step = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, Tensor) or loss.numel() == 0:
            return
        # a 0-d loss (one step) or the losses of a batch group (k,), whose last step is global_step
        losses = loss.detach().reshape(-1)
        finite = torch.isfinite(losses)
        first = (~finite).int().argmax()  # index of the first non-finite loss (0 if none)
        step = first + (trainer.global_step - losses.numel())
        finite = finite.all()
        if self._ok is None:
            self._ok = finite.clone()
            self._first_bad_step = torch.where(finite, torch.full_like(step, -1), step)
        else:
            newly_bad = self._ok & ~finite
            self._first_bad_step = torch.where(newly_bad, step, self._first_bad_step)
            self._ok &= finite

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss_ok = self._ok is None or bool(self._ok)
        bad_params = [name for name, p in pl_module.named_parameters() if not torch.isfinite(p).all()]
        if loss_ok and not bad_params:
            return
        epoch = trainer.current_epoch
        what = []
        if not loss_ok:
            step = int(self._first_bad_step) if self._first_bad_step is not None else -1
            where = f" at step {step}" if step >= 0 else ""
            what.append(f"the loss J(Θ) became NaN/inf{where}")
        if bad_params:
            what.append(f"non-finite weights in {', '.join(bad_params[:3])}")
        lr = None
        if trainer.optimizers:
            lr = trainer.optimizers[0].param_groups[0].get("lr")
        hint = (
            f"the learning rate ({lr:g}) is probably too large — try one 10-100x smaller"
            if lr is not None
            else "the learning rate is probably too large"
        )
        raise TrainingDiverged(
            f"training diverged in epoch {epoch}: {'; '.join(what)}. Likely cause: {hint}. "
            "No checkpoint was written for this epoch."
        )
