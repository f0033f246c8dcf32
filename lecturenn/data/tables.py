"""``TableDataModule``: a user's CSV/TSV, Parquet or NPZ table, with the task inferred or given."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .arrays import ArrayDataModule
from .checks import encode_labels
from .errors import DataError
from .files import check_roles, missing_column, read_table
from .tasks import MAX_CLASSES, auto_task, check_classes, check_task

__all__ = ["MAX_CLASSES", "TableDataModule", "infer_task"]


def _numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)


def _integral(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_integer_dtype(col):
        return True
    if pd.api.types.is_float_dtype(col):
        v = col.to_numpy(dtype=np.float64)
        return bool(np.isfinite(v).all() and (v == np.round(v)).all())
    return False


def _not_a_number(col: pd.Series) -> tuple[int, str] | None:
    """The first row of ``col`` whose value does not read as a number (``(row, "")``), else the first
    number stored as text (``(row, "a number stored as text")``), else ``None`` (not text: a dtype
    such as datetime64)."""
    values = col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype) else col
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return None
    parsed = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy() & values.notna().to_numpy())
    if len(bad):
        return int(bad[0]), ""
    text = np.flatnonzero([isinstance(v, str) for v in values.to_numpy()])  # only on the way to an error
    return (int(text[0]), "a number stored as text") if len(text) else None


def _non_numeric(frame: pd.DataFrame, columns: list[str]) -> tuple[str, str] | None:
    """``(column, "e.g. 'x' in row 3")`` for the first non-numeric column among ``columns``: the
    column whose first value that is not a number comes first (the row, then the column order);
    numbers stored as text or a non-numeric dtype (dates, categories) only when no column has such
    a value. ``None`` when every column is numeric."""
    found = []
    for c in columns:
        if _numeric(frame[c]):
            continue
        first = _not_a_number(frame[c])
        if first is None:  # a dtype such as datetime64: quote row 0 and the dtype
            first, rank = (0, f"dtype {frame[c].dtype}"), 2
        else:
            rank = 1 if first[1] else 0
        found.append((rank, first[0], c, first[1]))
    if not found:
        return None
    _, row, c, why = min(found, key=lambda f: (f[0], f[1]))
    value = frame[c].iloc[row]
    return c, f"e.g. {value!r} in row {row}" + (f", {why}" if why else "")


def infer_task(frame: pd.DataFrame, targets: list[str]) -> str:
    """The ``task="auto"`` rule (:func:`~lecturenn.data.tasks.auto_task`) applied to a table's
    target columns."""
    cols = [frame[t] for t in targets]
    numeric = all(_numeric(c) for c in cols)
    return auto_task(
        len(frame),
        len(targets),
        numeric,
        all(pd.api.types.is_bool_dtype(c) for c in cols),
        all(_integral(c) for c in cols),
        cols[0].nunique(),
        numeric and all(c.isin([0, 1]).all() for c in cols),
    )


class TableDataModule(ArrayDataModule):
    """A table file: ``.csv``/``.tsv`` (optionally ``.gz``), ``.parquet``/``.pq``, or ``.npz``.

    Args:
        path: the file. An ``.npz`` holds ``X`` (n, d), ``y`` (n,) or (n, k), optionally
            ``feature_names`` and ``target_names`` (string arrays; loaded with
            ``allow_pickle=False``). Its target columns are ``"y"`` (1-D y), ``"y[0]"``, ... (2-D),
            or the ``target_names``; ``target="y"`` always means all of y.
        target: target column name, or several (multilabel / multi-output regression).
        task: ``"auto"`` (see :func:`infer_task`) or one of ``binary | multiclass | multilabel |
            regression``.
        features: feature columns in order (default: every non-target column).
        **base_kwargs: :class:`ArrayDataModule` arguments.

    Class labels are label-encoded in sorted order and named by their string form (an integral
    float label 1.0 is named "1"). Bad data raises :class:`DataError` with a one-line message.
    """

    def __init__(
        self,
        path: str,
        target: str | Sequence[str],
        task: str = "auto",
        features: Sequence[str] | None = None,
        **base_kwargs,
    ) -> None:
        super().__init__(**base_kwargs)
        self.task = check_task(task)
        self.path = str(path)
        self.target = [str(target)] if isinstance(target, str) else [str(t) for t in target]
        if not self.target:
            raise ValueError("target must name at least one column")
        self.features = None if features is None else [str(f) for f in features]

    def _columns(self, frame: pd.DataFrame, groups: dict[str, list[str]]) -> tuple[list[str], list[str]]:
        where, columns = Path(self.path).name, list(frame.columns)
        targets: list[str] = []
        for t in self.target:
            if t in frame.columns:
                targets.append(t)
            elif t in groups:
                targets.extend(groups[t])
            else:
                raise missing_column("target", t, columns, where)
        if self.features is None:
            features = [c for c in columns if c not in targets]
        else:
            for f in self.features:
                if f not in frame.columns:
                    raise missing_column("feature", f, columns, where)
            features = list(self.features)
        check_roles(targets, features, where)
        if not features:
            raise DataError(f"{where} has no feature columns besides the target(s) {targets}")
        return features, targets

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str, list[str] | None]:
        frame, groups = read_table(self.path)
        features, targets = self._columns(frame, groups)
        where = Path(self.path).name
        bad = _non_numeric(frame, features)
        if bad is not None:
            raise DataError(
                f"{where}: feature column {bad[0]!r} is not numeric ({bad[1]}); "
                "encode it as numbers or leave it out with features=[...]"
            )
        for t in targets:
            missing = int(frame[t].isna().sum())
            if missing:
                first = int(np.flatnonzero(frame[t].isna().to_numpy())[0])
                raise DataError(
                    f"target column {t!r} has NaN/missing values in {missing} row(s) (first: row {first})"
                )
        X = frame[features].to_numpy(dtype=np.float64)
        task = infer_task(frame, targets) if self.task == "auto" else self.task
        if task in ("binary", "multiclass"):
            if len(targets) != 1:
                check_classes(task, targets, [])
            col = frame[targets[0]]
            if pd.api.types.is_bool_dtype(col):
                labels = col.to_numpy(dtype=bool)  # classes "False", "True"
            elif _integral(col) and _numeric(col):  # integers as given (uint64 >= 2**63 too: no wrap)
                labels = col.to_numpy()
                if labels.dtype.kind not in "iu":  # integral floats as ints, unless int64 cannot hold them
                    floats = labels.astype(np.float64)
                    labels = floats.astype(np.int64) if (np.abs(floats) < 2**63).all() else floats
            elif _numeric(col):
                labels = col.to_numpy(dtype=np.float64)
            else:
                labels = col.astype(str).to_numpy()
            y, classes = encode_labels(labels)
            return X, y, features, targets, task, classes
        bad = _non_numeric(frame, targets)
        if bad is not None:
            raise DataError(
                f"{where}: target column {bad[0]!r} is not numeric ({bad[1]}) but task is {task!r}; "
                "use task='multiclass' or 'binary' for class labels"
            )
        return X, frame[targets].to_numpy(dtype=np.float64), features, targets, task, None
