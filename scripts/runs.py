"""Run directories and sweeps: one directory per run, never two runs' files mixed, a sweep summary.

* ``${run_stamp:}`` (used by ``conf/hydra/default.yaml``) is the start time plus six random hex
  digits, ``2026-11-30_06-40-12_3fa9c1``: two runs started in the same second get different
  directories. It is cached per config, and Hydra copies the cache into every job of a sweep, so a
  sweep's jobs (even in joblib workers) share one sweep directory.
* :class:`RunDirectories` (a Hydra callback, set in ``conf/train.yaml``) refuses, before anything
  is written, a run into a directory that already holds a run unless it resumes from a checkpoint
  inside that directory, and a sweep into a sweep directory that already holds jobs. A resume
  into its own directory keeps the earlier ``.hydra/*.yaml`` and ``metrics.json`` under
  ``.hydra/before-resume-N/``.
* :func:`sweep_job` runs one job of a multirun so that a failing job (bad config → exit 2,
  divergence → exit 3, a crash → traceback) is recorded in ``job.json`` instead of killing its
  siblings; ``RunDirectories.on_multirun_end`` prints a table of every job and exits with the
  first failed job's status.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import sys
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

JOB_FILE = "job.json"
RUN_FILES = (".hydra", "checkpoints", "metrics.json", "csv", "plots", JOB_FILE, "eval_metrics.json")


def run_stamp() -> str:
    """Start time to the second plus 6 random hex digits (16.7 million values per second)."""
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(3)}"


OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True, replace=True)


def strict_json(value) -> str:
    """JSON text with NaN/±inf written as null (plain ``json.dumps`` writes bare NaN/Infinity,
    which is not JSON and which strict parsers reject)."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=2, sort_keys=True, allow_nan=False) + "\n"


def holds_a_run(directory: Path) -> bool:
    """Whether ``directory`` already holds the files of a run (its config, checkpoints, logs)."""
    return any((directory / name).exists() for name in RUN_FILES)


def _refuse(message: str) -> None:
    for fd in _CLAIMS.values():  # a refused run leaves the directory to the next one
        os.close(fd)
    _CLAIMS.clear()
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


# the directories this process claimed, and their descriptors: held until it exits
_CLAIMS: dict[Path, int] = {}


def claim(directory: Path, what: str) -> None:
    """Hold an exclusive lock on ``directory`` (``flock`` on the directory itself: no file is written)
    for the rest of the process — released by the kernel however it ends, ``kill -9`` included — or
    refuse, exit 2, when another process holds it: two runs started together into one
    ``hydra.run.dir`` both passed the "already holds a run" check and mixed their checkpoints and
    logs until both crashed. Where ``flock`` is missing (Windows) nothing is locked. A directory this
    process holds already (an in-process caller running the app again) is its own."""
    try:
        import fcntl
    except ImportError:
        return
    if directory in _CLAIMS:
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        _refuse(
            f"{what} {directory} is in use by another run that is still running; wait for it to end, "
            "or leave hydra.run.dir/hydra.sweep.dir out to write into a new directory"
        )
    except OSError:  # a file system without locks (some network ones): nothing to hold
        os.close(fd)
        return
    _CLAIMS[directory] = fd


