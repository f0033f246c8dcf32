"""The seeded train/val/test split (and, re-exported from :mod:`~lecturenn.data.scaling`, the
train-only standardisation statistics)."""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.model_selection import train_test_split

from .errors import DataError
from .scaling import standardisation

__all__ = ["check_fractions", "rows_digest", "split_indices", "standardisation"]


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


def split_indices(
    n: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    labels: np.ndarray | None = None,
    classes: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, val, test)`` (int64, each sorted) of a seeded three-way split.

    Sizes are ``round(fraction * n)`` (at least 1) for val and test, the rest for train.
    ``labels`` (n,) class ids → stratified (each split keeps the class proportions).
    Raises ``DataError`` when there are too few rows (or too few of some class) for the split.
    """
    if n < 3:
        raise DataError(f"need at least 3 rows for a train/val/test split; got {n}")
    n_test = max(1, round(test_fraction * n))
    n_val = max(1, round(val_fraction * n))
    n_train = n - n_test - n_val
    if n_train < 1:
        raise DataError(
            f"{n} rows are too few for val_fraction={val_fraction}, test_fraction={test_fraction} "
            f"(val {n_val} + test {n_test} rows leave none for training)"
        )
    rows = np.arange(n)
    if labels is not None:
        ids, counts = np.unique(labels, return_counts=True)
        worst = int(np.argmin(counts))
        if counts[worst] < 3:
            name = classes[int(ids[worst])] if classes is not None else str(ids[worst])
            raise DataError(
                f"class {name!r} has only {counts[worst]} row(s); a stratified train/val/test split "
                "needs at least 3 rows of every class"
            )
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
        kind = "stratified " if labels is not None else ""
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
