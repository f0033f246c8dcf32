import os
import re
import sys
from pathlib import Path

import pytest
import torch

# the entry points' helpers (scripts/app.py, runs.py, train.py) import each other by module name, and so
# do the benchmarks (benchmarks/gpu_check.py imports bench.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: N workers share the cores. One torch thread each, here and in the entry points
    # the tests start (threads: auto follows OMP_NUM_THREADS): oversubscribed OpenMP threads spin
    # while descheduled and make small steps tens of times slower.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


# The Hydra app's packages (hydra-core, omegaconf, antlr4) are missing on a bare GPU box (scripts/gpu_check.sh
# runs `pytest -m cuda` there). The modules that import them at top level skip themselves
# (pytest.importorskip); one that reaches them only through scripts/ (e.g. `from runs import ...`) fails
# at import instead: report that as a skip too, so that `pytest -m cuda` collects the rest.
_APP_ONLY = re.compile(r"ModuleNotFoundError: No module named '(hydra|omegaconf|antlr4)[.']")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.failed and isinstance(collector, pytest.Module):
        missing = _APP_ONLY.search(str(report.longrepr))
        if missing:
            report.outcome = "skipped"
            reason = f"Skipped: needs {missing.group(1)} (the Hydra app)"
            report.longrepr = (str(collector.path), None, reason)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- the app's training runs on iris (test_fast_path, test_training_loop, test_step_graph_app, ...) --------
@pytest.fixture
def quiet_lightning():
    """Lightning's info lines and every warning silenced for one test (use: pytestmark)."""
    import logging
    import warnings

    names = ("lightning", "lightning.pytorch", "lightning.fabric")
    levels = [logging.getLogger(n).level for n in names]
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    for n, level in zip(names, levels):
        logging.getLogger(n).setLevel(level)


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script_env(**extra) -> dict:
    """This process's environment with Hydra's one-line errors, no warnings, and ``extra``."""
    return {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore", **extra}


def run_script(script, *args, cwd, env=None, timeout=300):
    """``python scripts/<script> args...`` as a user runs it, from ``cwd``; ``env`` defaults to
    :func:`script_env`."""
    import subprocess

    if env is None:
        env = script_env()
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def interrupt_training(args, last, signum, cwd):
    """Start ``train.py args`` from ``cwd``, send ``signum`` once its first ``last`` checkpoint exists
    (the signal's default action restored, as from a terminal); returns (exit status, stderr)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "train.py"), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not last.exists():
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def load_script(path, name: str):
    """The Python file at ``path`` (a benchmark script, not a package module) imported as ``name``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_for(info, **module_kw):
    """A ThetaMLPModule for a set-up data module's ``info`` (DataInfo): its s_1, K, task and
    ``data_info`` from it, everything else from ``module_kw``."""
    from lecturenn.training import ThetaMLPModule

    return ThetaMLPModule(info.n_features, info.n_outputs, info.task, data_info=info.to_dict(), **module_kw)


def iris_module(batch_size=8, steps_per_execution=8, optimizer=None, **module_kw):
    """(model, data module): a 4-6-3 ThetaMLPModule on iris (105 training rows), λ = 0.5, Θ from
    init_seed 0, SGD (lr 0.2, momentum 0.9) unless ``optimizer`` is given; ``torch.manual_seed(0)``
    first, so that two calls train bitwise alike."""
    import functools

    from lecturenn.data import SklearnDataModule

    torch.manual_seed(0)
    dm = SklearnDataModule("iris", batch_size=batch_size, seed=0)
    dm.setup()
    info = dm.info
    model = module_for(
        info,
        hidden_sizes=[6],
        lam=0.5,
        init_seed=0,
        steps_per_execution=steps_per_execution,
        optimizer=optimizer or functools.partial(torch.optim.SGD, lr=0.2, momentum=0.9),
        **module_kw,
    )
    return model, dm


def bare_trainer(epochs, callbacks=(), accelerator="cpu", **trainer_kw):
    """A one-device Lightning Trainer with nothing but the loop: no logger, checkpoints, progress bar,
    model summary or sanity validation."""
    import lightning as L

    return L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
        **trainer_kw,
    )
