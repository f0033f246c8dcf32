"""The TensorFlow Playground's 2-D data sets and input features, as a DataModule.

Reimplemented after the Playground's ``dataset.ts`` (Apache 2.0) with a seeded numpy Generator.
As there, ``noise`` (0 to 0.5, the Playground's 0-50 %) perturbs the point *used for the label*
while the stored point stays where it was drawn (circle, xor, plane, multigauss) — so noise blurs
the class boundary — and widens the clusters (gauss) or jitters the points (spiral).
Binary labels are the Playground's -1 / 1, class ids 0 / 1 (``classes == ["-1", "1"]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..validation import check_integer, check_number
from .arrays import ArrayDataModule
from .features import FEATURE_ALIASES, FEATURES, playground_features

__all__ = [
    "FEATURES",
    "FEATURE_ALIASES",
    "PLAYGROUND_SETS",
    "PlaygroundDataModule",
    "playground_arrays",
    "playground_features",
]

#: data set name → task
PLAYGROUND_SETS: dict[str, str] = {
    "circle": "binary",
    "xor": "binary",
    "gauss": "binary",
    "spiral": "binary",
    "plane": "regression",
    "multigauss": "regression",
}


def _circle(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    radius = 5.0
    n_in = n // 2
    r = np.concatenate([rng.uniform(0, radius * 0.5, n_in), rng.uniform(radius * 0.7, radius, n - n_in)])
    angle = rng.uniform(0, 2 * np.pi, n)
    X = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
    shifted = X + rng.uniform(-radius, radius, (n, 2)) * noise
    return X, np.where(np.hypot(shifted[:, 0], shifted[:, 1]) < radius * 0.5, 1, -1)


def _xor(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    X = rng.uniform(-5, 5, (n, 2))
    X += np.where(X > 0, 0.3, -0.3)  # the Playground's padding away from the axes
    shifted = X + rng.uniform(-5, 5, (n, 2)) * noise
    return X, np.where(shifted[:, 0] * shifted[:, 1] >= 0, 1, -1)


def _gauss(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    variance = 0.5 + noise * (4.0 - 0.5) / 0.5  # noise 0 → 0.5, noise 0.5 → 4 (d3 linear scale)
    n_pos = n // 2
    centers = np.concatenate([np.full((n_pos, 2), 2.0), np.full((n - n_pos, 2), -2.0)])
    X = centers + rng.normal(0.0, np.sqrt(variance), (n, 2))
    return X, np.where(np.arange(n) < n_pos, 1, -1)


def _spiral(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    parts, labels = [], []
    for k, (delta, label) in enumerate([(0.0, 1), (np.pi, -1)]):
        m = n // 2 if k == 0 else n - n // 2
        i = np.arange(m) / max(m, 1)
        r, t = i * 5, 1.75 * i * 2 * np.pi + delta
        xy = np.stack([r * np.sin(t), r * np.cos(t)], axis=1) + rng.uniform(-1, 1, (m, 2)) * noise
        parts.append(xy)
        labels.append(np.full(m, label))
    return np.concatenate(parts), np.concatenate(labels)


def _plane(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    radius = 6.0
    X = rng.uniform(-radius, radius, (n, 2))
    shifted = X + rng.uniform(-radius, radius, (n, 2)) * noise
    return X, (shifted[:, 0] + shifted[:, 1]) / 10.0  # x1+x2 in [-10, 10] → [-1, 1]


_BUMPS = np.array(
    [[-4, 2.5, 1], [0, 2.5, -1], [4, 2.5, 1], [-4, -2.5, -1], [0, -2.5, 1], [4, -2.5, -1]], float
)


def _multigauss(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    radius = 6.0
    X = rng.uniform(-radius, radius, (n, 2))
    shifted = X + rng.uniform(-radius, radius, (n, 2)) * noise
    # six signed bumps, height 1 - dist/2 clamped to [0, 1]; the label is the bump largest in |value|
    d = np.hypot(shifted[:, None, 0] - _BUMPS[:, 0], shifted[:, None, 1] - _BUMPS[:, 1])
    values = _BUMPS[:, 2] * np.clip(1 - d / 2, 0, 1)
    return X, values[np.arange(n), np.abs(values).argmax(axis=1)]


_GENERATORS = {
    "circle": _circle,
    "xor": _xor,
    "gauss": _gauss,
    "spiral": _spiral,
    "plane": _plane,
    "multigauss": _multigauss,
}


def _check_set(dataset: str, n: int, noise: float) -> None:
    if dataset not in PLAYGROUND_SETS:
        raise ValueError(f"dataset must be one of {', '.join(PLAYGROUND_SETS)}; got {dataset!r}")
    check_integer(n, "n", low=1)
    check_number(noise, "noise (the Playground's 0-50 %)", low=0.0, high=0.5)


def playground_arrays(dataset: str, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``X`` float64 (n, 2) and ``y`` (n,) of a Playground set, rows shuffled.

    Binary sets give labels -1 / 1 (int64), regression sets float64 targets in [-1, 1].
    """
    _check_set(dataset, n, noise)
    rng = np.random.default_rng(seed)
    X, y = _GENERATORS[dataset](rng, int(n), float(noise))
    order = rng.permutation(int(n))
    return X[order].astype(np.float64), y[order]


class PlaygroundDataModule(ArrayDataModule):
    """A TensorFlow Playground data set with the Playground's input features.

    Args:
        dataset: one of :data:`PLAYGROUND_SETS` (circle, xor, gauss, spiral: binary; plane,
            multigauss: regression with one target).
        n: number of points (all splits together).
        noise: 0 to 0.5.
        features: subset of :data:`FEATURES` (or their aliases), in the order the net sees them;
            computed from the raw (x1, x2) columns by the data's
            :class:`~lecturenn.data.DataTransform`, then standardised.
        **base_kwargs: :class:`ArrayDataModule` arguments; ``seed`` also seeds the generator.
    """

    def __init__(
        self,
        dataset: str = "circle",
        n: int = 500,
        noise: float = 0.0,
        features: Sequence[str] = ("x1", "x2"),
        **base_kwargs,
    ) -> None:
        super().__init__(**base_kwargs)
        _check_set(dataset, n, noise)
        self.dataset, self.n, self.noise = dataset, int(n), float(noise)
        self.features = playground_features(features)

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str, list[str] | None]:
        X, y = playground_arrays(self.dataset, self.n, self.noise, self.seed)
        task = PLAYGROUND_SETS[self.dataset]
        if task == "binary":
            return X, (y > 0).astype(np.int64), ["x1", "x2"], ["label"], task, ["-1", "1"]
        return X, y, ["x1", "x2"], ["label"], task, None

    def expanded_names(self, raw_names: list[str]) -> list[str]:
        return list(self.features)
