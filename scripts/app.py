"""Helpers shared by the Hydra entry points (train.py, eval.py, predict.py)."""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import sys
import warnings
from pathlib import Path

import hydra
import schema
from omegaconf import DictConfig
from runs import run_stamp  # noqa: F401  (registers the ${run_stamp:} resolver of conf/hydra)


class Failed(SystemExit):
    """``SystemExit(code)`` that keeps its one-line message (a sweep's summary table shows it)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(code)
        self.message = message


def fail(err: BaseException | str, code: int = 2):
    """One clear line on stderr and a non-zero exit (no traceback for a user's mistake)."""
    message = f"error: {err}"
    if _UNREGISTERED in message:  # a name no registry knows: maybe a plugin was not passed
        message += f"; {PLUGIN_HINT}"
    _close_progress_bars()  # else the line is glued to the end of a half-drawn bar
    print(message, file=sys.stderr)
    _to_log_file(message, logging.ERROR)
    raise Failed(message, code)


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def check_group_choices(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Each config-group override on the command line (``optimizer=adam``, ``optimizer_batch=gd``, a
    sweep ``optimizer=adam,sgd``) names an option of that group, checked before Hydra composes: Hydra
    shows a traceback for ``group=null`` and silently ignores a typo in an ``optional`` group
    (``optimizer_batch``); its other composition errors exit 1. One line naming the group, the value
    and the options, exit 2 (:func:`fail`). Hydra's own flags and groups and deletions (``~group``)
    are left to Hydra. An override its grammar cannot read — a path with non-ASCII letters, ``=``,
    ``,``, brackets, quotes or a leading ``~``, unquoted — is one line too, with the quoted form to
    pass (Hydra printed its lexer's exception, exit 1)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for previous, arg in zip(["", *argv], argv, strict=False):
        if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
            continue  # --multirun, -m, --config-name NAME, ...
        if previous in _FLAGS_WITH_A_VALUE:
            continue  # --config-dir /a=b: a flag's value, not an override
        try:
            override = parser.parse_override(arg)
        except Exception as err:  # noqa: BLE001 — the grammar's errors are HydraExceptions of several kinds
            fail(_unreadable_override(parser, arg, err, sweep=bool({"-m", "--multirun"} & set(argv))))
        try:
            values = (
                list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
            )
        except Exception:  # noqa: BLE001 — glob(): Hydra expands it
            continue
        group = override.key_or_group
        folder = conf_dir / group
        if group.startswith("hydra") or override.is_delete() or not folder.is_dir():
            continue
        options = sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))
        for value in values:
            if value is None:
                fail(
                    f"config: {arg}: the config group {group!r} takes an option name, not null "
                    f"(one of {', '.join(options)}); to drop it write ~{group}"
                )
            if not isinstance(value, str) or value not in options:
                fail(
                    f"config: {arg}: the config group {group!r} has no option {value!r}; "
                    f"choose one of {', '.join(options)}"
                )


# Hydra's command-line flags whose next argument is their value (hydra/_internal/utils.get_args_parser)
_FLAGS_WITH_A_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c"}
_FLAGS_WITH_A_VALUE |= {"--package", "-p", "--info", "-i", "--experimental-rerun"}


def _unreadable_override(parser, arg: str, err: BaseException, sweep: bool = False) -> str:
    """The one-line complaint about an override Hydra's grammar cannot read, with the value quoted
    for Hydra when that form reads back as the value the user meant (in a sweep not when it has a
    comma: quoting it whole would make one value of the sweep's list)."""
    reason = " ".join(str(err).split()) or type(err).__name__
    message = f"config: cannot read the override {arg!r} ({reason})"
    key, _, value = arg.partition("=")
    quoted = f"{key}='{value.replace(chr(39), chr(92) + chr(39))}'"
    try:
        readable = parser.parse_override(quoted).value() == value and not (sweep and "," in value)
    except Exception:  # noqa: BLE001 — the key itself is unreadable: no quoting helps
        readable = False
    if readable and not any(c in quoted for c in '$"`'):
        return f'{message}; quote the value for Hydra: "{quoted}" (the outer quotes are for the shell)'
    if readable:
        return f"{message}; quote the value for Hydra: {quoted} (itself quoted for the shell)"
    return f"{message}; see https://hydra.cc/docs/advanced/override_grammar/basic/ for quoting"


# lecturenn.registry.Registry.lookup's words for a name no registry knows
_UNREGISTERED = "(or register it first)"
PLUGIN_HINT = (
    "if a plugin registers it, pass plugins=[<module>] on the command line (a run directory's "
    "stored config never imports code)"
)


def load_plugins(cfg: DictConfig) -> list[str]:
    """Import the modules listed in ``plugins`` so that the activations and heads they register
    (``lecturenn.register_activation`` / ``register_head``) exist before the config is checked.

    ``plugins`` is a list of dotted module paths importable from the Python path (``PYTHONPATH=.``
    for a file ``./my_plugin.py``). Only the config composed for this process is read — conf/*.yaml
    and the command line; eval.py and predict.py never read ``plugins`` from a run directory's
    stored config (a file on disk must not choose code to run), so pass it to them again. A value
    that is not such a list, or a module that fails to import, is one line and exit 2.
    """
    from omegaconf import ListConfig

    try:
        names = cfg.get("plugins") or []
    except Exception:  # an interpolation that does not resolve: the config check reports it
        return []
    names = list(names) if isinstance(names, ListConfig) else names
    rule = schema.RULES["plugins"]
    if not rule.accepts(names):
        fail(f"config: plugins={names!r} is invalid; expected {rule.expected}")
    for i, name in enumerate(names):
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as err:  # the plugin's own code: its error, in one line
            what = f"called sys.exit({err.code!r})" if isinstance(err, SystemExit) else type(err).__name__
            fail(
                f"config: plugins[{i}]={name!r} could not be imported: {what}: "
                f"{' '.join(str(err).split())} (python -c 'import {name}' shows the traceback)"
            )
    return list(names)


def _close_progress_bars() -> None:
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        bar.close()


def say(text: str) -> None:
    """A line for the user: printed on stdout and kept in the run's ``<task_name>.log``."""
    print(text)
    _to_log_file(text, logging.INFO)


def _to_log_file(text: str, level: int) -> None:
    record = logging.LogRecord("lecturenn", level, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:  # Hydra's file handler (conf/hydra/job_logging)
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def instantiate_list(node: DictConfig | None, resume: bool = False) -> list:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``.

    With ``resume``, a CSV logger whose log directory already holds a metrics file writes to a new
    ``resume-N`` version instead (Lightning's CSVLogger would otherwise delete the earlier log).
    """
    if not node:
        return []
    objects = []
    for name, v in node.items():
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
        objects.append(instantiate_group(node._get_full_key(name), v, **kwargs))
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

    ``auto`` follows ``OMP_NUM_THREADS`` when it is set (a cluster's job script, a parallel test
    runner), else the cores this process may use divided by the parallel jobs.

    Oversubscribed OpenMP threads spin while descheduled: on this 2-core machine a small net's step
    went from 0.56 ms to 23 ms with another busy process. (Lightning's DDP processes divide the
    cores again in ``ThetaMLPModule.setup``.)
    """
    import torch

    from lecturenn.runtime import configure_malloc

    threads = cfg.get("threads", "auto")
    cores = len(os.sched_getaffinity(0))
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if threads not in (None, "auto"):
        n = int(threads)  # checked by the schema: an int >= 1
    elif omp.isdigit() and int(omp) >= 1:
        n = int(omp)
    else:
        n = max(1, cores // parallel_jobs(cfg))
    torch.set_num_threads(n)
    configure_malloc()  # steady large-block reuse: no page-fault storms in the training loop
    return n


def trains_on_cuda(cfg: DictConfig) -> bool:
    """Whether ``cfg.trainer`` puts the model on a CUDA GPU (``auto`` when one is visible)."""
    import torch

    accelerator = str((cfg.get("trainer") or {}).get("accelerator", "auto"))
    return accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()


def configure_matmul_precision(cfg: DictConfig) -> str:
    """``matmul_precision`` (auto | highest | high | medium) applied for this process with
    :func:`lecturenn.training.precision.set_matmul_precision` (auto: ``high`` = TF32 when the trainer
    runs on CUDA, ``highest`` elsewhere); returns the value in effect. Call before building the model."""
    from lecturenn.training.precision import set_matmul_precision

    return set_matmul_precision(str(cfg.get("matmul_precision") or "auto"), cuda=trains_on_cuda(cfg))


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


def route_lightning_logs_to_root() -> None:
    """Lightning's log lines once on the console and in the run's ``<task_name>.log``.

    ``import lightning`` gives the "lightning" logger a console handler of its own, and
    "lightning.pytorch" / "lightning.fabric" one each (with ``propagate=False``) when the root
    logger has no handler yet. Imported after Hydra configured the root logger (console + file,
    conf/hydra/job_logging/lecturenn.yaml), every Lightning line was printed twice; imported before,
    none reached the log file. Call after importing Lightning: its loggers' console handlers go and
    their records propagate to the root logger. Without root handlers (no Hydra) nothing changes.
    """
    if not logging.getLogger().handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # a console handler (a FileHandler stays)
                logger.removeHandler(handler)
        logger.propagate = True


def quiet_third_party_noise() -> None:
    """Hide messages that say nothing about the user's run: Lightning's advert for a cloud logger, a
    torch-internal deprecation warning raised inside Lightning's pytree helper, and Lightning's
    warning that a resumed run's checkpoint directory is not empty."""
    route_lightning_logs_to_root()
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropMessages) for f in rank_zero.filters):  # once per process (sweeps)
        rank_zero.addFilter(_DropMessages("litlogger", "litmodels"))
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # A run's checkpoint directory is its own (runs.RunDirectories refuses a second run into it), so
    # it is non-empty only when a run resumes into it — the documented way, not a mistake.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def validate_config(cfg: DictConfig) -> None:
    """Reject a bad config before any work, naming the offending key (exit code 2): see schema.py.
    Also: an interpolation that cannot be resolved (``seed=${oc.env:NOPE}``), and a ``ckpt_path``
    that is not a file (a leading ``~`` is expanded in ``cfg`` for what follows)."""
    try:
        schema.check(cfg)
    except schema.ConfigError as err:
        fail(err)
    unchecked = schema.unruled(cfg)
    if unchecked:  # e.g. a conf/optimizer/<name>.yaml a user added: its class is the only check
        say(
            f"note: config: no rule in scripts/schema.py checks {', '.join(unchecked)} before the run "
            "(only the class that takes it will; a RULES line checks it before any work)"
        )
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None:
        path = Path(ckpt).expanduser()
        if path.is_dir():
            fail(f"config: ckpt_path={ckpt!r} is a directory; name a checkpoint file in it (e.g. last.ckpt)")
        from lecturenn.validation import why_not_a_file

        reason = why_not_a_file(path)
        if reason:
            fail(f"config: ckpt_path={ckpt!r} {reason}")
        cfg.ckpt_path = str(path)  # '~' expanded: Lightning's resume and the messages read this one


def draw_seed(cfg: DictConfig) -> bool:
    """``seed: null`` draws a seed so the run can be repeated (the caller prints and records it);
    returns whether it drew one. A seed that is an interpolation is left for the config check."""
    from omegaconf import OmegaConf

    if OmegaConf.to_container(cfg, resolve=False).get("seed", 0) is None:
        cfg.seed = secrets.randbelow(2**31)
        return True
    return False


# Exceptions that a class raises for a bad argument (a user's config), not for a bug in our code.
_ARGUMENT_ERRORS = (ValueError, TypeError, ImportError)


def instantiate_group(group: str, node, **kwargs):
    """``hydra.utils.instantiate(node)``, with a bad argument reported as one line naming the group
    (``config: data: val_fraction must be in (0, 1); got 1.2``); any other error is a bug and keeps
    its traceback. The library gets plain Python arguments (``_convert_="all"``: lists and dicts, not
    OmegaConf's ListConfig/DictConfig) — e.g. Adam's ``betas`` are stored in its state and so in every
    checkpoint, which ``torch.load(weights_only=True)`` must read back (torch 2.4's Adam kept the
    ListConfig: no checkpoint of the app could be loaded there)."""
    from hydra.errors import InstantiationException

    kwargs.setdefault("_convert_", "all")
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if cause is None and "Error locating target" in str(err):  # a _target_ that does not exist
            raise schema.ConfigError(f"config: {group}._target_: {str(err).splitlines()[0]}") from None
        if isinstance(cause, _ARGUMENT_ERRORS) or _is_misconfiguration(cause):
            raise schema.ConfigError(f"config: {group}: {_one_line(cause)}") from None
        raise
    except _ARGUMENT_ERRORS as err:  # raised outside Hydra's wrapper (a nested target)
        raise schema.ConfigError(f"config: {group}: {_one_line(err)}") from None


def _is_misconfiguration(err) -> bool:
    return type(err).__name__ == "MisconfigurationException"  # Lightning's; no import needed here


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def check_network_fits(sizes: list[int], cfg: DictConfig) -> None:
    """Refuse layer sizes whose Θ cannot fit in memory, before allocating them: Θ, its gradient and
    two optimizer moments in ``precision``'s bytes against the machine's memory (the GPU's when
    training on one) — :func:`lecturenn.memory.check_theta_fits`."""
    from lecturenn.memory import check_theta_fits

    itemsize = 8 if str(cfg.trainer.get("precision", "32-true")).startswith("64") else 4
    device = "cuda" if trains_on_cuda(cfg) else "cpu"
    try:
        check_theta_fits(sizes, itemsize, device, f"config: model.hidden_sizes={list(sizes[1:-1])}")
    except ValueError as err:
        raise schema.ConfigError(str(err)) from None


def check_metric_names(cfg: DictConfig, names: list[str]) -> None:
    """Every ``monitor`` and the ``optimized_metric`` must name a metric the model logs.

    Callbacks that watch a metric (checkpoint, early stopping) run after a validation, so they may
    watch ``val/*``; a plateau scheduler is stepped at the end of a training epoch and may watch
    ``train/*`` too; a sweep may optimise any ``val/*`` metric.
    """
    val = [n for n in names if n.startswith("val/")]
    train = [n for n in names if n.startswith("train/")]
    watched = [
        (f"callbacks.{name}.monitor", node.get("monitor"), val)
        for name, node in (cfg.get("callbacks") or {}).items()
        if isinstance(node, DictConfig) and node.get("monitor") is not None
    ]
    scheduler = cfg.get("scheduler") or {}
    if "ReduceLROnPlateau" in str(scheduler.get("_target_", "")):
        watched.append(("model.scheduler_monitor", cfg.model.get("scheduler_monitor"), val + train))
    if cfg.get("optimized_metric") is not None:
        watched.append(("optimized_metric", cfg.optimized_metric, val))
    for key, metric, allowed in watched:
        if metric not in allowed:
            raise schema.ConfigError(
                f"config: {key}={metric!r} is not a metric this run logs; choose one of {', '.join(allowed)}"
            )
