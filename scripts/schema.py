"""The config schema: every key of ``conf/`` with the type and range it accepts, checked before any work.

A rule is data — ``RULES`` maps a dotted key (``*`` matches one level: ``callbacks.*.monitor``) to
what the key accepts, built from a few predicates (:func:`integer`, :func:`number`, :data:`BOOL`,
:func:`choice`, :func:`list_of`, :func:`maybe`, :func:`either`). :func:`check` walks every leaf
of the composed config and stops at the first bad one with one line::

    config: trainer.check_val_every_n_epoch=0 is invalid; expected an int >= 1

Booleans must be YAML booleans (``data.standardize=no`` is the string ``'no'``, refused), numbers
must be finite, and a key a user adds that ``conf/`` does not know (``+trainer.gradient_clip_val=1``)
is left to the class it is passed to: its own error becomes one line too (``train.py``'s
``build``). Rules that need two keys (``trainer.max_epochs=-1`` only with ``trainer.max_time``) are
in :func:`check_combinations`; rules that need the data (metric names a ``monitor`` may take, the
memory Θ needs) are in ``train.py``, after the data is read and before training starts.

``tests/test_config_schema.py`` composes every option of every config group and gives every leaf a
value of a wrong type: each must be refused naming its key, so a key added to ``conf/`` without a
rule fails that test.
"""

from __future__ import annotations

