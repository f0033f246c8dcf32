"""Standardisation statistics and the standardisation itself, in float64, for any finite numbers.

A column of ±1e300 is finite in float64, but its x² (or the sum of many values near 1e308) is
not: the textbook ``A.mean()`` / ``A.std()`` overflow to inf, and ``(x − mean) / inf`` silently
turns the column into zeros. Here every column is scaled by a power of two 2^e before anything
is summed or squared — ``ldexp`` is exact, so for columns of ordinary size (|e| ≤ ``SAFE_EXPONENT``,
where e = 0 is used) the results are bit-for-bit those of the plain formulas.

* :class:`Moments` — column count, mean, M2, min and max of a stream of chunks (Chan et al.'s
  merge in scaled units), the one implementation behind both the in-memory and the streaming
  data modules.
* :func:`standardisation` — mean and std of an in-memory array (one chunk of :class:`Moments`).
* :func:`standardise` — ``(A − mean) / std`` in float64 that does not overflow on the way.
* :func:`network_inputs` — feature rows → the tensor the net sees (standardise, check, cast): the
  float64 route of :class:`~lecturenn.data.DataTransform`, which the data modules, the
  LightningModule and ``predict.py`` all go through.
* :func:`fits` — whether standardising in a narrower dtype's own arithmetic is as good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .info import DataInfo

__all__ = ["SAFE_EXPONENT", "Moments", "fits", "network_inputs", "standardisation", "standardise"]

# Columns whose max |x| lies in [2^-256, 2^256] need no scaling: their squares, and sums of up
# to 2^400 of them, stay far inside float64's normal range.
SAFE_EXPONENT = 256


def _exponents(absmax: np.ndarray) -> np.ndarray:
    """Per column: e with absmax < 2^e (so x·2^-e is in (−1, 1)), or 0 where no scaling is needed."""
    e = np.frexp(absmax)[1].astype(np.int64)  # absmax = m·2^e, m in [0.5, 1); frexp(0) gives e = 0
    return np.where(np.abs(e) > SAFE_EXPONENT, e, 0)


class Moments:
    """Per-column count, mean, sum of squared deviations M2, min and max of a stream of chunks.

    Everything is float64. Chunks merge with the parallel formula of Chan, Golub & LeVeque (1979):
    for a part a seen so far and a chunk b, δ = mean_b − mean_a, n = n_a + n_b,
    mean = mean_a + δ·n_b/n and M2 = M2_a + M2_b + δ²·n_a·n_b/n (stable; no Σx² − n·mean²).
    Mean and M2 are kept in units of 2^e per column, e growing with the column's running max |x|
    (see the module docstring), so no finite input overflows them.
    """

    def __init__(self, d: int) -> None:
        self.n = 0
        self.mean, self.m2 = np.zeros(d), np.zeros(d)  # in units of 2^e, 2^2e
        self.e = np.zeros(d, dtype=np.int64)
        self.lo, self.hi = np.full(d, np.inf), np.full(d, -np.inf)

    def add(self, A: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> Moments:
        """Fold in the rows of ``A`` (m, d) (finite numbers; ``lo``, ``hi``: its column min and max
        if already known); returns ``self``."""
        m = len(A)
        if m == 0:
            return self
        A = np.asarray(A, dtype=np.float64)
        lo = A.min(axis=0) if lo is None else lo
        hi = A.max(axis=0) if hi is None else hi
        self.lo, self.hi = np.minimum(self.lo, lo), np.maximum(self.hi, hi)
        e = _exponents(np.maximum(np.abs(self.lo), np.abs(self.hi)))
        if (e != self.e).any():  # a larger running max: re-express what was seen in the new units
            self.mean, self.m2 = np.ldexp(self.mean, self.e - e), np.ldexp(self.m2, 2 * (self.e - e))
            self.e = e
        B = np.ldexp(A, -e) if e.any() else A
        mean_b = B.mean(axis=0)
        m2_b = ((B - mean_b) ** 2).sum(axis=0)
        n = self.n + m
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (m / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * m / n)
        self.n = n
        return self

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Column mean and std (ddof=0), float64 (d,), both finite.

        A constant column gets its value as the mean (exactly) and std 1, so it standardises to 0;
        so does a column whose std is round-off (≤ 1e-12 of its max |x|: the mean of n copies of
        0.1 is not exactly 0.1) — relative to the column's own size, so that a column of
        numbers around 1e-20 is standardised like any other.
        """
        mean = np.ldexp(self.mean, self.e)
        std = np.ldexp(np.sqrt(self.m2 / max(self.n, 1)), self.e)
        constant = self.lo == self.hi
        mean[constant] = self.lo[constant]
        absmax = np.maximum(np.abs(self.lo), np.abs(self.hi))
        std[constant | (std <= 1e-12 * absmax)] = 1.0
        if self.n == 0:
            mean[:], std[:] = 0.0, 1.0
        return mean, std


