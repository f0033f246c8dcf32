"""Predict with a checkpoint on new rows:

    python scripts/predict.py ckpt_path=.../checkpoints/last.ckpt input=new.csv output=predictions.csv

The input table needs the training's raw feature columns by name (for Playground sets x1, x2,
from which every Playground feature is computed; or the features themselves); other columns are
copied through. The checkpoint carries the raw → network transform (feature expansion, the
standardisation fitted on the training split, the inverse for regression targets) and the class
names, so nothing else is needed. Classification adds ``prediction`` (the class name) and one
``prob_<class>`` column per class (binary: the positive class); regression adds ``prediction`` (or
one column per target).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from app import check_group_choices, configure_threads, fail, load_plugins, validate_config
from omegaconf import DictConfig


def table_inputs(table: pd.DataFrame, info, dtype):
    """The network's inputs (n, n_features) of ``dtype`` from a user table, through the checkpoint's
    :class:`~lecturenn.data.DataTransform`: its raw columns by name (the Playground's x1, x2 give
    every Playground feature), or — when some raw column is missing — the features themselves."""
    from lecturenn.data import DataError

    transform = info.transform.for_columns(table.columns)  # DataError naming missing columns
    names = transform.raw_names
    frame = table[names]
    bad = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        example = frame[bad[0]].iloc[0]
        raise DataError(f"feature column {bad[0]!r} is not numeric (e.g. {example!r})")
    X = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        rows, cols = np.nonzero(~np.isfinite(X))
        raise DataError(f"feature column {names[cols[0]]!r} has NaN/inf in {len(set(rows))} row(s)")
    return transform.features(X, dtype)


def _number(value) -> float | None:
    """``value`` as a float when it is a number or a string that spells one (``"2.0"``, ``" 2"``), else
    None. Booleans are not numbers here (the classes of a boolean target are "False" and "True")."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _blank(value) -> bool:
    return (isinstance(value, str) and not value.strip()) or (
        not isinstance(value, str) and bool(pd.isna(value))
    )


def _label_text(value) -> str:
    """A label as the user wrote it, near enough: 3.0 read from a partly blank integer column is ``3``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def unseen_labels(column: pd.Series, classes: list[str]) -> list[str]:
    """The distinct non-blank values of a label ``column`` that name none of ``classes``, sorted.

    Blank cells (NaN, empty or whitespace-only strings) are rows to predict, not labels. A value names
    a class when its text equals the class name, or when both spell a number and the numbers are equal
    (``2.0``, ``"2.0"`` and ``2`` all name the class ``"2"``).
    """
    names = set(classes)
    numbers = {n for n in map(_number, classes) if n is not None}
    unseen = set()
    for value in column.unique():
        if _blank(value) or str(value) in names:
            continue
        number = _number(value)
        if number is None or number not in numbers:
            unseen.add(_label_text(value))
    return sorted(unseen)


def check_labels(table: pd.DataFrame, info) -> None:
    """``DataError`` when the input's label column (optional) holds a label the model never saw."""
    from lecturenn.data import DataError

    if info.classes is None:
        return
    for target in info.target_names:
        if target in table.columns:
            unseen = unseen_labels(table[target], info.classes)
            if unseen:
                raise DataError(
                    f"column {target!r} has label(s) {unseen[:5]} never seen in training "
                    f"(known classes: {info.classes}); blank labels are fine (rows to predict)"
                )


def output_path(cfg: DictConfig) -> Path:
    """The output file, checked before any work; one ``error:`` line and exit 2 when it cannot be written.

    Refused: a directory, a file in a directory that does not exist (or is not writable), the input
    or the checkpoint file itself, and an existing file unless ``overwrite=true``.
    """
    overwrite = bool(cfg.get("overwrite", False))  # a bool: checked by validate_config
    text = str(cfg.get("output") or "").strip()
    if not text:
        fail(ValueError("config: output is empty; name the file to write the predictions to"))
    path = Path(text).expanduser()
    try:
        path.resolve()
    except (OSError, RuntimeError) as err:  # a symbolic-link loop (RuntimeError before Python 3.13)
        fail(ValueError(f"output {str(path)!r} cannot be written: {err}; name another file"))
    if path.is_dir():
        fail(
            ValueError(
                f"output {str(path)!r} is a directory; name a file, e.g. output={path / 'predictions.csv'}"
            )
        )
    parent = path.parent
    if not parent.exists():
        fail(ValueError(f"output directory {str(parent)!r} does not exist (create it first)"))
    if not parent.is_dir():
        fail(ValueError(f"output {str(path)!r}: {str(parent)!r} is not a directory"))
    if not os.access(parent, os.W_OK | os.X_OK):
        fail(ValueError(f"output directory {str(parent)!r} is not writable"))
    for key in ("input", "ckpt_path"):
        if not str(cfg.get(key) or "").strip():
            continue
        other = Path(str(cfg.get(key)).strip()).expanduser()
        try:
            same = path.resolve() == other.resolve()  # symbolic links followed
        except (OSError, RuntimeError):  # the input or checkpoint is a loop: it is read (and refused) later
            same = False
        if not same and path.exists() and other.exists():
            same = os.path.samefile(path, other)  # hard links
        if same:
            fail(
                ValueError(f"output {str(path)!r} is the {key} file itself; write the predictions elsewhere")
            )
    if (path.exists() or path.is_symlink()) and not overwrite:
        _exists(path)
    return path