import difflib
import importlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from numbers import Integral, Real
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config value outside what its key accepts (the entry points print it as one line, exit 2)."""


@dataclass(frozen=True)
class Rule:
    ok: Callable[[Any], bool]
    what: str | Callable[[], str]  # "an int >= 1": completes "expected ..." (callable: computed late)

    @property
    def expected(self) -> str:
        return self.what() if callable(self.what) else self.what

    def accepts(self, value) -> bool:
        try:
            return bool(self.ok(value))
        except (TypeError, ValueError):
            return False


def _is_int(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int | None = None, hi: int | None = None) -> Rule:
    span = f" in [{lo}, {hi}]" if lo is not None and hi is not None else f" >= {lo}" if lo is not None else ""
    return Rule(lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi), f"an int{span}")


def number(lo: float | None = None, hi: float | None = None, lo_open=False, hi_open=False) -> Rule:
    """A finite real number in the interval given (``lo_open``/``hi_open``: the bound excluded)."""

    def ok(v) -> bool:
        if not _is_number(v):
            return False
        above = lo is None or (v > lo if lo_open else v >= lo)
        below = hi is None or (v < hi if hi_open else v <= hi)
        return above and below

    if lo is not None and hi is not None:
        span = f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    elif lo is not None:
        span = f" {'>' if lo_open else '>='} {lo}"
    else:
        span = ""
    return Rule(ok, f"a finite number{span}")


BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
TEXT = Rule(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
NAME = Rule(
    lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", v) is not None,
    "a name of letters, digits, '_', '-' or '.' (it becomes a directory name)",
)
DOTTED = Rule(
    lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", v) is not None,
    "a dotted import path such as torch.optim.Adam",
)

MODULE = Rule(
    lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", v) is not None,
    "a module path such as my_plugins.leaky",
)


def choice(*values) -> Rule:
    return Rule(
        lambda v: any(v == c and type(v) is type(c) for c in values),
        "one of " + ", ".join(repr(c) if isinstance(c, str) else str(c) for c in values),
    )


def maybe(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.accepts(v), f"null or {rule.expected}")


def either(*rules: Rule) -> Rule:
    return Rule(lambda v: any(r.accepts(v) for r in rules), " or ".join(r.expected for r in rules))


def list_of(item: Rule, length: int | None = None, min_length: int = 0) -> Rule:
    def ok(v) -> bool:
        if not isinstance(v, (list, tuple, ListConfig)):
            return False
        if (length is not None and len(v) != length) or len(v) < min_length:
            return False
        return all(item.accepts(x) for x in v)

    size = f"{length} " if length is not None else f"{min_length}+ " if min_length else ""
    return Rule(ok, f"a list of {size}({item.expected})")


def _registry(module: str, name: str) -> Rule:
    """One of the names of a lecturenn registry (imported on first use: lecturenn imports torch)."""

    def ok(v) -> bool:
        return isinstance(v, str) and v in getattr(importlib.import_module(module), name)

    return Rule(ok, lambda: "one of " + ", ".join(sorted(getattr(importlib.import_module(module), name))))


def _registered(module: str, name: str) -> Rule:
    """A name in a registry that plugins may extend (activations, heads)."""
    rule = _registry(module, name)

    def what() -> str:  # with a family's NAME:VALUE forms (lecturenn.registry.Family)
        forms = "".join(f", {f}" for f in getattr(importlib.import_module(module), name).forms())
        return f"{rule.expected}{forms} (or a name a module in plugins=[...] registers)"

    return Rule(rule.ok, what)


# Lightning's accepted ``precision`` values (lightning.fabric.connector._PRECISION_INPUT; pinned by
# tests/test_config_schema.py so that an upgrade that changes them fails a test, not a user's run).
PRECISIONS = (
    "transformer-engine",
    "transformer-engine-float16",
    "16-true",
    "16-mixed",
    "bf16-true",
    "bf16-mixed",
    "32-true",
    "64-true",
    64,
    32,
    16,
    "64",
    "32",
    "16",
    "bf16",
)
TASKS = ("auto", "binary", "multiclass", "multilabel", "regression")
POSITIVE = integer(1)
COUNT = integer(0)
FRACTION = number(0, 1, lo_open=True, hi_open=True)
RATE = number(0, lo_open=True)
NONNEGATIVE = number(0)
BATCH = either(integer(1), choice(-1))
MONITOR = maybe(TEXT)  # a logged metric: checked against the model's metric names in train.py
MODE = choice("min", "max")
PATH = TEXT
# "DD:HH:MM:SS" or {days:, hours:, minutes:, seconds:} (Lightning's Trainer(max_time=...))
DURATION = Rule(
    lambda v: (
        (isinstance(v, str) and re.fullmatch(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}", v) is not None)
        or (
            isinstance(v, (dict, DictConfig))
            and len(v) > 0
            and all(
                k in ("days", "hours", "minutes", "seconds") and _is_number(x) and x >= 0
                for k, x in v.items()
            )
        )
    ),
    "a duration 'DD:HH:MM:SS' or {days: .., hours: .., minutes: .., seconds: ..}",
)

RULES: dict[str, Rule] = {
    # -- conf/train.yaml, eval.yaml, predict.yaml: top-level keys -------------------------------
    "task_name": NAME,
    "seed": maybe(integer(0, 2**32 - 1)),  # null: a seed is drawn and recorded (train.py)
    "ckpt_path": maybe(PATH),
    "test": BOOL,
    "threads": either(choice("auto"), integer(1)),
    "matmul_precision": _registry("lecturenn.training.precision", "MATMUL_PRECISIONS"),  # TF32: auto
    "optimized_metric": MONITOR,
    "input": PATH,
    "output": PATH,
    "batch_size": POSITIVE,
    "overwrite": BOOL,
    "plugins": list_of(MODULE),  # imported before the config check (app.load_plugins)
    # -- Hydra's instantiation keys, in any group -------------------------------------------------
    "*._target_": DOTTED,
    "*.*._target_": DOTTED,
    "*._partial_": BOOL,
    "*._convert_": choice("none", "partial", "object", "all"),
    "*._recursive_": BOOL,
    # -- conf/paths ---------------------------------------------------------------------------------
    "paths.root_dir": PATH,
    "paths.output_dir": PATH,
    # -- conf/model (lecturenn.training.ThetaMLPModule) -------------------------------------------
    "model.hidden_sizes": list_of(POSITIVE),
    "model.activation": _registered("lecturenn.activations", "ACTIVATIONS"),
    "model.head": maybe(_registered("lecturenn.heads", "HEADS")),  # null: the task's head
    "model.lam": number(0, 1e10),  # beyond, λ only drives Θ to 0 (and λ·ΣΘ² leaves float32's range)
    "model.backprop": _registry("lecturenn.network", "BACKPROPS"),
    "model.init": _registry("lecturenn.theta", "INITS"),
    "model.epsilon": number(0, lo_open=True),
    "model.batchnorm": BOOL,
    "model.dropout": number(0, 1, hi_open=True),
    "model.init_seed": maybe(integer(0, 2**63 - 1)),
    "model.scheduler_monitor": TEXT,
    "model.steps_per_execution": POSITIVE,
    "model.fast_path": _registry("lecturenn.training.fast_path", "FAST_PATHS"),
    "model.auroc_thresholds": maybe(integer(2)),  # null: the exact AUROC
    "model.cuda_graph": BOOL,  # its combinations: check_cuda_graph
    # -- conf/data: every data module's arguments -------------------------------------------------
    "data.name": TEXT,  # the bundled set: checked by SklearnDataModule
    "data.dataset": TEXT,  # the Playground set: checked by PlaygroundDataModule
    "data.n": integer(1, 10**8),  # generated in memory: 1e8 rows of 2-D points is 1.6 GB
    "data.noise": number(0, 0.5),
    "data.features": maybe(either(PATH, list_of(TEXT, min_length=1))),  # names, or a .npy (stream/npy)
    "data.targets": PATH,
    "data.path": PATH,
    "data.target": Rule(  # a column name; a numeric one must be quoted on the command line
        either(TEXT, list_of(TEXT, min_length=1)).ok,
        "a column name or a list of them (quote a numeric name: 'data.target=\"2\"')",
    ),
    "data.task": choice(*TASKS),
    "data.batch_size": BATCH,
    "data.val_fraction": FRACTION,
    "data.test_fraction": FRACTION,
    "data.standardize": BOOL,
    "data.seed": integer(0, 2**32 - 1),
    "data.block_rows": POSITIVE,
    "data.shuffle_buffer_rows": maybe(POSITIVE),
    "data.prefetch": maybe(BOOL),  # null: on a CUDA device only
    "data.image_shape": maybe(list_of(POSITIVE, length=2)),
    # -- conf/optimizer (torch.optim) ---------------------------------------------------------------
    "optimizer.lr": RATE,
    "optimizer.betas": list_of(number(0, 1, hi_open=True), length=2),
    "optimizer.eps": NONNEGATIVE,
    "optimizer.weight_decay": NONNEGATIVE,
    "optimizer.momentum": NONNEGATIVE,
    "optimizer.dampening": NONNEGATIVE,
    "optimizer.nesterov": BOOL,
    "optimizer.amsgrad": BOOL,
    "optimizer.centered": BOOL,
    "optimizer.alpha": number(0, 1),
    "optimizer.lr_decay": NONNEGATIVE,
    "optimizer.initial_accumulator_value": NONNEGATIVE,
    "optimizer.max_iter": POSITIVE,
    "optimizer.max_eval": maybe(POSITIVE),
    "optimizer.history_size": POSITIVE,
    "optimizer.tolerance_grad": NONNEGATIVE,
    "optimizer.tolerance_change": NONNEGATIVE,
    "optimizer.line_search_fn": maybe(choice("strong_wolfe")),
    # -- conf/scheduler (torch.optim.lr_scheduler) --------------------------------------------------
    "scheduler.step_size": POSITIVE,
    "scheduler.gamma": RATE,
    "scheduler.T_max": POSITIVE,
    "scheduler.eta_min": NONNEGATIVE,
    "scheduler.mode": MODE,
    "scheduler.factor": number(0, 1, lo_open=True, hi_open=True),
    "scheduler.patience": COUNT,
    "scheduler.threshold": NONNEGATIVE,
    "scheduler.threshold_mode": choice("rel", "abs"),
    "scheduler.cooldown": COUNT,
    "scheduler.min_lr": NONNEGATIVE,
    "scheduler.eps": NONNEGATIVE,
    # -- conf/trainer (lightning.Trainer) -----------------------------------------------------------
    "trainer.default_root_dir": PATH,
    "trainer.accelerator": choice("auto", "cpu", "gpu", "cuda", "mps", "tpu"),
    "trainer.devices": either(POSITIVE, choice(-1, "auto"), list_of(COUNT, min_length=1)),
    "trainer.num_nodes": POSITIVE,
    "trainer.strategy": TEXT,
    "trainer.sync_batchnorm": BOOL,
    "trainer.precision": choice(*PRECISIONS),
    "trainer.min_epochs": maybe(COUNT),
    "trainer.max_epochs": maybe(either(POSITIVE, choice(-1))),  # -1: only with max_time/max_steps
    "trainer.max_steps": either(POSITIVE, choice(-1)),
    "trainer.max_time": maybe(DURATION),
    "trainer.check_val_every_n_epoch": POSITIVE,
    "trainer.log_every_n_steps": POSITIVE,
    "trainer.deterministic": either(BOOL, choice("warn")),
    "trainer.benchmark": maybe(BOOL),
    "trainer.enable_model_summary": BOOL,
    "trainer.enable_progress_bar": BOOL,
    "trainer.enable_checkpointing": BOOL,
    "trainer.logger": BOOL,  # eval.yaml: false (no logger for a test run)
    "trainer.gradient_clip_val": maybe(NONNEGATIVE),
    "trainer.gradient_clip_algorithm": maybe(choice("norm", "value")),
    "trainer.accumulate_grad_batches": POSITIVE,
    "trainer.num_sanity_val_steps": either(COUNT, choice(-1)),
    "trainer.limit_train_batches": maybe(either(POSITIVE, number(0, 1, lo_open=True))),
    "trainer.limit_val_batches": maybe(either(COUNT, number(0, 1))),
    "trainer.limit_test_batches": maybe(either(POSITIVE, number(0, 1, lo_open=True))),
    "trainer.val_check_interval": maybe(either(POSITIVE, number(0, 1, lo_open=True))),
    "trainer.fast_dev_run": either(BOOL, COUNT),
    "trainer.detect_anomaly": BOOL,
    # -- conf/callbacks: Lightning's and lecturenn's callbacks -------------------------------------
    "callbacks.*.dirpath": maybe(PATH),
    "callbacks.*.filename": maybe(TEXT),
    "callbacks.*.monitor": MONITOR,
    "callbacks.*.mode": MODE,
    "callbacks.*.save_last": maybe(either(BOOL, choice("link"))),
    "callbacks.*.save_top_k": either(COUNT, choice(-1)),
    "callbacks.*.every_n_epochs": maybe(COUNT),
    "callbacks.*.auto_insert_metric_name": BOOL,
    "callbacks.*.save_weights_only": BOOL,
    "callbacks.*.verbose": BOOL,
    "callbacks.*.out_dir": PATH,
    "callbacks.*.refresh_rate": COUNT,
    "callbacks.*.patience": COUNT,
    "callbacks.*.min_delta": NONNEGATIVE,
    "callbacks.*.check_finite": BOOL,
    "callbacks.*.stopping_threshold": maybe(number()),
    "callbacks.*.divergence_threshold": maybe(number()),
    # -- conf/tuner (scripts/tuning.py: the learning-rate finder; two-key rules in check_tuner) ------
    "tuner.name": choice("lr_find"),
    "tuner.min_lr": RATE,
    "tuner.max_lr": RATE,
    "tuner.num_training": integer(13),  # lecturenn.training.lr_find.MIN_STEPS (pinned by test_lr_find.py)
    "tuner.mode": choice("exponential", "linear"),
    "tuner.early_stop_threshold": maybe(number(1)),
    "tuner.train": BOOL,
    # -- conf/logger --------------------------------------------------------------------------------
    "logger.*.save_dir": PATH,
    "logger.*.name": maybe(TEXT),
    "logger.*.version": maybe(either(TEXT, COUNT, choice(""))),
    "logger.*.prefix": Rule(lambda v: isinstance(v, str), "a string"),
    "logger.*.flush_logs_every_n_steps": POSITIVE,
    "logger.*.log_graph": BOOL,
    "logger.*.default_hp_metric": BOOL,
}


def rule_for(key: str) -> Rule | None:
    """The rule of a dotted key: an exact entry first, else the first pattern that matches it."""
    if key in RULES:
        return RULES[key]
    parts = key.split(".")
    for pattern, rule in RULES.items():
        p = pattern.split(".")
        if len(p) == len(parts) and all(fnmatchcase(a, b) for a, b in zip(parts, p)):
            return rule
    return None


def leaves(node, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf; a list is a leaf (its items are checked by its rule), and so
    is a mapping whose rule expects one (``trainer.max_time``)."""
    for key in node:
        full = f"{prefix}{key}"
        value = node[key]
        if isinstance(value, (DictConfig, dict)) and rule_for(full) is None:
            yield from leaves(value, f"{full}.")
        else:
            yield full, value