def standardisation(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std (ddof=0) of ``A`` (n, d) finite numbers: two finite float64 (d,).

    For any finite float64 input (no overflow: see :class:`Moments`, whose rule for constant
    columns — std 1 — applies). Equal to ``A.mean(0)``, ``A.std(0)`` wherever those are finite.
    """
    A = np.asarray(A, dtype=np.float64)
    return Moments(A.shape[1]).add(A).mean_std()


def standardise(A: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """``(A − mean) / std`` column-wise in float64 (``A`` as float64 when ``mean``/``std`` is None).

    Equal to the plain formula wherever that does not overflow; where it would (|x| and |mean|
    near 1e308 with opposite signs), each column is computed in units of a power of two 2^e
    (exact scaling), so a result is inf only if the true value is beyond float64.
    """
    A = np.asarray(A, dtype=np.float64)
    if mean is None or std is None:
        return A
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        Z = (A - mean) / std
    if np.isfinite(Z).all():
        return Z
    e = np.frexp(np.maximum(np.abs(mean), std))[1]
    with np.errstate(over="ignore", invalid="ignore"):
        return (np.ldexp(A, -e) - np.ldexp(mean, -e)) / np.ldexp(std, -e)


def network_inputs(
    A: np.ndarray, info: DataInfo, dtype: torch.dtype, rows: np.ndarray | None = None
) -> torch.Tensor:
    """Feature rows ``A`` (n, info.n_features) (already expanded, e.g. Playground's x1², raw
    units) → the CPU tensor (n, n_features) of ``dtype`` the net sees: standardised in float64
    with ``info``'s statistics (:func:`standardise`; as is when ``info`` has none), then cast.
    ``info``: a :class:`~lecturenn.data.DataInfo` or :class:`~lecturenn.data.DataTransform` (its
    ``x_mean``, ``x_std`` and ``feature_names``).

    ``DataError`` (one line naming the column, a value and its row — ``rows``: the rows' numbers,
    default 0..n-1) where ``dtype`` cannot hold the result; see
    :func:`~lecturenn.data.checks.to_dtype`.
    """
    from .checks import to_dtype

    A = np.asarray(A, dtype=np.float64)
    scaled = info.x_mean is not None and info.x_std is not None
    Z = standardise(A, info.x_mean, info.x_std)
    return to_dtype(Z, dtype, info.feature_names, "feature", A, rows, scaled)


def fits(dtype: torch.dtype, absmax: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> bool:
    """Whether ``(x − mean) / std`` computed in ``dtype`` itself (statistics rounded to it) is
    as good as :func:`standardise` then a cast, for rows whose columns' |x| are at most ``absmax``.

    True when every raw value, mean and intermediate stays well inside ``dtype``'s range and each
    std is far from its subnormals; otherwise standardise in float64 and cast the result.
    """
    info = torch.finfo(dtype)
    absmax = np.asarray(absmax, dtype=np.float64)
    room = info.max / 4
    if not (absmax <= room).all():
        return False
    if mean is None or std is None:
        return True
    mean, std = np.abs(np.asarray(mean, dtype=np.float64)), np.asarray(std, dtype=np.float64)
    floor = info.tiny * 2.0 ** (info.bits)  # std well above the subnormals: full precision
    return bool((mean <= room).all() and (std >= floor).all() and ((absmax + mean) / std <= room).all())
