"""Row chunks of a file larger than RAM: the readers, and what one streaming pass folds them into.

Readers — a source knows its shape and column names from the file header / metadata alone and
reads contiguous row ranges on demand, so a pass holds one range at a time:

* :class:`NpySource` — a features ``.npy`` (n, d) and a targets ``.npy`` (n,) or (n, k). The
  header is parsed with ``numpy.lib.format``; rows are read with ``readinto`` at their byte
  offset. No memory map: every touched page of a map counts in the process's resident memory.
* :class:`ParquetSource` — a Parquet table. Its *units* are the row groups, each decoded whole
  (and cached while consecutive ranges fall into it), so the row-group size bounds the memory.

Both yield ``(X, Y)``: X (m, d) numbers (the file's dtype for .npy, float64 for Parquet; not yet
checked for NaN) and Y (m, k) as stored (numbers, bools or strings).

Accumulators — :class:`~lecturenn.data.scaling.Moments` (column mean/std, merged chunk by chunk)
and :class:`~lecturenn.data.tasks.TargetScan` (task, classes and target checks), both re-exported
here, and :class:`Extremes` (column min/max and their rows), used by
:class:`~lecturenn.data.stream.StreamDataModule`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import UNIQUE, check_roles, check_unique, existing_file, missing_column, one_line
from .scaling import Moments
from .tasks import MAX_LABELS, TargetScan

__all__ = [
    "MAX_LABELS",
    "Extremes",
    "Moments",
    "NpySource",
    "ParquetSource",
    "Rows",
    "TargetScan",
    "check_finite",
    "grid",
]

Rows = tuple[np.ndarray, np.ndarray]  # X (m, d) numbers, Y (m, k)


def grid(n: int, step: int) -> np.ndarray:
    """Rows ``[0, n)`` cut into ranges of ``step`` rows (the last may be shorter): int64 (U, 2)."""
    starts = np.arange(0, n, step, dtype=np.int64)
    return np.stack([starts, np.minimum(starts + step, n)], axis=1)


# ---- .npy ------------------------------------------------------------------------------------------
class _NpyArray:
    """The header of one ``.npy`` file: ``shape``, ``dtype`` and where row 0 starts (``offset``)."""

    def __init__(self, path: str | Path, what: str, ndims: tuple[int, ...]) -> None:
        self.path = existing_file(path, what)
        name = self.path.name
        try:
            with self.path.open("rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise DataError(f"{name}: .npy format version {version} is not supported (1.0, 2.0 are)")
                self.offset = f.tell()
        except (ValueError, OSError, EOFError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"cannot read {name} as .npy: {one_line(e)}") from None
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        if len(self.shape) not in ndims:
            want = " or ".join(("(n,)", "(n, d)")[k - 1] for k in ndims)
            raise DataError(f"{name}: {what} must have shape {want}; got {self.shape}")
        if self.dtype.kind not in "biuf" + ("U" if what == "targets" else ""):
            raise DataError(f"{name}: {what} must be numeric; got dtype {self.dtype}")
        if fortran and len(self.shape) == 2 and self.shape[1] > 1:
            raise DataError(
                f"{name} is stored in Fortran (column) order, so its rows are not contiguous; "
                "save it in C order (np.save(path, np.ascontiguousarray(a)))"
            )
        self.row_bytes = self.dtype.itemsize * math.prod(self.shape[1:])
        need = self.offset + self.shape[0] * self.row_bytes
        if self.path.stat().st_size < need:
            raise DataError(f"{name} is truncated: {self.path.stat().st_size} bytes, its header needs {need}")

    def rows(self, f, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` read from the open file ``f`` into a fresh array (m, *shape[1:])."""
        out = np.empty((stop - start, *self.shape[1:]), dtype=self.dtype)
        f.seek(self.offset + start * self.row_bytes)
        if f.readinto(out.reshape(-1).view(np.uint8)) != out.nbytes:
            raise DataError(f"{self.path.name}: could not read rows {start}..{stop - 1} (file truncated?)")
        return out


