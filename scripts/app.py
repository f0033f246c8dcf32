"""Helpers shared by the Hydra entry points (train.py, eval.py, predict.py)."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import hydra
import torch
from omegaconf import DictConfig


def fail(err: BaseException, code: int = 2):
    """One clear line on stderr and a non-zero exit (no traceback for a user's mistake)."""
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(code)


def instantiate_list(node: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``."""
    if not node:
        return []
    return [
        hydra.utils.instantiate(v) for v in node.values() if isinstance(v, DictConfig) and "_target_" in v
    ]


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
    return n


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


def quiet_third_party_noise() -> None:
    """Hide two messages that say nothing about the user's run: Lightning's advert for a cloud
    logger, and a torch-internal deprecation warning raised inside Lightning's pytree helper."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropMessages("litlogger"))
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
