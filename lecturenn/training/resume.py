"""What a resume may change, and the check that refuses the rest.

A checkpoint continues *one* training: the function being trained and the data it is trained on
must be those of the checkpoint. Lightning restores Θ, the optimizer, the loops and the
callbacks' state from the file, but builds the network and the data from the *current* config —
so a different activation (same Θ shapes) or a different standardisation would silently train
another function. :func:`check_resumable` compares the two before any work:

=====================================  ==============================================================
must match (refused if different)      ``model``: ``activation``, ``hidden_sizes``, ``batchnorm``,
                                       ``dropout``; the task/head; the input features (names, count,
                                       Playground expansion); the targets and classes; the data's
                                       standardisation; the training rows themselves (their SHA-256:
                                       ``data.path``, ``data.dataset``, ``data.noise``, ``data.seed``,
                                       the val/test fractions; streaming modules: through the
                                       statistics and N only); the number of training rows N
                                       (λ/(2N)); the optimizer type
may change                             ``trainer.max_epochs`` / ``max_steps`` / ``max_time``, the
                                       learning rate and the other optimizer settings of the same
                                       optimizer, the scheduler, ``model.lam`` (λ),
                                       ``model.backprop`` (manual and autograd compute the same J),
                                       ``model.steps_per_execution``, ``model.fast_path``,
                                       ``data.batch_size``, logging, callbacks, threads, the device
=====================================  ==============================================================
"""

from __future__ import annotations

import math
from pathlib import Path

from .checkpoint import load_checkpoint

__all__ = ["FIXED_DATA", "FIXED_MODEL", "check_resumable", "data_difference"]

# ThetaMLPModule hyper-parameters that define the function h_Θ being trained: config key -> hparam
FIXED_MODEL = {
    "model.activation": "activation",
    "model.head": "head",
    "model.hidden_sizes": "hidden_sizes",
    "model.batchnorm": "batchnorm",
    "model.dropout": "dropout",
}
# DataInfo fields that define the inputs, the targets and the standardisation
FIXED_DATA = (
    "task",
    "n_features",
    "n_outputs",
    "raw_features",
    "feature_names",
    "target_names",
    "classes",
    "x_mean",
    "x_std",
    "y_mean",
    "y_std",
    "n_train",
    "train_digest",
)


