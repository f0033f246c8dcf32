"""Checkpoint files: written atomically, read without executing code.

* :class:`AtomicCheckpointIO` writes ``path.tmp`` next to the target, flushes it to disk and
  renames it over ``path`` (``os.replace`` is atomic on POSIX), so a crash or SIGKILL in the middle
  of a save never leaves a torn ``last.ckpt``: readers see the old file or the new one.
* :func:`load_checkpoint` reads with ``torch.load(weights_only=True)``: a checkpoint is data
  (tensors, numbers, strings, dicts) and a pickle that tries to build arbitrary objects is refused.
  A missing, truncated or corrupted file gives a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "CheckpointError", "load_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, truncated, corrupted or unsafe)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic (temporary file in the same directory + rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location)


def load_checkpoint(path, map_location="cpu") -> dict[str, Any]:
    """Load a checkpoint as data only (``weights_only=True``); clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (
        Exception
    ) as err:  # torch raises many types for bad files (UnpicklingError, RuntimeError, EOFError)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds objects other than tensors and plain data; refusing to "
                f"unpickle it (it could run code): {reason}"
            ) from None
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupted: {reason}") from None
