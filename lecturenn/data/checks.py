"""Checking and label-encoding the arrays a DataModule's ``load_arrays`` returns."""

from __future__ import annotations

import numpy as np
import torch

from .errors import DataError
from .info import TASKS

__all__ = ["check_arrays", "encode_labels", "nonfinite_report", "raw_rows"]


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


def encode_labels(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Any labels (n,) → class ids int64 (n,) in sorted label order, and the class names as strings."""
    values, ids = np.unique(labels, return_inverse=True)
    return ids.astype(np.int64).reshape(-1), [str(v) for v in values]


def raw_rows(X_raw: np.ndarray | torch.Tensor, raw_features: int) -> np.ndarray:
    """Rows (n, raw_features) or one row (raw_features,), numpy or tensor → float64 (n, raw_features).

    ``DataError`` for a wrong number of columns, non-numeric values, or rows with NaN/inf.
    """
    A = X_raw.detach().cpu().double().numpy() if isinstance(X_raw, torch.Tensor) else np.asarray(X_raw)
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
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    X = np.asarray(X)
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
    y = np.asarray(y)
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
        if len(classes) < 2:
            raise DataError(f"target {target_names[0]!r} has only one class ({classes}); nothing to classify")
        if task == "binary" and len(classes) != 2:
            raise DataError(
                f"task 'binary' needs exactly 2 classes; target {target_names[0]!r} has {len(classes)}"
            )
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