class NpySource:
    """Features ``(n, d)`` and targets ``(n,)``/``(n, k)`` in two ``.npy`` files with the same n.

    Features are named ``x0 .. x{d-1}``; targets ``y`` (1-D) or ``y[0] .. y[k-1]`` (2-D), as in
    an ``.npz`` table.
    """

    def __init__(self, features: str | Path, targets: str | Path) -> None:
        self.x = _NpyArray(features, "features", (2,))
        self.y = _NpyArray(targets, "targets", (1, 2))
        self.name, self.target_file = self.x.path.name, self.y.path.name
        self.n_rows, d = self.x.shape
        if self.y.shape[0] != self.n_rows:
            raise DataError(
                f"{self.x.path.name} has {self.n_rows} rows but {self.y.path.name} has {self.y.shape[0]}"
            )
        if d == 0:
            raise DataError(f"{self.name} has no feature columns (shape {self.x.shape})")
        self.feature_names = [f"x{j}" for j in range(d)]
        k = self.y.shape[1] if len(self.y.shape) == 2 else 0
        self.target_names = [f"y[{j}]" for j in range(k)] if k else ["y"]

    def units(self, block_rows: int) -> np.ndarray:
        """Ranges of ``block_rows`` rows, int64 (U, 2): a .npy reads any range, so units = blocks."""
        return grid(self.n_rows, block_rows)

    def read(self, ranges: Iterable[tuple[int, int]]) -> Iterator[Rows]:
        """``(X, Y)`` for each row range, in the order given; both files stay open for the pass."""
        with self.x.path.open("rb") as fx, self.y.path.open("rb") as fy:
            for start, stop in ranges:
                Y = self.y.rows(fy, start, stop)
                yield self.x.rows(fx, start, stop), Y.reshape(len(Y), -1)


# ---- Parquet ---------------------------------------------------------------------------------------
def _arrow():
    """The ``pyarrow`` module (an optional dependency), or a DataError saying how to install it."""
    try:
        import pyarrow as pa
        import pyarrow.compute  # noqa: F401 (pa.compute)
        import pyarrow.parquet  # noqa: F401 (pa.parquet)
    except ImportError as e:
        raise DataError(f"reading Parquet needs an optional package: {e} (pip install pyarrow)") from None
    return pa


def _numeric(t) -> bool:
    types = _arrow().types
    return types.is_integer(t) or types.is_floating(t) or types.is_boolean(t)


def _label(t) -> bool:
    """Types a classification target may have besides numbers: strings, dictionary-encoded strings."""
    pa = _arrow()
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


class ParquetSource:
    """A Parquet table: target column(s) and numeric feature columns, read one row group at a time.

    Args:
        path: ``.parquet`` / ``.pq`` file.
        target: target column name, or several (multilabel / multi-output regression).
        features: feature columns in order (default: every other numeric column; a pandas
            index column is left out).
    """

    def __init__(self, path: str | Path, target: str | Sequence[str], features: Sequence[str] | None) -> None:
        self.path = existing_file(path, "data")
        self.name = self.target_file = self.path.name
        pa = _arrow()
        try:
            with pa.parquet.ParquetFile(self.path) as pf:
                schema, meta = pf.schema_arrow, pf.metadata
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"cannot read {self.name} as Parquet: {one_line(e)}") from None
        columns, types = list(schema.names), dict(zip(schema.names, schema.types))
        check_unique(columns, f"{self.name}: column name {{name}} occurs {{count}} times; {UNIQUE}")
        targets = [target] if isinstance(target, str) else list(target)
        check_roles(targets, None if features is None else list(features), self.name)
        for t in targets:
            if t not in types:
                raise missing_column("target", t, columns, self.name)
            if not (_numeric(types[t]) or (_label(types[t]) and len(targets) == 1)):
                raise DataError(
                    f"target column {t!r} of {self.name} has type {types[t]}; need numbers or labels"
                )
        if features is None:
            index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
            features = [c for c in columns if c not in targets and c not in index and _numeric(types[c])]
        for f in features:
            if f not in types:
                raise missing_column("feature", f, columns, self.name)
            if not _numeric(types[f]):
                raise DataError(
                    f"feature column {f!r} of {self.name} is not numeric (type {types[f]}); "
                    "encode it as numbers or leave it out with features=[...]"
                )
        if not features:
            raise DataError(f"{self.name} has no numeric feature columns besides the target(s) {targets}")
        self.feature_names, self.target_names = [str(f) for f in features], [str(t) for t in targets]
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self.starts = np.cumsum([0, *sizes])  # row group g holds rows [starts[g], starts[g+1])
        self.n_rows = int(self.starts[-1])

    def units(self, block_rows: int) -> np.ndarray:
        """The non-empty row groups as ``[start, stop)`` rows, int64 (U, 2), whatever ``block_rows``."""
        units = np.stack([self.starts[:-1], self.starts[1:]], axis=1).astype(np.int64)
        return units[units[:, 1] > units[:, 0]]

    def _group(self, pf, g: int) -> Rows:
        table = pf.read_row_group(g, columns=self.feature_names + self.target_names)
        X = np.empty((table.num_rows, len(self.feature_names)))
        for j, name in enumerate(self.feature_names):  # nulls become NaN (reported by the caller)
            X[:, j] = table.column(name).to_numpy(zero_copy_only=False)
        for name in self.target_names:
            col = table.column(name)
            if col.null_count:
                row = int(self.starts[g]) + int(
                    np.flatnonzero(_arrow().compute.is_null(col).to_numpy(zero_copy_only=False))[0]
                )
                raise DataError(f"{self.name}: target column {name!r} has a missing value in row {row}")
        cols = [table.column(t).to_numpy(zero_copy_only=False) for t in self.target_names]
        Y = np.stack(cols, axis=1)
        return X, (Y.astype(str) if Y.dtype == object else Y)

    def read(self, ranges: Iterable[tuple[int, int]]) -> Iterator[Rows]:
        """``(X, Y)`` for each row range (each inside one row group); a row group is decoded once
        for consecutive ranges inside it."""
        with _arrow().parquet.ParquetFile(self.path) as pf:
            cached, rows = -1, None
            for start, stop in ranges:
                g = int(np.searchsorted(self.starts, start, side="right")) - 1
                if g != cached:
                    cached, rows = g, None  # drop the previous group before decoding the next
                    rows = self._group(pf, g)
                base = int(self.starts[g])
                yield rows[0][start - base : stop - base], rows[1][start - base : stop - base]


