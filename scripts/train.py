"""Train a ThetaMLP with Lightning, configured by Hydra.

    python scripts/train.py                              # digits, one hidden layer, >= 97 % test accuracy
    python scripts/train.py data=spiral model.hidden_sizes=[16,16] model.activation=relu
    python scripts/train.py experiment=ex4_digits        # the classic exercise's 25-unit network, λ = 1
    python scripts/train.py -m optimizer.lr=0.1,0.3 model.activation=sigmoid,relu  # a sweep
    python scripts/train.py data=circle tuner=lr_find    # suggest optimizer.lr (tuning.py), then stop
    PYTHONPATH=examples python scripts/train.py plugins=[my_plugin] model.activation=leaky  # its own g

Seed → data (setup, validated once) → model (sizes from the data) → fit → test on the best
checkpoint → ``metrics.json`` in the run directory. Returns the optimized metric for sweepers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import hydra
from app import (
    check_group_choices,
    check_metric_names,
    check_network_fits,
    configure_matmul_precision,
    configure_threads,
    draw_seed,
    fail,
    instantiate_group,
    instantiate_list,
    load_plugins,
    quiet_third_party_noise,
    say,
    validate_config,
)
from omegaconf import DictConfig
from runs import check_sweep_direction, is_multirun, strict_json, sweep_job
from schema import ConfigError


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job; returns the metrics written to ``metrics.json``."""
    drawn = draw_seed(cfg)  # before the checks: data.seed and model.init_seed interpolate ${seed}
    load_plugins(cfg)  # before the checks: a plugin may register model.activation / model.head
    validate_config(cfg)  # every key, before anything heavy is imported
    seed = int(cfg.seed)

    import lightning as L
    from lightning.pytorch.callbacks import Checkpoint
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lecturenn.data import DataError
    from lecturenn.training.checkpoint import AtomicCheckpointIO, CheckpointError
    from lecturenn.training.guards import DivergenceGuard, TrainingDiverged
    from lecturenn.training.resume import check_resumable

    out_dir = Path(cfg.paths.output_dir)
    quiet_third_party_noise()
    threads = configure_threads(cfg)
    matmul_precision = configure_matmul_precision(cfg)  # before the model is built
    L.seed_everything(seed, workers=True, verbose=False)

    try:
        datamodule, model = build(cfg)
        info = datamodule.info
        callbacks = [DivergenceGuard(), *instantiate_list(cfg.get("callbacks"))]
        loggers = instantiate_list(cfg.get("logger"), resume=bool(cfg.get("ckpt_path")))
        checkpointing = any(isinstance(cb, Checkpoint) for cb in callbacks)  # callbacks=none: none
        trainer: L.Trainer = instantiate_group(
            "trainer",
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers or False,
            plugins=[AtomicCheckpointIO()],
            enable_checkpointing=checkpointing,  # else Lightning adds its own ModelCheckpoint
        )
    except (ConfigError, DataError) as err:
        fail(err)
    first_epoch = 0
    if cfg.get("ckpt_path"):
        try:  # same network, data and optimizer, and epochs left to train, or refused
            first_epoch = check_resumable(cfg.ckpt_path, model, cfg.trainer.get("max_epochs"))
        except (CheckpointError, ValueError) as err:
            fail(err)

    if trainer.is_global_zero:
        rows = datamodule.split_sizes()
        say(model.summary())
        say(
            f"data: {info.task}, {info.n_features} features -> {info.n_outputs} "
            f"output{'' if info.n_outputs == 1 else 's'}; "
            f"train/val/test rows {rows['train']}/{rows['val']}/{rows['test']}; torch threads {threads}"
        )
        if drawn:
            say(f"seed: null, so drew seed={seed} (pass seed={seed} to repeat this run)")

    if cfg.get("tuner"):  # tuner=lr_find (tuning.py): suggest a rate, then stop or train with it
        from tuning import run_lr_find, use_lr

        try:
            lr = run_lr_find(cfg, datamodule, model, out_dir)
        except (ConfigError, ValueError) as err:
            fail(f"tuner=lr_find: {err}")
        if not cfg.tuner.train:
            say(f"outputs: {out_dir.resolve()}  (lr_find.json, plots/lr_find.png, train.log)")
            return {"lr_find/suggestion": lr, "optimized_metric": None}
        use_lr(cfg, model, lr)
        say(f"tuner.train=true: training with optimizer.lr={lr!r}")

    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except CheckpointError as err:
        fail(err)
    except TrainingDiverged as err:
        fail(err, code=3)
    except SIGTERMException:  # Lightning stops at the next step and exits with SystemExit(None): 0
        fail(
            f"training stopped by SIGTERM in epoch {trainer.current_epoch}{_resume_hint(out_dir)}",
            code=128 + 15,
        )
    except SystemExit:  # Ctrl-C: Lightning's "Detected KeyboardInterrupt ..." and exit(1), like a crash
        if not trainer.interrupted:
            raise
        fail(
            f"training interrupted (SIGINT) in epoch {trainer.current_epoch}{_resume_hint(out_dir)}",
            code=128 + 2,
        )
    fit_seconds = time.perf_counter() - start
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
        metrics["best_checkpoint"] = best
    metrics["epochs"] = trainer.current_epoch
    metrics["fit_seconds"] = round(fit_seconds, 3)
    metrics["seed"] = seed
    metrics["matmul_precision"] = matmul_precision
    metrics["optimized_metric"] = cfg.get("optimized_metric") or model.best_name

    if trainer.is_global_zero:
        (out_dir / "metrics.json").write_text(strict_json(metrics))
        shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")}
        say(f"test metrics: {shown}")
        trained = trainer.current_epoch - first_epoch
        resumed = f" (resumed at epoch {first_epoch}: {trained} epochs trained now)" if first_epoch else ""
        say(f"fit: {trainer.current_epoch} epochs{resumed} in {fit_seconds:.1f} s")
        written = [
            name
            for name in (
                "metrics.json",
                "checkpoints/",
                "plots/",
                "csv/metrics.csv",
                "tensorboard/",
                "train.log",
            )
            if (out_dir / name).exists()
        ]
        say(f"outputs: {out_dir.resolve()}  ({', '.join(written)})")
    return metrics


