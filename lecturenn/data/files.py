"""Reading a user's table file (CSV/TSV, Parquet, NPZ) into a pandas DataFrame, with one-line errors."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pandas as pd

from ..validation import why_not_a_file
from .errors import DataError, shown_names

__all__ = [
    "TABLE_SUFFIXES",
    "check_roles",
    "check_unique",
    "existing_file",
    "missing_column",
    "one_line",
    "read_table",
]

UNIQUE = "rename or drop the copies so that every column has its own name"
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq", ".npz")


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split())


def existing_file(path: str | Path, what: str) -> Path:
    """``path`` (``~`` expanded) if it is a file, else ``DataError``: "<what> file not found: ..." or
    "<what> path is a directory, not a file: ..."."""
    path = Path(path).expanduser()
    reason = why_not_a_file(path)
    if reason == "does not exist":
        raise DataError(f"{what} file not found: {path}")
    if reason == "is a directory":
        raise DataError(f"{what} path is a directory, not a file: {path}")
    if reason:  # a dangling link, a loop of links, a pipe
        raise DataError(f"{what} file {path} {reason}")
    return path


def missing_column(kind: str, name: str, columns: list[str], where: str) -> DataError:
    """The error for a column that is not there, suggesting close names (difflib)."""
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = shown_names(columns)
    return DataError(f"{kind} column {name!r} not found in {where}{hint} columns: {shown}")


def check_unique(names: list[str], message: str) -> None:
    """``DataError`` for the first name that occurs more than once in ``names``: ``message`` with
    ``{name}`` and ``{count}`` filled in (and ``{copy}``, pandas' name for the second one)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            count = sum(n == name for n in names)
            raise DataError(message.format(name=repr(name), count=count, copy=repr(f"{name}.1")))
        seen.add(name)


def check_roles(targets: list[str], features: list[str] | None, where: str) -> None:
    """``DataError`` for a column named twice in ``target`` or in ``features``, or in both (it would
    be learned from itself, or counted twice)."""
    check_unique(
        targets, f"{where}: target names column {{name}} {{count}} times; name each target column once"
    )
    if features is None:
        return
    check_unique(features, f"{where}: features names column {{name}} {{count}} times; name each feature once")
    both = next((f for f in features if f in targets), None)
    if both is not None:
        raise DataError(
            f"{where}: column {both!r} is both a feature and a target; leave it out of features=[...]"
        )


def _csv_header(path: Path, sep: str) -> list[str]:
    """The header's names as written (pandas renames a repeated 'label' to 'label.1')."""
    head = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [str(c) for c in head.iloc[0]] if len(head) else []


def _parquet_names(path: Path) -> list[str]:
    """The Parquet schema's column names (pandas cannot read a file that repeats one)."""
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def _read_npz(path: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:  # object arrays need pickle, which is refused
        raise DataError(f"cannot read {path.name}: {one_line(e)}") from None
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path.name} as .npz: {one_line(e)}") from None
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
    check_unique(
        names + targets,
        f"{path.name}: name {{name}} occurs {{count}} times in feature_names and target_names; "
        "give every column of X and y its own name",
    )
    frame = pd.concat(
        [pd.DataFrame(X, columns=names), pd.DataFrame({t: Y[:, j] for j, t in enumerate(targets)})], axis=1
    )
    return frame, {"y": targets}


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The table at ``path`` and its column groups (``{"y": [...]}`` for an .npz's target array).

    Raises ``DataError`` for a missing file, an unsupported extension, an unreadable or empty
    file, and a table without rows.
    """
    path = existing_file(path, "data")
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
            check_unique(
                _parquet_names(path), f"{path.name}: column name {{name}} occurs {{count}} times; {UNIQUE}"
            )
            frame = pd.read_parquet(path)
        else:
            sep = "\t" if suffix.startswith(".tsv") else ","
            header = [c for c in _csv_header(path, sep) if c.strip()]  # blank ones become 'Unnamed: k'
            check_unique(
                header,
                f"{path.name}: column name {{name}} occurs {{count}} times in the header (pandas would "
                f"read the second one as another column, {{copy}}); {UNIQUE}",
            )
            frame = pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file is empty: {path}") from None
    except ImportError as e:
        raise DataError(f"reading {path.name} needs an optional package: {e} (pip install pyarrow)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"cannot read {path.name}: {one_line(e)}") from None
    if len(frame) == 0:
        raise DataError(f"data file has no rows: {path} (columns: {', '.join(map(str, frame.columns))})")
    frame.columns = [str(c) for c in frame.columns]
    check_unique(list(frame.columns), f"{path.name}: column name {{name}} occurs {{count}} times; {UNIQUE}")
    return frame, groups
