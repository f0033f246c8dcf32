"""``DataInfo``: everything a trained model must remember about its data.

Stored in checkpoints (as hyper-parameters and as the DataModule's state), so every field is a
plain Python type: ``str``, ``int``, ``float``, lists of those, or ``None``.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

__all__ = ["TASKS", "DataInfo"]

TASKS = ("binary", "multiclass", "multilabel", "regression")


def _floats(values: Any) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


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
        self.x_mean, self.x_std = _floats(self.x_mean), _floats(self.x_std)
        self.y_mean, self.y_std = _floats(self.y_mean), _floats(self.y_std)
        self.image_shape = _ints(self.image_shape)
        if len(self.feature_names) != self.n_features:
            raise ValueError(
                f"DataInfo: {len(self.feature_names)} feature_names for n_features={self.n_features}"
            )
        for name in ("x_mean", "x_std"):
            value = getattr(self, name)
            if value is not None and len(value) != self.n_features:
                raise ValueError(f"DataInfo.{name} has {len(value)} entries; n_features={self.n_features}")

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