def _resume_hint(out_dir: Path) -> str:
    """ "; resume with ckpt_path=<last.ckpt>" when the run wrote one (an epoch ended), else ""."""
    last = out_dir / "checkpoints" / "last.ckpt"
    return f"; resume with ckpt_path={last.resolve()}" if last.is_file() else ""


def build(cfg: DictConfig):
    """Data (set up and validated once), then the model sized from it: (datamodule, model).

    Every value a class refuses becomes a :class:`ConfigError` naming its group; so do layer sizes
    that cannot fit in memory, an optimizer or scheduler argument torch refuses (both are built
    once here, on the model's Θ), and a ``monitor`` that names no metric the model logs.
    """
    datamodule = instantiate_group("data", cfg.data)
    datamodule.setup("fit")
    info = datamodule.info
    hidden = list(cfg.model.get("hidden_sizes") or [])
    check_network_fits([info.n_features, *hidden, info.n_outputs], cfg)
    optimizer = instantiate_group("optimizer", cfg.optimizer) if cfg.get("optimizer") else None
    scheduler = instantiate_group("scheduler", cfg.scheduler) if cfg.get("scheduler") else None
    model = instantiate_group(
        "model",
        cfg.model,
        _convert_="all",
        n_features=info.n_features,
        n_outputs=info.n_outputs,
        task=info.task,
        data_info=info.to_dict(),
        optimizer=optimizer,
        scheduler=scheduler,
    )
    # trial builds on Θ: torch checks its arguments here rather than at the first step
    trial = _trial_build("optimizer", optimizer, model.parameters()) if optimizer else None
    if scheduler is not None and trial is not None:
        _trial_build("scheduler", scheduler, trial)
    check_targets_suit_head(datamodule, model, cfg)
    check_metric_names(cfg, model.metric_names())
    complaint = check_sweep_direction(cfg.get("optimized_metric") or model.best_name)
    if complaint:
        raise ConfigError(complaint)
    return datamodule, model


def check_targets_suit_head(datamodule, model, cfg: DictConfig) -> None:
    """The targets as the network sees them (after ``data.standardize``) must be legal for the
    head (its registry entry's ``valid``, e.g. counts >= 0 for a Poisson head): ConfigError
    otherwise, before any training. In-memory data only: a stream is read batch by batch."""
    head, K = model.net.head, model.net.sizes[-1]
    for split in ("train", "val", "test"):
        try:
            _, Y = getattr(datamodule, split)
        except (AttributeError, TypeError):
            return  # not an in-memory data module
        if Y.numel() and not bool(head.targets_valid(Y, K)):
            why = head.describe_bad_targets(Y)
            if datamodule.info.task == "regression" and cfg.data.get("standardize"):
                why += " (data.standardize=true standardises regression targets too: set it false)"
            raise ConfigError(f"data: the {split} targets do not suit model.head={head.name}: {why}")


def _trial_build(group: str, make, argument):
    try:
        return make(argument)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"config: {group}: {' '.join(str(err).split())}") from None


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    if is_multirun():  # a failing job is recorded and summarised, never aborts its siblings
        return sweep_job(cfg, train)
    metrics = train(cfg)
    value = metrics.get(metrics["optimized_metric"])
    return None if value is None else float(value)


if __name__ == "__main__":
    check_group_choices(sys.argv[1:])
    sys.exit(main())
