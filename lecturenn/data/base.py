"""``BaseDataModule``: what every lecturenn data module shares.

Two kinds of data module derive from it: :class:`~lecturenn.data.ArrayDataModule` (arrays held in
memory, served from device-resident tensors) and :class:`~lecturenn.data.StreamDataModule` (files
larger than RAM, streamed in blocks). A subclass implements

* ``setup`` — load, check and split the data, fit the statistics (a :class:`DataInfo`), and hand
  them to :meth:`BaseDataModule._adopt`;
* ``_loader(split)`` — the batches of ``"train" | "val" | "test"``; ``split_sizes()``;
* ``_loaded()`` and ``_serve()`` — whether data is loaded, and re-serve it after restored statistics;

and this class does the rest: the argument checks, ``info`` and its raw → network
:class:`DataTransform` (``transform`` / ``inverse_transform_y``), the device, the dataloaders, and
the checkpoint state — restored statistics are checked against the data (:func:`check_same_data`)
and nothing changes when they do not fit it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from ..validation import check_integer
from .batches import check_batch_size
from .errors import DataError
from .info import DataInfo
from .split import check_fractions
from .transform import DataTransform

__all__ = ["IDENTITY", "SPLITS", "BaseDataModule", "check_same_data", "torch_dtype"]

SPLITS = ("train", "val", "test")
#: DataInfo fields that must agree between a checkpoint and the data it is restored on
IDENTITY = ("task", "raw_features", "raw_names", "feature_names", "target_names", "classes", "n_outputs")


def torch_dtype(name: str) -> torch.dtype:
    """The torch floating dtype named ``name`` (``"float32"``), else ``ValueError``."""
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must name a torch floating dtype such as 'float32'; got {name!r}")
    return dtype


def check_same_data(saved: DataInfo, current: DataInfo) -> None:
    """``DataError`` naming the first :data:`IDENTITY` field in which ``saved`` and ``current`` differ."""
    for key in IDENTITY:
        a, b = getattr(saved, key), getattr(current, key)
        if a != b:
            raise DataError(f"the checkpoint's data does not match this data: {key} {a!r} vs {b!r}")


class BaseDataModule(L.LightningDataModule):
    """Shared base of the data modules (see the module docstring); cheap to construct.

    Args:
        batch_size: rows per batch (``full_batch``: also ``None`` or ``-1``, one batch per epoch).
        val_fraction, test_fraction: each in (0, 1), sum < 1 (a subclass says of what).
        seed: seeds the split and the per-epoch order.
        standardize: standardise features (and regression targets) with train-split statistics.
        dtype: torch floating dtype name of X (and of float targets), e.g. ``"float32"``.
        full_batch: whether ``batch_size`` may ask for one batch of all rows.
    """

    def __init__(
        self,
        batch_size: int | None,
        val_fraction: float,
        test_fraction: float,
        seed: int,
        standardize: bool,
        dtype: str,
        full_batch: bool = True,
    ) -> None:
        super().__init__()
        self.batch_size = check_batch_size(batch_size, full_batch)
        check_fractions(val_fraction, test_fraction)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.seed, self.standardize, self.dtype = (
            check_integer(seed, "seed"),
            bool(standardize),
            torch_dtype(dtype),
        )
        self._info: DataInfo | None = None
        self._transform: tuple[DataInfo, DataTransform] | None = None  # info.transform, built once

    # ---- for subclasses -------------------------------------------------------------------------
    def _loaded(self) -> bool:
        """Whether ``setup`` has loaded the data (so restored statistics must be checked against it)."""
        raise NotImplementedError

    def _serve(self) -> None:
        """Re-serve the loaded data with ``info``'s statistics; ``DataError`` if they do not fit it."""
        raise NotImplementedError

    def _loader(self, split: str):
        """The batches of ``split`` ("train" | "val" | "test") for the current trainer."""
        raise NotImplementedError

    def split_sizes(self) -> dict[str, int]:
        """Rows per split: ``{"train": n, "val": n, "test": n}``."""
        raise NotImplementedError

    def _adopt(self, fitted: DataInfo, serve: Callable[[], None]) -> None:
        """End of ``setup``: keep restored statistics (checked against ``fitted``, the data's own) or
        take ``fitted``, then ``serve()``; on a ``DataError`` the info is left as it was."""
        restored = self._info
        if restored is not None:  # restored from a checkpoint before setup: keep its statistics
            check_same_data(restored, fitted)
        else:
            self._info = fitted
        try:
            serve()
        except DataError:  # a column the dtype cannot hold: leave no half-set-up state behind
            self._info = restored
            raise

    # ---- results of setup -----------------------------------------------------------------------
    @property
    def info(self) -> DataInfo:
        """The :class:`DataInfo` (runs :meth:`setup` if neither it nor :meth:`load_state_dict` ran)."""
        if self._info is None:
            self.setup()
        assert self._info is not None
        return self._info

    @property
    def data_transform(self) -> DataTransform:
        """``info``'s raw → network :class:`DataTransform` (what ``transform`` and the batches use)."""
        info = self.info
        if self._transform is None or self._transform[0] is not info:
            self._transform = (info, info.transform)
        return self._transform[1]

    def transform(self, X_raw: np.ndarray | Tensor) -> Tensor:
        """Raw feature rows (n, raw_features) or one row (raw_features,) → (n, n_features) tensor of
        ``dtype``, exactly as in the served batches (feature expansion + standardisation).

        A tensor keeps its device; anything else (numpy in any order, lists, pandas by position)
        gives a CPU tensor. Needs only ``info`` (works after :meth:`load_state_dict` without data).
        """
        return self.data_transform(X_raw, self.dtype)

    def inverse_transform_y(self, Y: Tensor) -> Tensor:
        """Undo the regression target standardisation: Y (n, K) → original units (identity otherwise)."""
        return self.data_transform.inverse_y(Y)

    # ---- batches --------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def train_dataloader(self):
        """Shuffled every epoch by ``(seed, trainer.current_epoch)``; under DDP each rank gets a shard."""
        return self._loader("train")

    def val_dataloader(self):
        """In order, not sharded: under DDP every rank sees the whole split (identical metrics)."""
        return self._loader("val")

    def test_dataloader(self):
        """In order, not sharded (as :meth:`val_dataloader`)."""
        return self._loader("test")

    def predict_dataloader(self):
        """The test split, in order, as ``(X, Y)`` batches."""
        return self._loader("test")

    # ---- checkpoints ----------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        """What a subclass saves besides the info (e.g. what fixes a streamed split)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Check and keep what :meth:`_extra_state` saved (``DataError`` when it does not fit the data)."""

    def _model_keeps_info(self) -> bool:
        """Whether the trainer's LightningModule stores this very info itself (ThetaMLPModule's
        ``data_info`` hyper-parameter): the checkpoint then holds it once, there."""
        module = getattr(self.trainer, "lightning_module", None)
        kept = getattr(module, "hparams", {}).get("data_info")
        return self._info is not None and kept == self._info.to_dict()

    def state_dict(self) -> dict[str, Any]:
        """Saved by Lightning in checkpoints: ``{"info": info.to_dict()}`` unless the model keeps
        the same info (see :meth:`_model_keeps_info`), plus a subclass's extra state; ``{}`` before
        setup."""
        if self._info is None:
            return {}
        state = self._extra_state()
        if not self._model_keeps_info():
            state["info"] = self._info.to_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the statistics of a checkpoint (its ``info``, if it holds one): checked against
        the data if already loaded, which is then served with them; nothing changes on a DataError."""
        info = DataInfo.from_dict(state_dict["info"]) if "info" in state_dict else None
        if self._loaded() and info is not None:
            check_same_data(info, self._info)
        previous = self._info
        self._load_extra_state({k: v for k, v in state_dict.items() if k != "info"})
        if info is None:
            return
        self._info = info
        if self._loaded():
            try:
                self._serve()
            except DataError:  # the restored statistics do not fit this data: keep the old state
                self._info = previous
                raise
