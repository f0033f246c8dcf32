"""``DataTransform``: raw rows → the network's inputs, and regression outputs → the targets' units.

The one place that turns what a user has (raw feature rows, e.g. the Playground's x1, x2) into
what Θ^(1) multiplies. The data modules serve their batches through it, the LightningModule
standardises and un-standardises through it, and ``scripts/predict.py`` feeds a checkpoint's
network through it — so one raw row becomes bitwise the same network input everywhere::

    A (n, r) raw ──expand──▶ E (n, d) ──(E − x_mean) / x_std──▶ X (n, d) in the network's dtype
    network output ŷ (n, K) ──ŷ · y_std + y_mean──▶ the targets' units (regression)

* **expand**: each of the ``d`` features is a raw column (by name) or a derived one computed from
  the raw ``x1``, ``x2`` (:data:`~lecturenn.data.features.FEATURES`); nothing is copied when the
  network sees the raw columns themselves.
* **standardise**: in float64 (:func:`~lecturenn.data.scaling.standardise`: no overflow for any
  finite numbers), then cast — a column the dtype cannot hold is a ``DataError`` naming it
  (:func:`~lecturenn.data.checks.to_dtype`). Where ``arithmetic`` names the dtype (a streamed file
  whose every value is well inside it, :func:`~lecturenn.data.scaling.fits`), the rows are
  standardised in that dtype itself, in place — the streaming module's fast path, recorded here so
  that every caller computes the same numbers.

Plain data: :meth:`DataTransform.to_dict` gives strings, floats and lists (loads with
``torch.load(weights_only=True)``). A checkpoint stores it once, as the matching fields of the
model's :class:`~lecturenn.data.DataInfo` (``info.transform`` rebuilds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checks import raw_rows, to_dtype
from .errors import DataError, shown_names
from .features import FEATURES, RAW
from .scaling import fits, network_inputs, standardise

__all__ = ["DataTransform", "dtype_name", "floats"]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` → ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def floats(values: Any) -> list[float] | None:
    """Plain Python floats (numpy scalars do not belong in a checkpoint), or None."""
    return None if values is None else [float(v) for v in values]


@dataclass
class DataTransform:
    """Raw feature rows → network inputs; network outputs → target units (see the module docstring).

    Attributes:
        raw_names: the r raw input columns, in the order raw rows hold them.
        feature_names: the d columns the network sees (default: the raw ones), each a raw column
            or a :data:`~lecturenn.data.features.FEATURES` entry computed from raw ``x1``, ``x2``.
        x_mean, x_std: d floats (the training split's statistics), or None: not standardised.
        y_mean, y_std: K floats for regression targets, or None.
        arithmetic: the dtype name in which ``(x − mean) / std`` is computed: ``"float64"`` (then
            cast) or the network's dtype (see the module docstring).

    Raises ``ValueError`` for statistics of the wrong length and for a feature it cannot compute.
    """

    raw_names: list[str]
    feature_names: list[str] | None = None
    x_mean: list[float] | None = None
    x_std: list[float] | None = None
    y_mean: list[float] | None = None
    y_std: list[float] | None = None
    arithmetic: str = "float64"
    _tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.raw_names = [str(n) for n in self.raw_names]
        names = self.raw_names if self.feature_names is None else self.feature_names
        self.feature_names = [str(n) for n in names]
        self.x_mean, self.x_std = floats(self.x_mean), floats(self.x_std)
        self.y_mean, self.y_std = floats(self.y_mean), floats(self.y_std)
        self.arithmetic = str(self.arithmetic)
        kind = getattr(torch, self.arithmetic, None)
        if not isinstance(kind, torch.dtype) or not kind.is_floating_point:
            raise ValueError(f"arithmetic must name a torch floating dtype; got {self.arithmetic!r}")
        d = len(self.feature_names)
        for a, b, size in (("x_mean", "x_std", d), ("y_mean", "y_std", None)):
            mean, std = getattr(self, a), getattr(self, b)
            if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
                raise ValueError(f"{a} and {b} must both be given, with the same length, or both be None")
            if mean is not None and size is not None and len(mean) != size:
                raise ValueError(f"{a} has {len(mean)} entries for {size} features")
        raw = set(self.raw_names)
        for name in self.feature_names:
            if name not in raw and not (name in FEATURES and raw >= set(RAW)):
                raise ValueError(
                    f"feature {name!r} is neither a raw column ({self.raw_names}) nor computable from "
                    f"them (derived features {list(FEATURES)} need raw columns {list(RAW)})"
                )

    # ---- plain data --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields as plain Python data (deep-copied lists)."""
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self) if f.init}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataTransform:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming unknown keys."""
        names = [f.name for f in fields(cls) if f.init]
        unknown = [k for k in d if k not in names]
        if unknown or "raw_names" not in d:
            raise ValueError(f"DataTransform.from_dict: unknown keys {unknown}, keys needed: raw_names")
        return cls(**{k: d[k] for k in names if k in d})

    @property
    def raw_features(self) -> int:
        return len(self.raw_names)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    # ---- raw rows → network inputs -----------------------------------------------------------
    def expand(self, A: np.ndarray) -> np.ndarray:
        """Raw rows (n, r) → the features (n, d); ``A`` itself when the network sees the raw columns."""
        if self.feature_names == self.raw_names:
            return A
        A = np.asarray(A, dtype=np.float64)
        col = {name: A[:, j] for j, name in enumerate(self.raw_names)}
        x1, x2 = (col.get(name) for name in RAW)
        out = [col[n] if n in col else FEATURES[n](x1, x2) for n in self.feature_names]
        return np.stack(out, axis=1) if len(A) else np.zeros((0, self.n_features))

    def features(
        self,
        A: np.ndarray,
        dtype: torch.dtype,
        rows: np.ndarray | None = None,
        fast: bool | None = None,
        inplace: bool = False,
    ) -> Tensor:
        """Raw rows ``A`` (n, r) of finite numbers → the CPU tensor (n, d) of ``dtype`` the net sees.

        ``fast``: standardise in ``dtype`` itself (True; the caller knows the rows fit, see
        :func:`~lecturenn.data.scaling.fits`), in float64 then cast with the range check (False), or
        decide (None: in ``dtype`` when ``arithmetic`` names it and these rows fit). ``inplace``: ``A``
        may be overwritten on the fast path. ``rows``: the rows' numbers for error messages.
        """
        E = self.expand(A)
        if fast is None:
            fast = self.arithmetic == dtype_name(dtype) and self._fits(E, dtype)
        if not fast:
            return network_inputs(E, self, dtype, rows)
        X = torch.from_numpy(np.ascontiguousarray(E))
        X = X.to(dtype) if X.dtype != dtype else (X if inplace or E is not A else X.clone())
        stats = self.stats("x", dtype, X.device)
        return X if stats is None else X.sub_(stats[0]).div_(stats[1])

    def _fits(self, E: np.ndarray, dtype: torch.dtype) -> bool:
        if dtype == torch.float64:
            return False  # float64 arithmetic is the float64 route
        absmax = np.maximum(-E.min(axis=0), E.max(axis=0)) if len(E) else np.zeros(E.shape[1])
        return fits(dtype, absmax, self.x_mean, self.x_std)

    def __call__(self, X_raw, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
        """Raw rows (n, r) or one row (r,) — a tensor or anything :func:`~lecturenn.arrays.as_array`
        takes — → network inputs (n, d) of ``dtype`` on ``device`` (default: ``X_raw``'s device for a
        tensor, else the CPU). ``DataError`` for a wrong number of columns, non-numbers, NaN/inf,
        or a value ``dtype`` cannot hold."""
        if device is None:
            device = X_raw.device if isinstance(X_raw, Tensor) else torch.device("cpu")
        return self.features(raw_rows(X_raw, self.raw_features), dtype).to(device)

    def for_columns(self, columns: Sequence[str]) -> DataTransform:
        """The transform for a table with these ``columns``: this one when it has every raw column;
        else — a table that holds the network's features themselves (e.g. ``x1^2`` already
        computed) — one that reads those (same statistics). ``DataError`` naming what is missing."""
        have = {str(c) for c in columns}
        if have >= set(self.raw_names):
            return self
        if have >= set(self.feature_names):
            return replace(self, raw_names=self.feature_names)
        missing = [n for n in self.feature_names if n not in have]
        trained = self.feature_names

        def listed(names):  # as a Python list, shortened: a 784-pixel model's message stays readable
            return f"[{shown_names(map(repr, names), limit=10)}]"

        raw = f" (or the raw columns {listed(self.raw_names)})" if self.raw_names != trained else ""
        msg = f"input is missing feature column(s) {listed(missing)}; the model was trained on "
        msg += listed(trained)
        raise DataError(msg + raw)

    # ---- targets -----------------------------------------------------------------------------
    def targets(
        self, Y: np.ndarray, dtype: torch.dtype, names: list[str], rows: np.ndarray | None = None
    ) -> Tensor:
        """Float targets Y (n, K) (regression values, multilabel or binary 0/1) → the CPU tensor
        (n, K) of ``dtype`` the cost compares with: standardised with ``y_mean``/``y_std`` when set.
        ``DataError`` when ``dtype`` cannot hold a value — raw (the predictions are reported in
        these units) or standardised; ``names``: the target columns, for the message."""
        Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
        raw = to_dtype(Y, dtype, names, "target", Y, rows, False)
        if self.y_mean is None:
            return raw
        Z = standardise(Y, self.y_mean, self.y_std)
        return to_dtype(Z, dtype, names, "target", Y, rows, True)

    def inverse_y(self, Y: Tensor) -> Tensor:
        """Network outputs Y (n, K) in standardised units → the targets' units: Y·y_std + y_mean
        (Y itself when the targets were not standardised)."""
        stats = self.stats("y", Y.dtype, Y.device)
        return Y if stats is None else Y * stats[1] + stats[0]

    def stats(self, which: str, dtype: torch.dtype, device) -> tuple[Tensor, Tensor] | None:
        """``(mean, std)`` of ``which`` ("x" or "y") as tensors of ``dtype`` on ``device`` (built once
        per dtype and device), or None when not standardised."""
        mean, std = (self.x_mean, self.x_std) if which == "x" else (self.y_mean, self.y_std)
        if mean is None or std is None:
            return None
        key = (which, dtype, str(device))
        if key not in self._tensors:
            self._tensors[key] = tuple(torch.tensor(v, dtype=dtype, device=device) for v in (mean, std))
        return self._tensors[key]


def _copy(value):
    return list(value) if isinstance(value, list) else value
