"""Helpers shared by the Hydra entry points (train.py, eval.py, predict.py)."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from runs import run_stamp  # noqa: F401  (registers the ${run_stamp:} resolver of conf/hydra)

from lecturenn.runtime import configure_malloc


class Failed(SystemExit):
    """``SystemExit(code)`` that keeps its one-line message (a sweep's summary table shows it)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(code)
        self.message = message


def fail(err: BaseException, code: int = 2):
    """One clear line on stderr and a non-zero exit (no traceback for a user's mistake)."""
    message = f"error: {err}"
    print(message, file=sys.stderr)
    raise Failed(message, code)


def instantiate_list(node: DictConfig | None, resume: bool = False) -> list:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``.

    With ``resume``, a CSV logger whose log directory already holds a metrics file writes to a new
    ``resume-N`` version instead (Lightning's CSVLogger would otherwise delete the earlier log).
    """
    if not node:
        return []
    objects = []
    for v in node.values():
        if not (isinstance(v, DictConfig) and "_target_" in v):
            continue
        kwargs = {}
        if resume and v._target_.endswith("CSVLogger"):
            base = Path(v.save_dir) / (v.get("name") or "")
            if (base / str(v.get("version") or "") / "metrics.csv").exists():
                n = 1
                while (base / f"resume-{n}").exists():
                    n += 1
                kwargs["version"] = f"resume-{n}"
        objects.append(hydra.utils.instantiate(v, **kwargs))
    return objects


def parallel_jobs(cfg: DictConfig) -> int:
    """How many jobs this process shares the machine with (joblib launcher workers)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        launcher = HydraConfig.get().launcher
        if "joblib" in str(launcher.get("_target_", "")).lower():
            n_jobs = int(launcher.get("n_jobs") or 1)
            return n_jobs if n_jobs > 0 else len(os.sched_getaffinity(0))
    except (ValueError, AttributeError):  # no Hydra config (called outside @hydra.main)
        pass
    return 1


def configure_threads(cfg: DictConfig) -> int:
    """``threads: auto`` shares the cores among parallel sweep jobs; an int sets it outright.

    Oversubscribed OpenMP threads spin while descheduled: on this 2-core machine a small net's step
    went from 0.56 ms to 23 ms with another busy process. (Lightning's DDP processes divide the
    cores again in ``ThetaMLPModule.setup``.)
    """
    threads = cfg.get("threads", "auto")
    cores = len(os.sched_getaffinity(0))
    n = max(1, cores // parallel_jobs(cfg)) if threads in (None, "auto") else int(threads)
    if n < 1:
        fail(ValueError(f"threads must be 'auto' or an int >= 1, got {threads!r}"))
    torch.set_num_threads(n)
    configure_malloc()  # steady large-block reuse: no page-fault storms in the training loop
    return n


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


def quiet_third_party_noise() -> None:
    """Hide messages that say nothing about the user's run: Lightning's advert for a cloud logger, a
    torch-internal deprecation warning raised inside Lightning's pytree helper, and Lightning's
    warning that a resumed run's checkpoint directory is not empty."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropMessages("litlogger"))
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # A run's checkpoint directory is its own (runs.RunDirectories refuses a second run into it), so
    # it is non-empty only when a run resumes into it — the documented way, not a mistake.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def validate_config(cfg: DictConfig) -> None:
    """Reject a bad training config before any work, naming the offending key (exit code 2)."""
    from numbers import Integral, Real

    from lecturenn.activations import ACTIVATIONS
    from lecturenn.network import BACKPROPS
    from lecturenn.theta import INITS

    def number(v) -> bool:
        return isinstance(v, Real) and not isinstance(v, bool)

    def integer(v) -> bool:
        return isinstance(v, Integral) and not isinstance(v, bool)

    model, data, optimizer = cfg.get("model") or {}, cfg.get("data") or {}, cfg.get("optimizer") or {}
    trainer = cfg.get("trainer") or {}

    def widths(v) -> bool:
        return v is not None and all(integer(s) and s >= 1 for s in v)

    def positive_or_full(v) -> bool:
        return v is None or (integer(v) and (v >= 1 or v == -1))

    checks = [  # (key, value, predicate, what is expected)
        ("model.hidden_sizes", model.get("hidden_sizes"), widths, "a list of positive layer widths"),
        (
            "model.activation",
            model.get("activation"),
            ACTIVATIONS.__contains__,
            f"one of {sorted(ACTIVATIONS)}",
        ),
        ("model.backprop", model.get("backprop"), BACKPROPS.__contains__, f"one of {list(BACKPROPS)}"),
        ("model.init", model.get("init"), INITS.__contains__, f"one of {list(INITS)}"),
        ("model.lam", model.get("lam"), lambda v: number(v) and v >= 0, "a number >= 0 (λ)"),
        (
            "model.dropout",
            model.get("dropout", 0.0),
            lambda v: number(v) and 0 <= v < 1,
            "a number in [0, 1)",
        ),
        ("optimizer.lr", optimizer.get("lr", 1.0), lambda v: number(v) and v > 0, "a number > 0"),
        (
            "data.batch_size",
            data.get("batch_size", -1),
            positive_or_full,
            "a positive int, or -1 (full batch)",
        ),
        ("trainer.max_epochs", trainer.get("max_epochs", 1), positive_or_full, "a positive int"),
        ("seed", cfg.get("seed", 0), lambda v: v is None or integer(v), "an int"),
    ]
    for key, value, ok, expected in checks:
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            fail(ValueError(f"config: {key}={value!r} is invalid; expected {expected}"))