def _exists(path: Path):
    fail(FileExistsError(f"output {str(path)!r} already exists; pass overwrite=true to replace it"))


_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}


def _write(table: pd.DataFrame, tmp: Path, name: str) -> None:
    """``table`` into ``tmp`` in the format the final ``name`` asks for."""
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        table.to_parquet(tmp, index=False)
        return
    suffix = Path(lower).suffix
    method = _COMPRESSIONS.get(suffix)
    stem = lower.removesuffix(suffix) if method else lower
    compression = (
        {"method": method, "archive_name": name[: len(name) - len(suffix)]} if method == "zip" else method
    )
    table.to_csv(tmp, index=False, sep="\t" if stem.endswith(".tsv") else ",", compression=compression)


def write_output(table: pd.DataFrame, path: Path, overwrite: bool) -> None:
    """Write ``table`` to ``path`` whole or not at all (:func:`lecturenn.atomic.atomic_path`: a failure
    leaves ``path`` as it was). Without ``overwrite`` a file that appeared since :func:`output_path`
    checked is not replaced."""
    from lecturenn.atomic import atomic_path

    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            _write(table, tmp, path.name)
    except FileExistsError:
        _exists(path)
    except (OSError, ImportError, ValueError) as err:
        fail(ValueError(f"cannot write output {str(path)!r}: {err}"))


def checkpoint_data_info(model, ckpt_path):
    """The checkpoint's :class:`~lecturenn.data.DataInfo`, checked against its network."""
    from lecturenn.data import DataInfo
    from lecturenn.training.checkpoint import CheckpointError

    raw = model.hparams.get("data_info")
    try:
        info = DataInfo.from_dict(raw) if isinstance(raw, dict) else None
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {str(ckpt_path)!r} has an unusable data_info: {err}") from None
    if info is None:
        raise CheckpointError(
            f"checkpoint {str(ckpt_path)!r} has no data_info (standardisation, class names)"
        )
    sizes = model.net.sizes
    if (info.n_features, info.n_outputs) != (sizes[0], sizes[-1]):
        raise CheckpointError(
            f"checkpoint {str(ckpt_path)!r}: its data_info ({info.n_features} features, {info.n_outputs} "
            f"outputs) does not match its network (layer sizes {list(sizes)})"
        )
    return info


def predicted_columns(out: np.ndarray, info) -> dict[str, np.ndarray]:
    """The columns predict.py adds, from the network's outputs ``out`` (n, K): ``prediction`` (class
    name or value) and ``prob_<class>``; ``prediction_<target>`` for several targets."""
    if info.task == "regression":
        if out.shape[1] == 1:
            return {"prediction": out[:, 0]}
        return {f"prediction_{name}": out[:, k] for k, name in enumerate(info.target_names)}
    if info.task == "multilabel":
        columns = {}
        for k, name in enumerate(info.target_names):
            columns[f"prob_{name}"] = out[:, k]
            columns[f"prediction_{name}"] = (out[:, k] > 0.5).astype(int)
        return columns
    if info.task == "binary":
        return {
            "prediction": np.asarray(info.classes)[(out[:, 0] > 0.5).astype(int)],
            f"prob_{info.classes[1]}": out[:, 0],
        }
    columns = {"prediction": np.asarray(info.classes)[out.argmax(axis=1)]}
    for k, name in enumerate(info.classes):
        columns[f"prob_{name}"] = out[:, k]
    return columns


def check_no_clash(table: pd.DataFrame, info) -> None:
    """The input's own columns are copied through: none may share a name with a predicted column."""
    names = predicted_columns(np.zeros((0, info.n_outputs)), info)
    clash = [str(c) for c in table.columns if str(c) in names]
    if clash:
        raise ValueError(
            f"input already has column(s) {clash}, which predict.py writes; rename or drop them "
            "(the input's other columns are copied to the output unchanged)"
        )


def predict(cfg: DictConfig) -> Path:
    load_plugins(cfg)  # from this command line only (a checkpoint's own activation/head)
    validate_config(cfg)  # every key (batch_size, overwrite, ...), before anything is read

    import torch

    configure_threads(cfg)
    from lecturenn.data import DataError
    from lecturenn.data.files import read_table
    from lecturenn.training.checkpoint import CheckpointError, load_module

    path = output_path(cfg)  # before any work: a bad output must not cost a prediction run
    overwrite = bool(cfg.get("overwrite", False))
    try:
        model = load_module(cfg.ckpt_path, map_location="cpu")  # verified, data only, eval mode
        info = checkpoint_data_info(model, cfg.ckpt_path)
        table, _ = read_table(cfg.input)
        X = table_inputs(table, info, model.net.thetas[0].dtype)  # the checkpoint's transform
        check_labels(table, info)
        check_no_clash(table, info)
    except (CheckpointError, DataError, ValueError) as err:
        fail(err)

    outputs = []
    for start in range(0, len(X), int(cfg.batch_size)):
        outputs.append(model.predict_tensor(X[start : start + int(cfg.batch_size)]))
    out = torch.cat(outputs).numpy()

    result = table.copy()
    for name, values in predicted_columns(out, info).items():
        result[name] = values
    write_output(result, path, overwrite)
    print(f"{len(result)} predictions written to {path.resolve()}")
    return path


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    check_group_choices(sys.argv[1:])
    sys.exit(main())
