"""``tuner=lr_find``: the learning-rate range test before training (conf/tuner/lr_find.yaml).

    python scripts/train.py data=circle tuner=lr_find                  # suggest optimizer.lr, stop
    python scripts/train.py data=circle tuner=lr_find tuner.train=true # then train with it

Runs :func:`lecturenn.training.lr_find.find_lr` (Lightning's ``Tuner.lr_find``) on the model and data
the run built, on a Trainer of its own (the run's ``trainer`` settings; no callbacks, loggers or
checkpoints; no epoch limit, so the test takes ``tuner.num_training`` steps even on a small set), then
writes ``plots/lr_find.png`` and ``lr_find.json`` into the run directory and prints the override to
paste, ``suggested: optimizer.lr=<rate>``, and the whole command.

**Why it stops after the suggestion by default.** Lightning's ``Tuner.lr_find`` — the API a Lightning
user calls — only suggests: its documented workflow is ``tuner.lr_find(model)``, look at
``lr_finder.plot(suggest=True)``, then ``trainer.fit``. The suggestion is a heuristic (the steepest
descent of a smoothed, noisy curve) worth a look at the plot before hours of training, and a run whose
rate was chosen silently cannot be repeated from its command line; the printed command can.
``tuner.train=true`` does what Lightning's ``LearningRateFinder`` callback does — find, then fit —
for scripts and sweeps: Lightning restores Θ, the optimizer and the RNG states after the test, and the
optimizer is rebuilt with the suggestion, so the training equals the printed command's, bitwise.

Refused before any work (scripts/schema.py ``check_tuner``, runs.py ``tuner_sweep_complaint``):
L-BFGS, several processes (DDP), a resumed run, ``trainer.fast_dev_run``, a sweep that would train
nothing or that sets ``optimizer.lr``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from app import instantiate_group, say
from omegaconf import DictConfig, open_dict
from runs import strict_json

PLOT, RECORD = "plots/lr_find.png", "lr_find.json"


def run_lr_find(cfg: DictConfig, datamodule, model, out_dir: Path) -> float:
    """The range test on ``model`` and ``datamodule``; writes the plot and the record, prints the
    suggestion and the command, returns the suggested rate (``ValueError`` when it cannot suggest)."""
    from lecturenn.training.figures.lr_find import plot_lr_find
    from lecturenn.training.lr_find import find_lr

    tuner = cfg.tuner
    trainer = instantiate_group(
        "trainer",
        cfg.trainer,
        callbacks=[],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        max_epochs=-1,  # Lightning's test also stops at max_epochs: only num_training may end it
        max_steps=int(tuner.num_training),
        min_epochs=None,  # would override the early stop
        max_time=None,
    )
    result = find_lr(
        model,
        datamodule,
        trainer,
        min_lr=tuner.min_lr,
        max_lr=tuner.max_lr,
        num_training=tuner.num_training,
        mode=tuner.mode,
        early_stop_threshold=tuner.early_stop_threshold,
    )
    lr = result.suggestion
    command = command_with_lr(lr)
    plot_lr_find(result.lrs, result.losses, lr, out_dir / PLOT, result.mode, result.stopped_early)
    (out_dir / RECORD).write_text(strict_json({**result.to_dict(), "command": command}))
    end = f"; the loss diverged and stopped it after {len(result.lrs)}" if result.stopped_early else ""
    say(
        f"lr_find: {result.num_training} steps, lr {result.min_lr:g} -> {result.max_lr:g} "
        f"({result.mode}){end}; the loss falls fastest at step {result.index} ({PLOT}, {RECORD})"
    )
    say(f"suggested: optimizer.lr={lr!r}")
    say(f"  {command}")
    if result.mode == "exponential":
        say(
            "note: look at the plot first: Lightning 2.6.6 takes the loss's slope against lr, not log lr, "
            "which favours the smallest rates (Lightning issue #21141)"
        )
    return lr


def command_with_lr(lr: float) -> str:
    """This run's command line with ``optimizer.lr=<lr>`` instead of its ``tuner`` and ``optimizer.lr``
    overrides, and without ``hydra.run.dir`` (that directory holds this run: the command starts a new one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not under @hydra.main
        overrides = []
    kept = [
        o
        for o in overrides
        if not (_key(o) in ("tuner", "optimizer.lr", "hydra.run.dir") or _key(o).startswith("tuner."))
    ]
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else "scripts/train.py"
    return shlex.join(["python", script, *kept, f"optimizer.lr={lr!r}"])


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def use_lr(cfg: DictConfig, model, lr: float) -> None:
    """Train ``model`` with ``optimizer.lr=lr``: the optimizer factory rebuilt from the config, as
    the printed command would build it."""
    with open_dict(cfg):
        cfg.optimizer.lr = float(lr)
    model.optimizer_factory = instantiate_group("optimizer", cfg.optimizer)
