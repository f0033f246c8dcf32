"""The seeded train/val/test split (and, re-exported from :mod:`~lecturenn.data.scaling`, the
train-only standardisation statistics)."""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.model_selection import train_test_split

from .errors import DataError
from .scaling import standardisation

#: why a regression's val and test splits need 2 rows
R2_ROWS = "a regression's R² needs at least 2 rows in val and in test"

__all__ = [
    "R2_ROWS",
    "check_fractions",
    "min_rows",
    "rows_digest",
    "split_indices",
    "split_sizes",
    "standardisation",
]


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """``ValueError`` naming the argument unless 0 < val, 0 < test and val + test < 1."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            "val_fraction must be in (0, 1) (Lightning checkpoints on a validation metric); "
            f"got {val_fraction}"
        )
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            "val_fraction + test_fraction must be < 1 to leave training rows; "
            f"got {val_fraction} + {test_fraction}"
        )


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Rows ``(train, val, test)`` of a split of n rows: ``max(1, round(fraction * n))`` for val and
    test, the rest for train."""
    n_test, n_val = max(1, round(test_fraction * n)), max(1, round(val_fraction * n))
    return n - n_val - n_test, n_val, n_test


def min_rows(val_fraction: float, test_fraction: float, eval_rows: int = 1, train_rows: int = 1) -> int:
    """The fewest rows whose split (:func:`split_sizes`) has at least ``eval_rows`` rows in each of
    val and test and ``train_rows`` in train."""
    # round(f * n) >= k > 1 needs f * n >= k - 1/2: start just below the larger of the two bounds
    n = 3 if eval_rows <= 1 else max(3, int((eval_rows - 0.5) / min(val_fraction, test_fraction)) - 2)
    while True:
        train, val, test = split_sizes(n, val_fraction, test_fraction)
        if min(val, test) >= eval_rows and train >= train_rows:
            return n
        n += 1


def split_indices(
    n: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    labels: np.ndarray | None = None,
    classes: list[str] | None = None,
    eval_rows: int = 1,
    why: str = "",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, val, test)`` (int64, each sorted) of a seeded three-way split.

    Sizes are :func:`split_sizes`. ``labels`` (n,) class ids → stratified (each split keeps the
    class proportions, so each holds at least one row of every class). ``eval_rows``: the rows
    val and test need at least (2 for a regression's R²; ``why`` says so in the message).
    Raises ``DataError`` when there are too few rows (or too few of some class) for the split,
    naming the fewest rows that would do.
    """
    fractions = f"val_fraction={val_fraction}, test_fraction={test_fraction}"
    if n < 3:
        m = min_rows(val_fraction, test_fraction, eval_rows)
        raise DataError(
            f"need at least {m} rows for a train/val/test split; got {n}" + (f" ({why})" if why else "")
        )
    n_train, n_val, n_test = split_sizes(n, val_fraction, test_fraction)
    kind, need, need_train = "", eval_rows, 1
    if labels is not None:
        ids, counts = np.unique(labels, return_counts=True)
        worst = int(np.argmin(counts))
        if counts[worst] < 3:
            name = classes[int(ids[worst])] if classes is not None else str(ids[worst])
            raise DataError(
                f"class {name!r} has only {counts[worst]} row(s); a stratified train/val/test split "
                "needs at least 3 rows of every class"
            )
        kind, need, need_train = "stratified ", max(need, len(ids)), len(ids)
        why = f"a stratified split needs at least {len(ids)} rows (one per class) in each part"
    if min(n_val, n_test) < need or n_train < need_train:
        m = min_rows(val_fraction, test_fraction, need, need_train)
        why = why or "each part needs at least one row"
        raise DataError(
            f"cannot make a {kind}split of {n} rows into train/val/test = {n_train}/{n_val}/{n_test} "
            f"({fractions}): {why}; use at least {m} rows, or change val_fraction/test_fraction"
        )
    rows = np.arange(n)
    try:
        rest, test = train_test_split(
            rows, test_size=n_test, random_state=seed, stratify=labels, shuffle=True
        )
        train, val = train_test_split(
            rest,
            test_size=n_val,
            random_state=seed,
            stratify=None if labels is None else labels[rest],
            shuffle=True,
        )
    except ValueError as e:  # sklearn's own message is precise; make it one line and say what to change
        msg = " ".join(str(e).split())
        raise DataError(
            f"cannot make a {kind}split of {n} rows into train/val/test = {n_train}/{n_val}/{n_test}: "
            f"{msg} (add rows or change val_fraction/test_fraction)"
        ) from None
    return np.sort(train), np.sort(val), np.sort(test)


def rows_digest(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 (hex) of rows X (n, d) and targets y, as float64 / their own dtype, C order: the
    identity of a training split, so that a resume can tell that its rows changed."""
    digest = hashlib.sha256()
    for A in (np.asarray(X, dtype=np.float64), np.asarray(y)):
        A = np.ascontiguousarray(A)
        digest.update(f"{A.dtype.str}{A.shape}".encode())
        digest.update(A.data if A.dtype != object else repr(A.tolist()).encode())
    return digest.hexdigest()