def writable_dir(config: DictConfig, key: str) -> Path:
    """The directory ``key`` (``hydra.run.dir`` or ``hydra.sweep.dir``), absolute, created now: one
    ``error:`` line and exit 2 when it cannot be — a file in the way, a read-only or foreign folder,
    a symbolic-link loop — rather than the traceback of Hydra's own ``mkdir`` just after; and for a
    path that starts with ``~``, which Hydra does not expand (it made a folder named ``~`` here)."""
    raw = str(OmegaConf.select(config, key))
    choose = f"choose another {key}"
    if raw.startswith("~"):
        _refuse(
            f"{key}={raw!r} starts with '~', which Hydra does not expand (it would create a folder "
            f"named '~' in {Path.cwd()}); write the path out, e.g. {key}={Path(raw).expanduser()}"
        )
    try:
        path = Path(raw).resolve()
    except (OSError, RuntimeError) as err:  # a symbolic-link loop (RuntimeError before Python 3.13)
        _refuse(f"{key} {raw}: {err}; {choose}")
    if path.exists() and not path.is_dir():
        _refuse(f"{key} {path} is a file, not a directory; {choose}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next((p for p in path.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            _refuse(f"cannot create {key} {path}: {blocker} is a file, not a directory; {choose}")
        if not Path(raw).is_absolute():  # the default outputs/... lives under the current directory
            choose += f", or run from a writable directory (a relative {key} is under {Path.cwd()})"
        _refuse(f"cannot create {key} {path}: {err.strerror or err}; {choose}")
    return path


class RunDirectories(Callback):
    """Hydra callback: one directory per run, and a summary at the end of a sweep.

    Args:
        resumable: whether a run may continue in its own directory (``train.py`` with a
            ``ckpt_path`` inside it); ``eval.py`` / ``predict.py`` always need a directory of their own.
    """

    def __init__(self, resumable: bool = True) -> None:
        self.resumable = resumable

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        if os.environ.get("LOCAL_RANK", "0") != "0":
            return  # a DDP worker that Lightning started for this same run (it re-runs the script)
        run_dir = writable_dir(config, "hydra.run.dir")
        claim(run_dir, "run directory")
        if not holds_a_run(run_dir):
            return
        if not self.resumable:
            _refuse(
                f"run directory {run_dir} already holds the files of another run; leave hydra.run.dir out "
                "to write into a new directory"
            )
        ckpt = config.get("ckpt_path")
        last = run_dir / "checkpoints" / "last.ckpt"
        if not ckpt and last.is_file():
            _refuse(
                f"run directory {run_dir} already holds a run; resume it with ckpt_path={last}, "
                "or leave hydra.run.dir out to start a new run in a new directory"
            )
        if not ckpt:
            _refuse(
                f"run directory {run_dir} already holds the files of a run that wrote no checkpoint (it "
                "failed or stopped before its first epoch ended); leave hydra.run.dir out to start a new run "
                "in a new directory, or delete that directory first"
            )
        if not Path(str(ckpt)).expanduser().resolve().is_relative_to(run_dir):
            _refuse(
                f"run directory {run_dir} holds another run than checkpoint {ckpt}; resume into a new "
                "directory (leave hydra.run.dir out) or into the checkpoint's own run directory"
            )
        previous = run_dir / ".hydra"
        if previous.is_dir():  # Hydra is about to overwrite the earlier part's config: keep it
            n = 1
            while (previous / f"before-resume-{n}").exists():
                n += 1
            keep = previous / f"before-resume-{n}"
            keep.mkdir()
            for path in [*previous.glob("*.yaml"), run_dir / "metrics.json"]:
                if path.is_file():  # the earlier part's config and final metrics
                    shutil.copy2(path, keep / path.name)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        complaint = tuner_sweep_complaint(config) or sweep_direction_complaint(config)
        if complaint:  # the config first: a refused sweep creates no directory
            _refuse(complaint)
        sweep_dir = writable_dir(config, "hydra.sweep.dir")
        claim(sweep_dir, "sweep directory")
        jobs = [p.parent for p in sweep_dir.glob("*/.hydra")] if sweep_dir.is_dir() else []
        if jobs:
            _refuse(
                f"sweep directory {sweep_dir} already holds {len(jobs)} job(s) of another sweep; "
                "leave hydra.sweep.dir out to sweep into a new directory"
            )

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir"))).resolve()
        records = []
        for path in sweep_dir.rglob(JOB_FILE):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                records.append({"job": path.parent.name, "status": "unreadable job.json"})
        if not records:
            return
        records.sort(key=lambda r: (isinstance(r.get("job"), str), r.get("job")))
        named = [r["metric"] for r in records if r.get("metric")]
        metric = named[0] if named else str(config.get("optimized_metric") or "metric")
        print(summary_table(records, metric, sweep_dir))
        failed = [r for r in records if r.get("status") != "completed"]
        if failed:
            code = failed[0].get("exit_code") or 1
            print(f"error: {len(failed)} of {len(records)} jobs failed (table above)", file=sys.stderr)
            raise SystemExit(code if isinstance(code, int) else 1)


def tuner_sweep_complaint(config: DictConfig) -> str | None:
    """Why a sweep (``-m``) cannot run with ``tuner=lr_find``, or None: without ``tuner.train=true``
    its jobs train nothing (no metric for the sweeper); with it, a swept ``optimizer.lr`` (on the
    command line or in ``hydra.sweeper.params``) would be replaced by each job's suggestion."""
    tuner = config.get("tuner") or {}
    if not tuner:
        return None
    if not tuner.get("train"):
        return (
            "config: tuner=lr_find in a sweep (-m) only suggests a rate in each job and trains nothing, so "
            "the sweeper gets no metric; run it once without -m, or add tuner.train=true to train every "
            "job with its own suggestion"
        )
    if "optimizer.lr" in _swept_keys(config.get("hydra") or {}):
        return (
            "config: tuner=lr_find tuner.train=true replaces optimizer.lr with each job's suggestion, so "
            "a sweep must not set optimizer.lr; sweep one or the other"
        )
    return None


def summary_table(records: list[dict], metric: str, sweep_dir: Path) -> str:
    """One row per job: number, status, the optimized metric, the overrides (and the error)."""
    common = set.intersection(*(set(r.get("overrides", [])) for r in records)) if len(records) > 1 else set()
    header = "overrides" + (f" (all jobs also: {' '.join(sorted(common))})" if common else "")
    lines = [f"sweep summary: {sweep_dir}", f"  {'job':>4}  {'status':<12}  {metric:>14}  {header}"]
    for r in records:
        status = r.get("status", "?")
        if r.get("exit_code"):
            status = f"{status} ({r['exit_code']})"
        value = r.get("value")
        shown = f"{value:.6g}" if isinstance(value, (int, float)) else "-"
        varied = " ".join(o for o in r.get("overrides", []) if o not in common)
        line = f"  {r.get('job', '?')!s:>4}  {status:<12}  {shown:>14}  {varied}"
        if r.get("error"):
            line += f"\n{'':24}{r['error']}"
        lines.append(line)
    return "\n".join(lines)


def sweep_job(cfg: DictConfig, run: Callable[[DictConfig], dict]) -> float | None:
    """Run one job of a sweep; record its outcome in ``<job dir>/job.json`` instead of raising.

    A user error (``SystemExit`` from ``fail``: exit 2, or 3 for divergence) or a crash (its
    traceback is printed) must not abort the launcher, which would kill the sibling jobs. Returns
    the optimized metric; for a failed job the worst value for an Optuna sweep (see ``_worst``).
    """
    hydra_cfg = HydraConfig.get()
    name = cfg.get("optimized_metric")
    record = {"job": hydra_cfg.job.num, "overrides": list(hydra_cfg.overrides.task), "metric": name}
    value = None
    try:
        metrics = run(cfg)
        name = metrics.get("optimized_metric") or name  # null: the task's own (train.py)
        value = metrics.get(name) if name else None
        record.update(status="completed", exit_code=0, value=value, metric=name)
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
        message = getattr(err, "message", None)
        record.update(status="completed" if code == 0 else "failed", exit_code=code, error=message)
    except Exception as err:  # a genuine bug: show its traceback, keep the siblings running
        traceback.print_exc()
        record.update(status="crashed", exit_code=1, error=f"{type(err).__name__}: {err}")
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / JOB_FILE).write_text(strict_json(record))
    if record["status"] != "completed":
        return _worst(hydra_cfg)
    return None if value is None else float(value)