def _same(a, b) -> bool:
    """Equal, with floats compared to 1e-9 relative (statistics recomputed from the same rows)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def data_difference(saved: dict, own: dict, fields=FIXED_DATA) -> str | None:
    """The first of ``fields`` (DataInfo keys) in which ``own`` differs from ``saved``, or None;
    fields ``saved`` lacks (an older checkpoint) are not compared."""
    return next((name for name in fields if name in saved and not _same(saved[name], own.get(name))), None)


def check_resumable(ckpt_path: str | Path, model, max_epochs: int | None = None) -> int:
    """Refuse, naming the first difference, a resume of ``model`` from ``ckpt_path`` that would
    train another function or data, or that has nothing left to train.

    Args:
        ckpt_path: a checkpoint written by training a :class:`~lecturenn.training.ThetaMLPModule`.
        model: the module the resumed run has built from its config.
        max_epochs: the resumed run's ``trainer.max_epochs`` (None or -1: no epoch limit).

    Returns:
        The number of epochs the checkpoint has completed (the resumed run starts at that epoch).

    Raises:
        CheckpointError: the file cannot be read as a checkpoint (see :func:`load_checkpoint`).
        ValueError: the network, the data or the optimizer differ (see the module docstring), or
            the checkpoint has already trained ``max_epochs`` epochs.
    """
    ckpt = load_checkpoint(ckpt_path)
    done = int(ckpt.get("epoch", -1)) + 1  # saved at the end of epoch e (0-based): e + 1 done
    if max_epochs is not None and max_epochs >= 0 and done >= max_epochs:
        raise ValueError(
            f"checkpoint {ckpt_path} has already trained {done} epoch(s) and "
            f"trainer.max_epochs={max_epochs}: nothing is left to train; set trainer.max_epochs above {done}"
        )
    saved_hp, own_hp = ckpt.get("hyper_parameters") or {}, dict(model.hparams)
    fix = "resume with the settings it was trained with, or start a new run"
    for key, name in FIXED_MODEL.items():
        if name in saved_hp and not _same(saved_hp[name], own_hp.get(name)):
            raise ValueError(
                f"checkpoint {ckpt_path} was trained with {key}={_short(saved_hp[name])}, this run has "
                f"{_short(own_hp.get(name))}: that would train another network; {fix}"
            )
    saved_info, own_info = saved_hp.get("data_info") or {}, own_hp.get("data_info") or {}
    name = data_difference(saved_info, own_info)
    if name is not None:
        raise ValueError(
            f"checkpoint {ckpt_path} was trained on other data: its {name} is "
            f"{_short(saved_info[name])}, this run's is {_short(own_info.get(name))} (the data source, "
            f"its features, its split or its standardisation changed); {fix}"
        )
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in ckpt.get("state_dict", {}).items()}
    if own != saved:
        diff = sorted(k for k in own.keys() | saved.keys() if own.get(k) != saved.get(k))
        raise ValueError(f"checkpoint {ckpt_path} holds a different network (mismatch in {diff[:4]}); {fix}")
    states = ckpt.get("optimizer_states") or []
    if states:
        built = model.configure_optimizers()
        optimizer = built["optimizer"] if isinstance(built, dict) else built
        configured = built["lr_scheduler"]["scheduler"] if isinstance(built, dict) else None
        kind = f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"
        saved_kind = ckpt.get("optimizer_class")
        if saved_kind is not None and saved_kind != kind:
            raise ValueError(
                f"checkpoint {ckpt_path} was trained with {saved_kind}, this run uses {kind}; "
                "resume with the same optimizer (its learning rate and settings may change)"
            )
        want = set(optimizer.param_groups[0]) - {"params"}
        have = set(states[0]["param_groups"][0]) - {"params"}
        if not have <= want | {"initial_lr"}:
            raise ValueError(
                f"checkpoint {ckpt_path} was trained with a different optimizer (its settings "
                f"{sorted(have - want)} do not exist in {type(optimizer).__name__}); "
                "resume with the same optimizer"
            )
        changed = settings_changed(ckpt, optimizer, configured)
        if changed:
            raise ValueError(
                f"checkpoint {ckpt_path} was trained with {changed}: a resume restores the optimizer's and "
                "the scheduler's state with their settings (Lightning), so this run's would be silently "
                "ignored; resume with the checkpoint's settings, or start a new run"
            )
    return done


# what a scheduler's state holds besides its settings: how far it has gone
_SCHEDULER_PROGRESS = frozenset(
    {"last_epoch", "_step_count", "_last_lr", "base_lrs", "_get_lr_called_within_step", "_is_initial",
     "best", "num_bad_epochs", "cooldown_counter"}
)  # fmt: skip


def settings_changed(ckpt: dict, optimizer, configured) -> str | None:
    """The first optimizer or scheduler setting this run configures differently from the checkpoint's,
    as "<setting>=<checkpoint's> (this run: <its>)", or None. Lightning restores the optimizer's
    ``param_groups`` and the scheduler's ``state_dict`` from the checkpoint, settings included (lr,
    momentum, betas, weight decay; T_max, step_size, gamma, ...), so a changed one would not apply. The
    learning rate is compared as configured: the checkpoint's ``initial_lr`` where a scheduler set it,
    its ``lr`` without a scheduler, not at all under ReduceLROnPlateau (it keeps no initial rate).
    ``configured``: the scheduler this run built (or None)."""
    saved_groups = ckpt["optimizer_states"][0]["param_groups"]
    saved_schedulers = ckpt.get("lr_schedulers") or []
    for group, saved in zip(optimizer.param_groups, saved_groups):
        for key, value in group.items():
            if key in ("params", "initial_lr") or key not in saved:
                continue
            old = saved[key]
            if key == "lr":
                if "initial_lr" in saved:
                    old = saved["initial_lr"]
                elif saved_schedulers:
                    continue  # ReduceLROnPlateau: the current rate, not the configured one
            if not _same(_plain(old), _plain(value)):
                return f"optimizer.{key}={_short(_plain(old))} (this run: {_short(_plain(value))})"
    if configured is not None and saved_schedulers:
        fresh, saved = configured.state_dict(), saved_schedulers[0]
        if set(fresh) != set(saved):
            return (
                f"another scheduler than {type(configured).__name__} (its state has "
                f"{sorted(set(saved) - _SCHEDULER_PROGRESS)})"
            )
        for key in sorted(set(fresh) - _SCHEDULER_PROGRESS):
            if not _same(_plain(saved[key]), _plain(fresh[key])):
                return (
                    f"scheduler.{key}={_short(_plain(saved[key]))} (this run: {_short(_plain(fresh[key]))})"
                )
    return None


def _plain(value):
    """Tuples as lists (a checkpoint's betas come back as lists); tensors (a capturable lr) as numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value) if isinstance(value, tuple) else value
