"""``ArrayDataModule``: split, standardise and serve in-memory arrays as device-resident batches.

Subclasses implement :meth:`ArrayDataModule.load_arrays` (and, for derived input features,
:meth:`~ArrayDataModule.expand` / :meth:`~ArrayDataModule.expanded_names`); this class does
the rest. Data flow: ``load_arrays`` → checks → seeded (stratified) split → ``expand`` →
standardisation fitted on train → CPU tensors → per-device copies → :class:`TensorBatches`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from .batches import TensorBatches, loader_settings
from .checks import check_arrays, raw_rows, to_dtype
from .errors import DataError
from .info import DataInfo
from .scaling import network_inputs, standardise
from .split import R2_ROWS, check_fractions, rows_digest, split_indices, standardisation

__all__ = ["ArrayDataModule"]

SPLITS = ("train", "val", "test")
# DataInfo fields that must agree between a checkpoint and the data it is resumed on
_IDENTITY = ("task", "raw_features", "feature_names", "target_names", "classes", "n_outputs")


class ArrayDataModule(L.LightningDataModule):
    """Base DataModule: subclasses implement :meth:`load_arrays`; cheap to construct (loads in setup).

    Args:
        batch_size: rows per training batch; ``None`` or ``-1`` → one full batch per epoch.
            Validation/test/predict batches use the same size.
        val_fraction, test_fraction: shares of all rows (each in (0, 1), sum < 1); split sizes
            are ``round(fraction * n)``. Validation is mandatory (checkpointing monitors it).
        seed: seeds the split and the per-epoch shuffle.
        standardize: standardise features (and regression targets) with train-split statistics
            (computed in float64 for any finite numbers, :mod:`~lecturenn.data.scaling`).
        dtype: torch floating dtype name of X (and of float targets), e.g. ``"float32"``. A
            column it cannot hold — after standardisation, or raw with ``standardize=False``; a
            regression target also raw — is a :class:`DataError` at setup naming it (see
            :func:`~lecturenn.data.checks.to_dtype`).

    After :meth:`setup`: ``info`` (:class:`DataInfo`), ``train``/``val``/``test`` (CPU tensor
    pairs, already standardised) and ``raw`` (the unexpanded, unstandardised numpy splits).
    """

    def __init__(
        self,
        batch_size: int | None = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        standardize: bool = True,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        if batch_size is not None and batch_size != -1 and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(
                f"batch_size must be a positive integer, None or -1 (full batch); got {batch_size!r}"
            )
        check_fractions(val_fraction, test_fraction)
        torch_dtype = getattr(torch, str(dtype), None)
        if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
            raise ValueError(f"dtype must name a torch floating dtype such as 'float32'; got {dtype!r}")
        self.batch_size = None if batch_size in (None, -1) else int(batch_size)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.seed, self.standardize, self.dtype = int(seed), bool(standardize), torch_dtype
        self._info: DataInfo | None = None
        self._raw: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._rows: dict[str, np.ndarray] = {}  # each split's data-row numbers (for messages)
        self._tensors: dict[str, tuple[Tensor, Tensor]] | None = None
        self._on_device: dict[tuple[str, str], tuple[Tensor, Tensor]] = {}

    # ---- hooks for subclasses -------------------------------------------------------------------
    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str, list[str] | None]:
        """``(X, y, feature_names, target_names, task, classes)``.

        X: float (n, d) raw features; y: (n,) or (n, k). For binary/multiclass, y holds class ids
        0..K-1 named by ``classes``, or — with ``classes=None`` — any labels, which are then
        label-encoded in sorted order (names ``str(label)``). Multilabel: (n, K) of 0/1.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement load_arrays()")

    def expanded_names(self, raw_names: list[str]) -> list[str]:
        """Names of the columns the net sees, given the raw column names (default: the same)."""
        return list(raw_names)

    def expand(self, X_raw: np.ndarray, feature_names: list[str]) -> np.ndarray:
        """Raw rows (n, raw_features) float64 → the named features (n, len(feature_names))."""
        return X_raw

    def image_shape(self) -> list[int] | None:
        """Shape to draw one input row as an image (e.g. ``[8, 8]``), or ``None``."""
        return None

    # ---- setup ----------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Load, check, split, fit the standardisation and build CPU tensors (once; idempotent)."""
        if self._tensors is not None:
            return
        X, y, feature_names, target_names, task, classes = self.load_arrays()
        X, y, classes = check_arrays(X, y, list(feature_names), list(target_names), task, classes)
        labels = y if task in ("binary", "multiclass") else None
        eval_rows, why = (2, R2_ROWS) if task == "regression" else (1, "")
        parts = split_indices(
            len(X), self.val_fraction, self.test_fraction, self.seed, labels, classes, eval_rows, why
        )
        raw = {name: (X[idx], y[idx]) for name, idx in zip(SPLITS, parts)}
        self._rows = dict(zip(SPLITS, parts))
        info = self._fit_info(raw["train"], list(feature_names), list(target_names), task, classes)
        restored = self._info
        if restored is not None:  # restored from a checkpoint before setup: keep its statistics
            self._check_compatible(restored, info)
        else:
            self._info = info
        self._raw = raw
        try:
            self._build_tensors()
        except DataError:  # a column the dtype cannot hold: leave no half-set-up state behind
            self._info, self._raw = restored, None
            raise

    def _fit_info(
        self,
        train: tuple[np.ndarray, np.ndarray],
        raw_names: list[str],
        target_names: list[str],
        task: str,
        classes: list[str] | None,
    ) -> DataInfo:
        X_raw, y = train
        names = self.expanded_names(raw_names)
        Xe = self.expand(X_raw, names)
        x_mean = x_std = y_mean = y_std = None
        if self.standardize:
            x_mean, x_std = standardisation(Xe)
            if task == "regression":
                y_mean, y_std = standardisation(y)
        n_outputs = {"binary": 1, "multiclass": len(classes or [])}.get(
            task, y.shape[1] if y.ndim == 2 else 1
        )
        return DataInfo(
            task=task,
            n_features=Xe.shape[1],
            n_outputs=n_outputs,
            feature_names=names,
            target_names=target_names,
            classes=classes,
            x_mean=x_mean,
            x_std=x_std,
            y_mean=y_mean,
            y_std=y_std,
            image_shape=self.image_shape(),
            raw_features=X_raw.shape[1],
            n_train=len(X_raw),
            train_digest=rows_digest(X_raw, y),
        )

    @staticmethod
    def _check_compatible(saved: DataInfo, current: DataInfo) -> None:
        for key in _IDENTITY:
            a, b = getattr(saved, key), getattr(current, key)
            if a != b:
                raise DataError(f"the checkpoint's data does not match this data: {key} {a!r} vs {b!r}")

    def _build_tensors(self) -> None:
        assert self._raw is not None
        self._tensors = {
            name: (self._features(X, self._rows.get(name)), self._targets(y, self._rows.get(name)))
            for name, (X, y) in self._raw.items()
        }
        self._on_device.clear()

    def _features(self, X_raw: np.ndarray, rows: np.ndarray | None = None) -> Tensor:
        """Raw (n, raw_features) float64 → expanded, standardised tensor (n, n_features) of ``dtype``.

        :func:`~lecturenn.data.scaling.network_inputs`: standardised in float64, then cast; a
        column ``dtype`` cannot hold is a ``DataError`` quoting a value and its row (``rows``:
        data-row numbers of the rows; default 0..n-1).
        """
        info = self.info
        A = self.expand(X_raw, info.feature_names)
        if A.shape[1] != info.n_features:
            raise DataError(
                f"{type(self).__name__} gives {A.shape[1]} features but the data info has {info.n_features} "
                f"({', '.join(info.feature_names)}): was the state loaded from another kind of data?"
            )
        return network_inputs(A, info, self.dtype, rows)

    def _targets(self, y: np.ndarray, rows: np.ndarray | None = None) -> Tensor:
        info = self.info
        if info.task == "multiclass":
            return torch.from_numpy(y.astype(np.int64))
        Y = y.reshape(len(y), -1).astype(np.float64)
        raw = to_dtype(Y, self.dtype, info.target_names, "target", Y, rows, False)  # predictions' units
        if info.y_mean is None or info.y_std is None:
            return raw
        Z = standardise(Y, info.y_mean, info.y_std)
        return to_dtype(Z, self.dtype, info.target_names, "target", Y, rows, True)

    # ---- results of setup -----------------------------------------------------------------------
    @property
    def info(self) -> DataInfo:
        """The :class:`DataInfo` (runs :meth:`setup` if neither it nor :meth:`load_state_dict` ran)."""
        if self._info is None:
            self.setup()
        assert self._info is not None
        return self._info

    def _split(self, name: str) -> tuple[Tensor, Tensor]:
        if self._tensors is None:
            self.setup()
        assert self._tensors is not None
        return self._tensors[name]

    @property
    def train(self) -> tuple[Tensor, Tensor]:
        """``(X, Y)`` of the train split on CPU: X (n, n_features) ``dtype``; Y see the class docs."""
        return self._split("train")

    @property
    def val(self) -> tuple[Tensor, Tensor]:
        return self._split("val")

    @property
    def test(self) -> tuple[Tensor, Tensor]:
        return self._split("test")

    @property
    def raw(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train"|"val"|"test": (X_raw (n, raw_features) float64, y)}``: before expansion and
        standardisation; y as class ids (n,) for binary/multiclass, (n, K) float otherwise."""
        if self._raw is None:
            self.setup()
        assert self._raw is not None
        return self._raw

    def split_sizes(self) -> dict[str, int]:
        """Rows per split: ``{"train": n, "val": n, "test": n}``."""
        return {name: len(self._split(name)[0]) for name in SPLITS}

    def raw_splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Same as :attr:`raw` (the name the plotting callback looks for)."""
        return self.raw

    # ---- batches --------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _served(self, name: str, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (name, str(device))
        if key not in self._on_device:
            X, Y = self._split(name)
            self._on_device[key] = (X.to(device), Y.to(device))
        return self._on_device[key]

    def _batches(self, name: str, train: bool) -> TensorBatches:
        X, Y = self._served(name, self._device())
        settings = loader_settings(self.trainer, train)
        return TensorBatches(X, Y, self.batch_size, shuffle=train, seed=self.seed, **settings)

    def train_dataloader(self) -> TensorBatches:
        """Shuffled every epoch by ``(seed, trainer.current_epoch)``; under DDP each rank gets a shard."""
        return self._batches("train", train=True)

    def val_dataloader(self) -> TensorBatches:
        """In order, not sharded: under DDP every rank sees the whole split (identical metrics)."""
        return self._batches("val", train=False)

    def test_dataloader(self) -> TensorBatches:
        """In order, not sharded (as :meth:`val_dataloader`)."""
        return self._batches("test", train=False)

    def predict_dataloader(self) -> TensorBatches:
        """The test split, in order, as ``(X, Y)`` batches."""
        return self._batches("test", train=False)

    # ---- raw rows ↔ what the net sees -----------------------------------------------------------
    def transform(self, X_raw: np.ndarray | Tensor) -> Tensor:
        """Raw feature rows (n, raw_features) or one row (raw_features,) → (n, n_features) tensor.

        Feature expansion + standardisation, exactly as applied to the served splits. A tensor
        input keeps its device; numpy input gives a CPU tensor. Needs only ``info`` (works after
        :meth:`load_state_dict` without loading any data).
        """
        device = X_raw.device if isinstance(X_raw, Tensor) else torch.device("cpu")
        A = raw_rows(X_raw, self.info.raw_features)
        return self._features(A).to(device)

    def inverse_transform_y(self, Y: Tensor) -> Tensor:
        """Undo the regression target standardisation: Y (n, K) → original units (identity otherwise)."""
        info = self.info
        if info.task != "regression" or info.y_mean is None or info.y_std is None:
            return Y
        std = torch.tensor(info.y_std, dtype=Y.dtype, device=Y.device)
        mean = torch.tensor(info.y_mean, dtype=Y.dtype, device=Y.device)
        return Y * std + mean

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"info": info.to_dict()}`` (empty before setup), saved by Lightning in checkpoints."""
        return {} if self._info is None else {"info": self._info.to_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``info``; already-loaded data is re-standardised with the restored statistics."""
        if "info" not in state_dict:
            return
        info = DataInfo.from_dict(state_dict["info"])
        if self._raw is not None and self._info is not None:
            self._check_compatible(info, self._info)
        previous, self._info = self._info, info
        if self._raw is not None:
            try:
                self._build_tensors()
            except DataError:  # the restored statistics do not fit this data: keep the old state
                self._info = previous
                raise
