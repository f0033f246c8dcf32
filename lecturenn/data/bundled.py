"""The small data sets bundled with scikit-learn (no network), as a DataModule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import datasets

from .arrays import ArrayDataModule

__all__ = ["SKLEARN_SETS", "SklearnDataModule"]

#: data set name → task
SKLEARN_SETS: dict[str, str] = {
    "digits": "multiclass",  # 1797 × 64 (8×8 images), 10 classes "0".."9"
    "iris": "multiclass",  # 150 × 4, 3 classes
    "wine": "multiclass",  # 178 × 13, 3 classes
    "breast_cancer": "binary",  # 569 × 30, classes ["malignant", "benign"]
    "diabetes": "regression",  # 442 × 10, one target (disease progression)
}

_LOADERS: dict[str, Callable[[], Any]] = {
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
}


class SklearnDataModule(ArrayDataModule):
    """One of :data:`SKLEARN_SETS`; class names from the set's ``target_names`` (digits: "0".."9").

    Args:
        name: data set name.
        **base_kwargs: :class:`ArrayDataModule` arguments.
    """

    def __init__(self, name: str = "digits", **base_kwargs) -> None:
        super().__init__(**base_kwargs)
        if name not in SKLEARN_SETS:
            raise ValueError(f"name must be one of {', '.join(SKLEARN_SETS)}; got {name!r}")
        self.name = name

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str, list[str] | None]:
        bunch = _LOADERS[self.name]()
        X = np.asarray(bunch.data, dtype=np.float64)
        names = getattr(bunch, "feature_names", None)
        feature_names = [str(f) for f in names] if names is not None else [f"x{j}" for j in range(X.shape[1])]
        task = SKLEARN_SETS[self.name]
        if task == "regression":
            return X, np.asarray(bunch.target, dtype=np.float64), feature_names, ["target"], task, None
        classes = [str(c) for c in bunch.target_names]
        return X, np.asarray(bunch.target, dtype=np.int64), feature_names, ["target"], task, classes

    def image_shape(self) -> list[int] | None:
        return [8, 8] if self.name == "digits" else None