# ---- what a pass learns -----------------------------------------------------------------------------
def check_finite(A: np.ndarray, names: list[str], what: str, file: str, first_row: int) -> None:
    """``DataError`` naming ``file``, the column and the first row of ``A`` (m, d) with NaN/inf.

    ``first_row`` is the file row of ``A[0]``.
    """
    bad = ~np.isfinite(A)
    if bad.any():
        row = int(bad.any(axis=1).argmax())
        col = int(bad[row].argmax())
        raise DataError(
            f"{file}: {what} column {names[col]!r} has NaN/inf in row {first_row + row} "
            "(0-based; the first bad row)"
        )


class Extremes:
    """Per-column min and max of a stream of chunks (m, d), and the rows where they first occur.

    Standardisation is monotone in x, so these two rows per column are where the standardised
    values are extreme: enough to check at load that every row fits the training dtype.
    """

    def __init__(self, d: int) -> None:
        self.lo, self.hi = np.full(d, np.inf), np.full(d, -np.inf)
        self.lo_row, self.hi_row = np.zeros(d, dtype=np.int64), np.zeros(d, dtype=np.int64)

    def add(self, A: np.ndarray, first_row: int) -> tuple[np.ndarray, np.ndarray]:
        """Fold in ``A`` (m, d) numbers whose row 0 is file row ``first_row``; returns A's own
        column min and max, float64 (d,) (for :meth:`~lecturenn.data.scaling.Moments.add`; NaN
        or inf in a column shows in them — such a chunk is not folded in)."""
        if len(A) == 0:
            return np.full_like(self.lo, np.inf), np.full_like(self.hi, -np.inf)
        lo, hi = A.min(axis=0).astype(np.float64), A.max(axis=0).astype(np.float64)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            return lo, hi
        for ext, rows, value, new in (
            (self.lo, self.lo_row, lo, lo < self.lo),
            (self.hi, self.hi_row, hi, hi > self.hi),
        ):
            if new.any():  # rare after the first chunks: locate the new extremes' rows
                cols = np.flatnonzero(new)
                ext[cols], rows[cols] = value[cols], first_row + (A[:, cols] == value[cols]).argmax(axis=0)
        return lo, hi

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, rows)``: (2, d) float64 min and max per column, and their file rows (2, d)."""
        return np.stack([self.lo, self.hi]), np.stack([self.lo_row, self.hi_row])

    @property
    def absmax(self) -> np.ndarray:
        """Max |x| per column (d,) float64."""
        return np.maximum(np.abs(self.lo), np.abs(self.hi))
