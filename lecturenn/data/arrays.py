"""``ArrayDataModule``: split, standardise and serve in-memory arrays as device-resident batches.

Subclasses implement :meth:`ArrayDataModule.load_arrays` (and, for derived input features such as
the Playground's x1², :meth:`~ArrayDataModule.expanded_names`); this class does the rest. Data
flow: ``load_arrays`` → checks → seeded (stratified) split → the :class:`DataTransform` fitted on
train (feature expansion, standardisation) → CPU tensors → per-device copies → :class:`TensorBatches`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .base import SPLITS, BaseDataModule
from .batches import TensorBatches, loader_settings
from .checks import check_arrays
from .info import DataInfo
from .split import R2_ROWS, rows_digest, split_indices, standardisation
from .transform import DataTransform

__all__ = ["ArrayDataModule"]


class ArrayDataModule(BaseDataModule):
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
        super().__init__(batch_size, val_fraction, test_fraction, seed, standardize, dtype)
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
        """Names of the columns the net sees, given the raw column names (default: the same); each a
        raw column or a :data:`~lecturenn.data.features.FEATURES` entry, computed by the data's
        :class:`~lecturenn.data.DataTransform`."""
        return list(raw_names)

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
        self._adopt(info, lambda: self._build_tensors(raw))

    def _fit_info(
        self,
        train: tuple[np.ndarray, np.ndarray],
        raw_names: list[str],
        target_names: list[str],
        task: str,
        classes: list[str] | None,
    ) -> DataInfo:
        X_raw, y = train
        transform = DataTransform(raw_names, self.expanded_names(raw_names))
        Xe = transform.expand(X_raw)
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
            feature_names=transform.feature_names,
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
            raw_names=raw_names,
        )

    def _build_tensors(self, raw: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """The splits' tensors through ``info``'s transform; ``raw`` is kept only when all fit."""
        transform, info = self.data_transform, self.info
        tensors = {}
        for name, (X, y) in raw.items():
            rows = self._rows.get(name)
            X = transform.features(X, self.dtype, rows)  # expanded, standardised; checked
            if info.task == "multiclass":
                Y = torch.from_numpy(y.astype(np.int64))
            else:  # (n, K) float: regression standardised; binary/multilabel 0/1
                Y = transform.targets(y, self.dtype, info.target_names, rows)
            tensors[name] = (X, Y)
        self._raw, self._tensors = raw, tensors
        self._on_device.clear()

    def _loaded(self) -> bool:
        return self._raw is not None

    def _serve(self) -> None:
        assert self._raw is not None
        self._build_tensors(self._raw)

    # ---- results of setup -----------------------------------------------------------------------
    def _split(self, name: str) -> tuple[Tensor, Tensor]:
        if self._tensors is None:
            self.setup()
        assert self._tensors is not None
        return self._tensors[name]

    @property
    def train(self) -> tuple[Tensor, Tensor]:
        """``(X, Y)`` of the train split on CPU: X (n, n_features) ``dtype``; Y int64 class ids (n,)
        for multiclass, else (n, K) of ``dtype``."""
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
    def _served(self, name: str, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (name, str(device))
        if key not in self._on_device:
            X, Y = self._split(name)
            self._on_device[key] = (X.to(device), Y.to(device))
        return self._on_device[key]

    def _loader(self, split: str) -> TensorBatches:
        X, Y = self._served(split, self._device())
        train = split == "train"
        settings = loader_settings(self.trainer, train)
        return TensorBatches(X, Y, self.batch_size, shuffle=train, seed=self.seed, **settings)
