"""Checking and label-encoding the arrays a DataModule's ``load_arrays`` returns."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..network import as_array
from .errors import DataError
from .tasks import check_classes, check_task

__all__ = ["check_arrays", "encode_labels", "nonfinite_report", "raw_rows", "to_dtype"]


def nonfinite_report(A: np.ndarray, names: list[str], what: str) -> None:
    """``DataError`` naming the first column of ``A`` (n, d) float with NaN/inf, its row count and rows."""
    bad = ~np.isfinite(A)
    if not bad.any():
        return
    col = int(bad.any(axis=0).argmax())
    rows = np.flatnonzero(bad[:, col])
    shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    raise DataError(
        f"{what} column {names[col]!r} has NaN/inf in {len(rows)} row(s) (0-based data rows {shown})"
    )


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def to_dtype(
    Z: np.ndarray,
    dtype: torch.dtype,
    names: list[str],
    what: str,
    raw: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    standardized: bool = True,
    file: str | None = None,
    can_drop: bool = True,
) -> Tensor:
    """``Z`` (m, d) float64 — the values the net will see — as a CPU tensor of ``dtype``, or a
    ``DataError`` naming the first column that ``dtype`` cannot hold.

    Refused: a value that becomes inf in ``dtype`` (e.g. 3e39 in float32), and — unless
    ``standardized`` (a standardised column is O(1), or ~0 on purpose when constant) — a column
    of non-zero values that all become 0 (e.g. 1e-50 in float32): either would silently change
    what the net learns from. Regression targets are checked raw too (``standardized=False``):
    the model reports its predictions and metrics in their units, in ``dtype``.

    ``raw`` (m, d): the values to quote (default ``Z``); ``rows`` (m,) or (m, d): their data-row
    numbers (default 0..m-1); ``file``: a name to start the message with; ``can_drop``: whether
    to suggest leaving a feature out with ``features=[...]``. Checked on each column's min and max
    (the cast is monotone), then cast.
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    ends = np.stack([Z.min(axis=0), Z.max(axis=0)]) if len(Z) else np.zeros((2, Z.shape[1]))
    cast = torch.from_numpy(ends).to(dtype).double().numpy()
    over = ~np.isfinite(cast).all(axis=0)
    lost = (cast == 0).all(axis=0) & (ends != 0).any(axis=0) & (not standardized)
    if not (over.any() or lost.any()):
        return torch.from_numpy(Z).to(dtype)
    col = int((over | lost).argmax())
    if over[col]:  # the first row that does not fit
        fit = torch.from_numpy(Z[:, col]).to(dtype).double().numpy()
        r = int((~np.isfinite(fit)).argmax())
    else:
        r = int((Z[:, col] != 0).argmax())
    value = (Z if raw is None else raw)[r, col]
    row = r if rows is None else int(rows[r] if np.ndim(rows) == 1 else rows[r, col])
    kind, info = _dtype_name(dtype), torch.finfo(dtype)
    head = f"{file}: " if file else ""
    quote = f"{what} column {names[col]!r} has values (e.g. {value:.6g} in row {row}, 0-based)"
    feature, drop = what == "feature", "leave it out with features=[...]"
    units = "" if feature else ", the dtype of the predictions in its units"
    if over[col] and standardized:
        msg = (
            f"that overflow {kind} after standardisation (|z| > {info.max:.3g}: a row far outside the "
            "training rows' range, or a column constant up to round-off); fix or rescale it"
            + (f", or {drop}" if feature and can_drop else "")
        )
    elif over[col] and feature:
        fix = (
            f"rescale it, set standardize=true or {drop}"
            if can_drop
            else "rescale it or set standardize=true"
        )
        msg = f"outside the {kind} range (|x| <= {info.max:.3g}); {fix}"
    elif over[col]:
        msg = f"outside the {kind} range (|x| <= {info.max:.3g}){units}; rescale it"
    else:
        fix = "rescale it or set standardize=true" if feature else "rescale it"
        msg = f"that all round to 0 in {kind}{units}; {fix}"
    raise DataError(f"{head}{quote} {msg}")


