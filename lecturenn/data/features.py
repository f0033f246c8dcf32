"""Derived input features: the TensorFlow Playground's x1², x2², x1·x2, sin(x1), sin(x2).

A registry of data, not code paths: :data:`FEATURES` maps a feature's name to the function that
computes it from the raw columns ``x1`` and ``x2``. :class:`~lecturenn.data.DataTransform` looks a
feature up here when it is not a raw column itself, so the data modules, the LightningModule and
``predict.py`` expand rows the same way; adding a feature is one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["FEATURES", "FEATURE_ALIASES", "RAW", "playground_features"]

#: the raw columns every derived feature is computed from
RAW = ("x1", "x2")

#: the Playground's input features, computed from the raw columns x1, x2 (each (n,) → (n,))
FEATURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1^2": lambda x1, x2: x1 * x1,
    "x2^2": lambda x1, x2: x2 * x2,
    "x1*x2": lambda x1, x2: x1 * x2,
    "sin(x1)": lambda x1, x2: np.sin(x1),
    "sin(x2)": lambda x1, x2: np.sin(x2),
}
FEATURE_ALIASES = {"x1sq": "x1^2", "x2sq": "x2^2", "x1x2": "x1*x2", "sin_x1": "sin(x1)", "sin_x2": "sin(x2)"}


def playground_features(names: Sequence[str] | str) -> list[str]:
    """Canonical feature names (aliases resolved); ``ValueError`` for unknown, empty or repeated.
    One name may be given as a plain string (``features=x1``), not spelled out letter by letter."""
    if isinstance(names, str):
        names = [names]
    canon = [FEATURE_ALIASES.get(str(f), str(f)) for f in names]
    unknown = [f for f in canon if f not in FEATURES]
    if unknown:
        raise ValueError(
            f"unknown features {unknown}; choose from {list(FEATURES)} (aliases {list(FEATURE_ALIASES)})"
        )
    if not canon or len(set(canon)) != len(canon):
        raise ValueError(f"features must be a non-empty list without repeats; got {list(names)}")
    return canon
