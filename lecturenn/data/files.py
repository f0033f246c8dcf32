"""Reading a user's table file (CSV/TSV, Parquet, NPZ) into a pandas DataFrame, with one-line errors."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = ["TABLE_SUFFIXES", "missing_column", "read_table"]

TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq", ".npz")


def missing_column(kind: str, name: str, columns: list[str], where: str) -> DataError:
    """The error for a column that is not there, suggesting close names (difflib)."""
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(columns[:20]) + (f", ... ({len(columns)} in all)" if len(columns) > 20 else "")
    return DataError(f"{kind} column {name!r} not found in {where}{hint} columns: {shown}")


def _read_npz(path: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:  # object arrays need pickle, which is refused
        raise DataError(f"cannot read {path.name}: {' '.join(str(e).split())}") from None
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path.name} as .npz: {' '.join(str(e).split())}") from None
    if "X" not in arrays or "y" not in arrays:
        raise DataError(f"{path.name} must hold arrays 'X' (rows, features) and 'y'; it has {sorted(arrays)}")
    X, y = arrays["X"], arrays["y"]
    if X.ndim != 2 or y.ndim not in (1, 2) or len(y) != len(X):
        raise DataError(
            f"{path.name}: need X of shape (n, d) and y of shape (n,) or (n, k); got {X.shape}, {y.shape}"
        )
    names = [str(s) for s in arrays.get("feature_names", [f"x{j}" for j in range(X.shape[1])])]
    if len(names) != X.shape[1]:
        raise DataError(f"{path.name}: {len(names)} feature_names for {X.shape[1]} columns of X")
    Y = y.reshape(len(y), -1)
    if "target_names" in arrays:
        targets = [str(s) for s in arrays["target_names"]]
    else:
        targets = ["y"] if y.ndim == 1 else [f"y[{j}]" for j in range(Y.shape[1])]
    if len(targets) != Y.shape[1]:
        raise DataError(f"{path.name}: {len(targets)} target_names for {Y.shape[1]} columns of y")
    if len(set(names + targets)) != len(names) + len(targets):
        raise DataError(f"{path.name}: feature and target names must be distinct; got {names + targets}")
    frame = pd.concat(
        [pd.DataFrame(X, columns=names), pd.DataFrame({t: Y[:, j] for j, t in enumerate(targets)})], axis=1
    )
    return frame, {"y": targets}


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The table at ``path`` and its column groups (``{"y": [...]}`` for an .npz's target array).

    Raises ``DataError`` for a missing file, an unsupported extension, an unreadable or empty
    file, and a table without rows.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"data path is a directory, not a file: {path}")
    name = path.name.lower()
    suffix = next((s for s in TABLE_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise DataError(
            f"unsupported data file type {path.suffix or '(none)'!r} for {path.name}; "
            f"use one of {', '.join(TABLE_SUFFIXES)}"
        )
    groups: dict[str, list[str]] = {}
    try:
        if suffix == ".npz":
            frame, groups = _read_npz(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if suffix.startswith(".tsv") else ",")
    except pd.errors.EmptyDataError:
        raise DataError(f"data file is empty: {path}") from None
    except ImportError as e:
        raise DataError(f"reading {path.name} needs an optional package: {e} (pip install pyarrow)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"cannot read {path.name}: {' '.join(str(e).split())}") from None
    if len(frame) == 0:
        raise DataError(f"data file has no rows: {path} (columns: {', '.join(map(str, frame.columns))})")
    frame.columns = [str(c) for c in frame.columns]
    return frame, groups
