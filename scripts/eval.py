"""Evaluate a checkpoint on the test split: ``python scripts/eval.py ckpt_path=.../last.ckpt``.

Prints the test metrics and writes them to ``eval_metrics.json`` in the eval run directory.
The checkpoint is read as data only (``weights_only=True``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from app import configure_threads, fail, quiet_third_party_noise
from omegaconf import DictConfig, OmegaConf


def training_data_config(ckpt_path: Path) -> DictConfig:
    """The ``data`` node of the run that wrote this checkpoint (``<run>/.hydra/config.yaml``)."""
    run_config = ckpt_path.resolve().parent.parent / ".hydra" / "config.yaml"
    if not run_config.is_file():
        fail(ValueError(f"no data config given and {run_config} not found; pass data=<name> (and data.*)"))
    return OmegaConf.load(run_config).data


def evaluate(cfg: DictConfig) -> dict[str, float]:
    import lightning as L

    from lecturenn.data import DataError
    from lecturenn.training import ThetaMLPModule
    from lecturenn.training.checkpoint import CheckpointError, load_checkpoint

    quiet_third_party_noise()
    configure_threads(cfg)
    ckpt_path = Path(cfg.ckpt_path)
    try:
        load_checkpoint(ckpt_path)  # a clear error for a missing/corrupted/unsafe file
        model = ThetaMLPModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
        data_cfg = cfg.data if cfg.get("data") else training_data_config(ckpt_path)
        datamodule = hydra.utils.instantiate(data_cfg)
        datamodule.setup("test")
    except (CheckpointError, DataError, ValueError) as err:
        fail(err)
    if datamodule.info.n_features != model.net.sizes[0]:
        fail(
            ValueError(
                f"the data has {datamodule.info.n_features} features but the checkpoint's "
                f"network expects {model.net.sizes[0]}"
            )
        )
    L.seed_everything(cfg.seed, verbose=False)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[], enable_progress_bar=False)
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    out = Path(cfg.paths.output_dir) / "eval_metrics.json"
    out.write_text(json.dumps({"checkpoint": str(ckpt_path), **metrics}, indent=2, sort_keys=True) + "\n")
    for name, value in sorted(metrics.items()):
        print(f"{name:12s} {value:.4f}")
    print(f"written: {out.resolve()}")
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    sys.exit(main())