def _worst(hydra_cfg) -> float | None:
    """What a failed job returns to its sweeper: the worst value for Optuna (a finite trial keeps
    the study going and gives it a best trial even when every job failed; its plugin crashes on NaN,
    and on None or an exception it stops the whole sweep), nothing for the launchers that ignore it."""
    direction = hydra_cfg.sweeper.get("direction")
    if direction == "maximize":
        return float("-inf")
    if direction == "minimize":
        return float("inf")
    return None


# metrics a sweep should maximise; every other logged metric (loss, mse, mae) is minimised
_HIGHER_IS_BETTER = ("acc", "f1", "auroc", "r2")


def check_sweep_direction(metric: str) -> str | None:
    """A one-line complaint when the sweeper (Optuna) optimises ``metric`` in the wrong direction (a job's
    check, for the task's own metric; an explicit ``optimized_metric`` is checked once for the whole
    sweep by :func:`sweep_direction_complaint`)."""
    try:
        direction = HydraConfig.get().sweeper.get("direction")
    except ValueError:  # no Hydra config
        return None
    return direction_complaint(metric, direction)


def sweep_direction_complaint(config: DictConfig) -> str | None:
    """Before any job: an explicit ``optimized_metric`` that the sweeper's ``direction`` would optimise
    the wrong way (every job would fail alike, 20 lines for a 20-trial Optuna sweep). The task's own
    metric (``optimized_metric: null``) depends on the data, so each job checks it; a swept
    ``optimized_metric`` too."""
    metric = config.get("optimized_metric")
    hydra = config.get("hydra") or {}
    sweeper = hydra.get("sweeper") or {}
    if not metric or "optimized_metric" in _swept_keys(hydra, sweeps_only=True):
        return None
    return direction_complaint(str(metric), sweeper.get("direction"))


def _swept_keys(hydra, sweeps_only: bool = False) -> list[str]:
    """The keys a sweep sets: the command line's overrides (with ``sweeps_only``, those that sweep:
    ``a,b``, ``range(...)``, ``choice(...)``) and the sweeper's ``params``."""
    task = list((hydra.get("overrides") or {}).get("task") or [])
    params = (hydra.get("sweeper") or {}).get("params") or {}
    if sweeps_only:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create()
        task = [o for o in task if _is_sweep(parser, o)]
    return [o.split("=", 1)[0].lstrip("+~") for o in task] + [str(k) for k in params]


def _is_sweep(parser, override: str) -> bool:
    try:
        return parser.parse_override(override).is_sweep_override()
    except Exception:  # noqa: BLE001 — what Hydra's grammar cannot read, Hydra reports
        return False


def direction_complaint(metric: str, direction) -> str | None:
    """The one comparison: ``direction`` ("maximize"/"minimize", else no sweeper that has one) against
    what is better for ``metric`` (higher for acc, f1, auroc, r2; lower for every other metric)."""
    if not isinstance(direction, str):
        return None
    base = metric.rsplit("/", 1)[-1].removesuffix("_best")
    wanted = "maximize" if base in _HIGHER_IS_BETTER else "minimize"
    if direction != wanted:
        return (
            f"config: hydra.sweeper.direction={direction} but optimized_metric {metric} is better when "
            f"{'higher' if wanted == 'maximize' else 'lower'}; pass hydra.sweeper.direction={wanted}"
        )
    return None


def is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # no Hydra config (called outside @hydra.main)
        return False