def encode_labels(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Any labels (n,) → class ids int64 (n,) in sorted label order, and the class names as strings."""
    values, ids = np.unique(labels, return_inverse=True)
    return ids.astype(np.int64).reshape(-1), [str(v) for v in values]


def _array(A, what: str) -> np.ndarray:
    """:func:`~lecturenn.network.as_array`, or a ``DataError`` for what is no array of numbers."""
    A = as_array(A)
    if not isinstance(A, np.ndarray):
        raise DataError(f"{what} expects an array of numbers; got {type(A).__name__}")
    return A


def raw_rows(X_raw: np.ndarray | torch.Tensor, raw_features: int) -> np.ndarray:
    """Rows (n, raw_features) or one row (raw_features,) → float64 (n, raw_features): a tensor, or
    anything :func:`~lecturenn.network.as_array` takes (numpy in any order, lists, pandas by position).

    ``DataError`` for a wrong number of columns, non-numeric values, or rows with NaN/inf.
    """
    A = (
        X_raw.detach().cpu().double().numpy()
        if isinstance(X_raw, torch.Tensor)
        else _array(X_raw, "transform")
    )
    if A.ndim == 1:
        A = A[None, :]
    if A.ndim != 2 or A.shape[1] != raw_features:
        raise DataError(f"transform expects rows of {raw_features} raw features; got shape {A.shape}")
    try:
        A = A.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"transform expects numeric rows; got dtype {A.dtype}") from None
    bad = ~np.isfinite(A).all(axis=1)
    if bad.any():
        raise DataError(
            f"transform: {int(bad.sum())} row(s) contain NaN/inf (first: row {int(bad.argmax())})"
        )
    return A


def check_arrays(
    X: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    target_names: list[str],
    task: str,
    classes: list[str] | None,
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Validate ``load_arrays`` output; return X float64 (n, d), y and the class names.

    y comes back as class ids int64 (n,) for binary/multiclass (encoded here when ``classes`` is
    None), float64 (n, K) for multilabel (0/1) and regression.
    """
    check_task(task, auto=False)
    X = _array(X, "features")
    if X.ndim != 2:
        raise DataError(f"features must be a 2-D array (rows, columns); got shape {X.shape}")
    try:
        X = X.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"features must be numeric; got dtype {X.dtype}") from None
    if X.shape[1] != len(feature_names):
        raise DataError(f"{X.shape[1]} feature columns but {len(feature_names)} feature names")
    if X.shape[1] == 0:
        raise DataError("no feature columns")
    y = _array(y, "targets")
    if y.shape[0] != X.shape[0]:
        raise DataError(f"{X.shape[0]} feature rows but {y.shape[0]} target rows")
    nonfinite_report(X, feature_names, "feature")
    if task in ("binary", "multiclass"):
        if y.ndim != 1 and not (y.ndim == 2 and y.shape[1] == 1):
            raise DataError(f"a {task} target must be one column; got shape {y.shape}")
        y = y.reshape(-1)
        if classes is None:
            y, classes = encode_labels(y)
        else:
            classes = [str(c) for c in classes]
            if not np.issubdtype(y.dtype, np.integer) or (
                len(y) and (y.min() < 0 or y.max() >= len(classes))
            ):
                raise DataError(f"class ids must be integers in [0, {len(classes)}); got {y[:5]} ...")
            y = y.astype(np.int64)
        check_classes(task, target_names[:1], classes)
        return X, y, classes
    try:
        Y = y.reshape(len(y), -1).astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"a {task} target must be numeric; got dtype {y.dtype}") from None
    if Y.shape[1] != len(target_names):
        raise DataError(f"{Y.shape[1]} target columns but {len(target_names)} target names")
    nonfinite_report(Y, target_names, "target")
    if task == "multilabel" and not np.isin(Y, (0.0, 1.0)).all():
        raise DataError("multilabel targets must be 0/1 in every column")
    return X, Y, None
