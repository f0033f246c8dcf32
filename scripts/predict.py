"""Predict with a checkpoint on new rows:

    python scripts/predict.py ckpt_path=.../checkpoints/last.ckpt input=new.csv output=predictions.csv

The input table needs the training features as named columns (for Playground sets with extra
features, the raw x1, x2 columns are enough); other columns are copied through. The checkpoint
carries the standardisation fitted on the training split and the class names, so nothing else is
needed. Classification adds ``prediction`` (the class name) and one ``prob_<class>`` column per
class (binary: the positive class); regression adds ``prediction`` (or one column per target).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from app import fail
from omegaconf import DictConfig


def feature_matrix(table: pd.DataFrame, info) -> np.ndarray:
    """The network's input columns from a user table (raw, before standardisation)."""
    from lecturenn.data import DataError
    from lecturenn.data.playground import FEATURES

    names = list(info.feature_names)
    if (
        not all(name in table.columns for name in names)
        and all(n in FEATURES for n in names)
        and {
            "x1",
            "x2",
        }
        <= set(table.columns)
    ):
        raw = table[["x1", "x2"]]
        columns = {name: FEATURES[name](raw["x1"], raw["x2"]) for name in names}
        table = pd.DataFrame(columns)
    missing = [name for name in names if name not in table.columns]
    if missing:
        raise DataError(f"input is missing feature column(s) {missing}; the model was trained on {names}")
    frame = table[names]
    bad = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        example = frame[bad[0]].iloc[0]
        raise DataError(f"feature column {bad[0]!r} is not numeric (e.g. {example!r})")
    X = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        rows, cols = np.nonzero(~np.isfinite(X))
        raise DataError(f"feature column {names[cols[0]]!r} has NaN/inf in {len(set(rows))} row(s)")
    return X


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


def predict(cfg: DictConfig) -> Path:
    import torch

    from lecturenn.data import DataError
    from lecturenn.data.files import read_table
    from lecturenn.data.scaling import network_inputs
    from lecturenn.training.checkpoint import CheckpointError, load_module

    try:
        model = load_module(cfg.ckpt_path, map_location="cpu")  # verified, data only, eval mode
        info = checkpoint_data_info(model, cfg.ckpt_path)
        table, _ = read_table(cfg.input)
        X = network_inputs(feature_matrix(table, info), info, model.net.thetas[0].dtype)  # float64, cast
        if info.classes is not None:
            for target in info.target_names:
                if target in table.columns:
                    unseen = sorted(set(table[target].astype(str)) - set(info.classes))
                    if unseen:
                        raise DataError(
                            f"column {target!r} has label(s) {unseen[:5]} never seen in training "
                            f"(known classes: {info.classes})"
                        )
    except (CheckpointError, DataError, ValueError) as err:
        fail(err)

    outputs = []
    for start in range(0, len(X), int(cfg.batch_size)):
        outputs.append(model.predict_tensor(X[start : start + int(cfg.batch_size)]))
    out = torch.cat(outputs).numpy()

    result = table.copy()
    if info.task == "regression":
        targets = info.target_names if out.shape[1] > 1 else ["prediction"]
        for k, name in enumerate(targets):
            result[name if out.shape[1] == 1 else f"prediction_{name}"] = out[:, k]
    elif info.task == "multilabel":
        for k, name in enumerate(info.target_names):
            result[f"prob_{name}"] = out[:, k]
            result[f"prediction_{name}"] = (out[:, k] > 0.5).astype(int)
    elif info.task == "binary":
        result["prediction"] = np.asarray(info.classes)[(out[:, 0] > 0.5).astype(int)]
        result[f"prob_{info.classes[1]}"] = out[:, 0]
    else:
        result["prediction"] = np.asarray(info.classes)[out.argmax(axis=1)]
        for k, name in enumerate(info.classes):
            result[f"prob_{name}"] = out[:, k]
    path = Path(cfg.output)
    result.to_csv(path, index=False)
    print(f"{len(result)} predictions written to {path.resolve()}")
    return path


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    sys.exit(main())