def missing_keys(cfg: DictConfig) -> list[str]:
    """Keys still ``???`` (a required value nobody gave), e.g. ``data.path`` of ``data=table``."""
    return sorted(OmegaConf.missing_keys(cfg))


# an example value for each key that conf/ leaves ``???`` (required)
EXAMPLES = {
    "ckpt_path": "outputs/train/runs/<run>/checkpoints/last.ckpt",
    "input": "new_rows.csv",
    "data.path": "my.csv",
    "data.target": "label",
    "data.features": "X.npy",
    "data.targets": "y.npy",
}


def check(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first key that is missing, cannot be resolved
    (``${oc.env:NOPE}``, ``${no.such.key}``) or is outside its rule."""
    try:
        _check(cfg)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        reason = str(err).splitlines()[0]
        raise ConfigError(f"config: {key} cannot be resolved: {reason}") from None


def _check(cfg: DictConfig) -> None:
    cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # the job's keys, not Hydra's
    missing = missing_keys(cfg)
    if missing:
        key = missing[0]
        example = f"{key}={EXAMPLES.get(key, '...')}"
        raise ConfigError(f"config: {key} is required and has no default; pass it, e.g. {example}")
    raw = OmegaConf.to_container(cfg, resolve=False)
    unknown = [k for k, v in raw.items() if rule_for(str(k)) is None and not isinstance(v, dict)]
    if unknown:  # a top-level key nothing reads (a typo added with +): groups' classes refuse theirs
        near = difflib.get_close_matches(str(unknown[0]), [k for k in RULES if "." not in k], n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise ConfigError(f"config: {unknown[0]} is not a key lecturenn reads{hint}")
    plain = OmegaConf.to_container(cfg, resolve=True)
    found = list(leaves(plain))
    # keys whose value the user wrote come first, then those that interpolate another key (e.g.
    # scheduler.T_max: ${trainer.max_epochs}): the first line names the key the user set
    written = [(k, v) for k, v in found if "${" not in _at(raw, k)]
    for key, value in written + [kv for kv in found if kv not in written]:
        rule = rule_for(key)
        if rule is not None and not rule.accepts(value):
            source = _at(raw, key)
            came = f" (taken from {source}: pass {key}=... yourself)" if "${" in source else ""
            raise ConfigError(f"config: {key}={_show(value)}{came} is invalid; expected {rule.expected}")
    check_combinations(plain)


def unruled(cfg: DictConfig) -> list[str]:
    """The job's keys that no rule covers (e.g. ``optimizer.lambd`` of a config file a user added):
    they reach their class unchecked, so the app names them (a RULES line checks them)."""
    cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    plain = OmegaConf.to_container(cfg, resolve=False)
    return [key for key, _ in leaves(plain) if rule_for(key) is None]


def _at(container, key: str):
    for part in key.split("."):
        container = container[part]
    return container if isinstance(container, str) else ""


def check_combinations(cfg: dict) -> None:
    """Rules that involve two keys."""
    trainer = cfg.get("trainer") or {}
    data = cfg.get("data") or {}
    if trainer.get("max_epochs") == -1 and not trainer.get("max_time") and trainer.get("max_steps", -1) < 1:
        raise ConfigError(
            "config: trainer.max_epochs=-1 trains forever; give trainer.max_time (e.g. 00:01:00:00) or "
            "trainer.max_steps as well, or a number of epochs"
        )
    every, epochs = trainer.get("check_val_every_n_epoch"), trainer.get("max_epochs")
    if _is_int(every) and _is_int(epochs) and 1 <= epochs < every:
        raise ConfigError(
            f"config: trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs} never "
            "validates: no best checkpoint, no val/* metric for monitors, sweeps or a plateau schedule; "
            "validate at least once"
        )
    lo, hi = trainer.get("min_epochs"), trainer.get("max_epochs")
    if _is_int(lo) and _is_int(hi) and hi >= 1 and lo > hi:
        raise ConfigError(f"config: trainer.min_epochs={lo} is above trainer.max_epochs={hi}")
    optimizer = str((cfg.get("optimizer") or {}).get("_target_", ""))
    if str(trainer.get("precision")) in ("16-mixed", "16") and optimizer.endswith("LBFGS"):
        raise ConfigError(
            f"config: trainer.precision={trainer.get('precision')} scales the loss (AMP), which L-BFGS's "
            "line search cannot use; pick trainer.precision=bf16-mixed or 32-true, or another optimizer"
        )
    val, test = data.get("val_fraction"), data.get("test_fraction")
    if _is_number(val) and _is_number(test) and val + test >= 1:
        raise ConfigError(
            f"config: data.val_fraction={val} + data.test_fraction={test} leave no training rows; "
            "their sum must be below 1"
        )
    check_tuner(cfg)
    check_cuda_graph(cfg)


#: the optimizers whose step model.cuda_graph captures (lecturenn.training.fast_path.GRAPH_OPTIMIZERS)
GRAPH_OPTIMIZERS = ("torch.optim.Adam", "torch.optim.AdamW", "torch.optim.SGD")


def check_cuda_graph(cfg: dict) -> None:
    """``model.cuda_graph=true``: what a captured step cannot do, refused before any work (the
    module checks the Trainer again when training starts: lecturenn.training.fast_path.graph_reason)."""
    model = cfg.get("model") or {}
    if model.get("cuda_graph") is not True:
        return
    refuse = "config: model.cuda_graph=true "
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator not in ("auto", "gpu", "cuda"):
        raise ConfigError(refuse + f"needs a CUDA GPU, not trainer.accelerator={accelerator}: drop one")
    import torch  # only here: the check of every other key needs no torch

    if not torch.cuda.is_available():
        raise ConfigError(refuse + "needs a CUDA GPU and none is available here: set model.cuda_graph=false")
    several = _several_processes(trainer)
    if several:
        raise ConfigError(refuse + f"captures one process's step, not {several}: set model.cuda_graph=false")
    optimizer = str((cfg.get("optimizer") or {}).get("_target_", ""))
    if optimizer not in GRAPH_OPTIMIZERS:
        raise ConfigError(
            refuse + f"captures the step of {', '.join(GRAPH_OPTIMIZERS)}, not optimizer {optimizer} "
            "(L-BFGS and LAMB read numbers on the host during their step): pick one or set "
            "model.cuda_graph=false"
        )
    accumulate, clip = trainer.get("accumulate_grad_batches", 1), trainer.get("gradient_clip_val")
    for key, value, plain in (("accumulate_grad_batches", accumulate, 1), ("gradient_clip_val", clip, 0)):
        if value is not None and value != plain:  # Lightning's own loop only: no direct path
            raise ConfigError(refuse + f"replays whole steps, not trainer.{key}={_show(value)}: drop one")
    precision = str(trainer.get("precision", "32-true"))
    if precision not in ("32-true", "32", "64-true", "64"):
        raise ConfigError(refuse + f"needs trainer.precision=32-true or 64-true, not {precision}: drop one")
    path = model.get("fast_path", "direct")
    if path != "direct":
        raise ConfigError(refuse + f"replays the direct path's step, not model.fast_path={path}")
    if model.get("dropout"):
        raise ConfigError(refuse + "does not capture dropout (random numbers in the step): drop one")
    if (cfg.get("tuner") or {}).get("name"):
        raise ConfigError(refuse + "does not run with tuner=lr_find (a new rate every step): drop one")


TUNER_KEYS = sorted(k.split(".", 1)[1] for k in RULES if k.startswith("tuner."))


def check_tuner(cfg: dict) -> None:
    """``tuner=lr_find``: its keys, and the runs it cannot serve (scripts/tuning.py says why)."""
    tuner = cfg.get("tuner") or {}
    if not tuner:
        return
    if "name" not in tuner:
        key = sorted(tuner)[0]
        raise ConfigError(f"config: tuner.{key} is set but no tuner is chosen; pass tuner=lr_find as well")
    unknown = sorted(set(tuner) - set(TUNER_KEYS))
    if unknown:
        near = difflib.get_close_matches(unknown[0], TUNER_KEYS, n=1)
        hint = f"did you mean tuner.{near[0]}? " if near else ""
        raise ConfigError(
            f"config: tuner.{unknown[0]} is not a key of tuner=lr_find; {hint}"
            f"(its keys: {', '.join(TUNER_KEYS)})"
        )
    lo, hi = tuner.get("min_lr"), tuner.get("max_lr")
    if _is_number(lo) and _is_number(hi) and lo >= hi:
        raise ConfigError(f"config: tuner.min_lr={lo} must be below tuner.max_lr={hi}")
    refuse = "config: tuner=lr_find "
    optimizer = str((cfg.get("optimizer") or {}).get("_target_", ""))
    if optimizer.endswith("LBFGS"):
        raise ConfigError(
            refuse + "cannot sweep L-BFGS's lr: each of its steps runs up to optimizer.max_iter iterations "
            "(and its line search picks the step length), so a step's loss does not measure one rate; "
            "L-BFGS needs no lr search (lr 1 is its scale), or pick another optimizer"
        )
    trainer = cfg.get("trainer") or {}
    several = _several_processes(trainer)
    if several:
        raise ConfigError(
            refuse + f"runs in one process, not with {several}: find the rate with trainer=default "
            "(one device), then train with the printed optimizer.lr on several"
        )
    if cfg.get("ckpt_path"):
        raise ConfigError(
            refuse + "picks the rate a run starts with; a resumed run (ckpt_path) continues with its "
            "checkpoint's optimizer state: drop one of ckpt_path and tuner=lr_find"
        )
    if trainer.get("fast_dev_run"):
        raise ConfigError(refuse + "does not run with trainer.fast_dev_run (Lightning skips it): drop one")


def _several_processes(trainer: dict) -> str | None:
    """None when ``trainer`` runs one process on one device (what model.cuda_graph and tuner=lr_find
    need), else its keys that say otherwise: ``trainer.devices=… trainer.num_nodes=… trainer.strategy=…``."""
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    strategy = str(trainer.get("strategy") or "auto")
    one = devices == 1 or (isinstance(devices, (list, tuple)) and len(devices) == 1)
    if one and nodes == 1 and not any(s in strategy for s in ("ddp", "fsdp", "deepspeed")):
        return None
    return f"trainer.devices={_show(devices)} trainer.num_nodes={nodes} trainer.strategy={strategy}"


def _show(value) -> str:
    """The value as a user wrote it on the command line: YAML's true/false/null, repr otherwise."""
    if value is None or isinstance(value, bool):
        return {True: "true", False: "false", None: "null"}[value]
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
