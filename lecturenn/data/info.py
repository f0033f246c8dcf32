"""``DataInfo``: everything a trained model must remember about its data.

Stored in a checkpoint once — as the model's ``data_info`` hyper-parameter (or as the DataModule's
state when the model does not keep it) — so every field is a plain Python type: ``str``, ``int``,
``float``, lists of those, or ``None``. Its standardisation and feature fields are those of the
raw → network :class:`~lecturenn.data.DataTransform` (:attr:`DataInfo.transform`).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from .features import FEATURES, RAW
from .tasks import TASKS
from .transform import DataTransform, floats

__all__ = ["TASKS", "DataInfo", "legacy_raw_names"]


def legacy_raw_names(feature_names: list[str], raw_features: int) -> list[str]:
    """The raw columns of an info written before ``raw_names`` was stored: the Playground's x1, x2
    when every feature is a Playground feature of two raw columns, else the features themselves."""
    if raw_features == len(RAW) and all(name in FEATURES for name in feature_names):
        return list(RAW)
    if raw_features != len(feature_names):
        raise ValueError(f"DataInfo: {raw_features} raw features but no raw_names for {feature_names}")
    return list(feature_names)


def _ints(values: Any) -> list[int] | None:
    return None if values is None else [int(v) for v in values]


def _strs(values: Any) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


@dataclass
class DataInfo:
    """What the network sees and how to get there from raw feature rows.

    Attributes:
        task: ``"binary" | "multiclass" | "multilabel" | "regression"``.
        n_features: columns of X after feature expansion (the input layer size s_1).
        n_outputs: binary 1, multiclass K classes, multilabel K labels, regression K targets.
        feature_names: ``n_features`` names of the columns the net sees.
        target_names: the target column name(s).
        classes: binary/multiclass class names in label-encoded order (index = class id);
            ``None`` for regression/multilabel.
        x_mean, x_std: per-feature standardisation fitted on the train split, finite for any
            finite data (a constant column — std 0 up to round-off — gets its value as mean and
            std 1); ``None`` when not standardising.
        y_mean, y_std: regression target standardisation (train split); ``None`` otherwise.
        image_shape: e.g. ``[8, 8]`` for digits (rows of Θ^(1) as images); ``None`` otherwise.
        raw_features: raw input columns before feature expansion (2 for the playground sets).
        n_train: rows in the training split (N in the penalty λ/(2N) ΣΘ² of mini-batch training).
        train_digest: SHA-256 of the training split's raw rows and targets (in-memory data
            modules; ``None`` for the streaming ones): a resume must train on the same rows, even
            when nothing is standardised (see :mod:`lecturenn.training.resume`).
        raw_names: the ``raw_features`` raw column names, in the order raw rows hold them (x1, x2
            for the playground sets); inferred for infos written without it
            (:func:`legacy_raw_names`).
        arithmetic: the dtype name in which the features are standardised (``"float64"``, or the
            training dtype for a streamed file that fits it; see :class:`DataTransform`).
    """

    task: str
    n_features: int
    n_outputs: int
    feature_names: list[str]
    target_names: list[str]
    classes: list[str] | None
    x_mean: list[float] | None
    x_std: list[float] | None
    y_mean: list[float] | None
    y_std: list[float] | None
    image_shape: list[int] | None
    raw_features: int
    n_train: int | None = None
    train_digest: str | None = None
    raw_names: list[str] | None = None
    arithmetic: str = "float64"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"DataInfo.task must be one of {', '.join(TASKS)}; got {self.task!r}")
        # normalise to plain Python types (numpy scalars do not belong in a checkpoint's hparams)
        self.n_features, self.n_outputs, self.raw_features = (
            int(self.n_features),
            int(self.n_outputs),
            int(self.raw_features),
        )
        self.feature_names = _strs(self.feature_names)
        self.target_names = _strs(self.target_names)
        self.classes = _strs(self.classes)
        self.x_mean, self.x_std = floats(self.x_mean), floats(self.x_std)
        self.y_mean, self.y_std = floats(self.y_mean), floats(self.y_std)
        self.image_shape = _ints(self.image_shape)
        if self.raw_names is None:
            self.raw_names = legacy_raw_names(self.feature_names, self.raw_features)
        self.raw_names = _strs(self.raw_names)
        if len(self.raw_names) != self.raw_features:
            raise ValueError(
                f"DataInfo: {len(self.raw_names)} raw_names for raw_features={self.raw_features}"
            )
        if len(self.feature_names) != self.n_features:
            raise ValueError(
                f"DataInfo: {len(self.feature_names)} feature_names for n_features={self.n_features}"
            )
        for name in ("x_mean", "x_std"):
            value = getattr(self, name)
            if value is not None and len(value) != self.n_features:
                raise ValueError(f"DataInfo.{name} has {len(value)} entries; n_features={self.n_features}")
        self.transform  # noqa: B018 (checks that the features can be computed from the raw columns)

    @property
    def transform(self) -> DataTransform:
        """The raw → network :class:`DataTransform` these fields describe (a new object each time)."""
        names = ("raw_names", "feature_names", "x_mean", "x_std", "y_mean", "y_std", "arithmetic")
        return DataTransform(**{name: getattr(self, name) for name in names})

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` (deep-copied lists) that :meth:`from_dict` turns back into this object."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataInfo:
        """Inverse of :meth:`to_dict`. Raises ``ValueError`` naming missing or unknown keys."""
        names = [f.name for f in fields(cls)]
        optional = {f.name for f in fields(cls) if f.default is not MISSING}
        missing = [k for k in names if k not in d and k not in optional]
        unknown = [k for k in d if k not in names]
        if missing or unknown:
            raise ValueError(f"DataInfo.from_dict: missing keys {missing}, unknown keys {unknown}")
        return cls(**{k: d[k] for k in names if k in d})
