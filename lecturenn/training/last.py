"""LastCheckpoint: ``last.ckpt`` holds the state after the most recent epoch, whatever val/loss did.

Lightning's ``ModelCheckpoint(save_last=True)`` only rewrites ``last.ckpt`` when it also saved a
top-k checkpoint (Lightning 2.6: "only save last checkpoint if a checkpoint was actually saved in
this step"), so with ``monitor="val/loss", save_top_k=1`` it was a byte copy of the *best*
checkpoint — a killed run lost every epoch since the last improvement, and a resume re-trained
them. This callback does not depend on that rule: it writes ``<dirpath>/last.ckpt`` itself after
every training epoch, through the trainer's checkpoint plugin (atomic: temporary file + rename).

When it runs. Lightning calls ``on_train_epoch_end`` of "monitoring" callbacks (subclasses of
``Checkpoint``) after the LightningModule's own ``on_train_epoch_end`` — so the checkpoint holds the
epoch's logged metrics and the scheduler state the next epoch starts with — and an end-of-epoch
validation has already run. ``DivergenceGuard`` (not a monitoring callback) checks the epoch
before that, so a diverged epoch never reaches ``last.ckpt``. The best checkpoint stays
``ModelCheckpoint``'s job (``save_last=False`` there).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

__all__ = ["LastCheckpoint"]


class LastCheckpoint(Checkpoint):
    """Write ``<dirpath>/<filename>`` (default ``last.ckpt``) at the end of every training epoch.

    Args:
        dirpath: the run's checkpoint directory.
        filename: the file name (``last.ckpt``).

    Attributes:
        last_model_path: the file written (empty until the first epoch ends).
    """

    def __init__(self, dirpath: str | Path, filename: str = "last.ckpt") -> None:
        self.dirpath = Path(dirpath)
        self.filename = filename
        self.last_model_path = ""

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    @property
    def state_key(self) -> str:
        return f"LastCheckpoint{{'filename': {self.filename!r}}}"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        if any(getattr(cb, "holding_checkpoints", False) for cb in trainer.callbacks):
            return  # DivergenceGuard: the loss is above its explosion threshold — keep the last good state
        # the full state (optimizer, loops, callbacks); every rank takes part, the strategy writes on rank 0
        trainer.save_checkpoint(self.path, weights_only=False)
        self.last_model_path = str(self.path)

    def state_dict(self) -> dict:
        return {"last_model_path": self.last_model_path}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_model_path = str(state_dict.get("last_model_path", ""))
