"""What the entry points print and log: every log line once, no advertisements, a run log that
holds the run's lines (conf/hydra/job_logging/lecturenn.yaml, eval.route_lightning_logs_to_root),
and no "setup plugin alembic..." chatter before an Optuna sweep (conf/hydra/hydra_logging)."""

from __future__ import annotations

import functools
import logging
import logging.config
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("hydra")  # the Hydra app: skipped where hydra-core is missing (a bare GPU box)
pytest.importorskip("omegaconf")

import eval as eval_script  # scripts/eval.py (tests/conftest.py puts scripts/ on sys.path)
import torch
from conftest import module_for
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
# Lightning's console format ("INFO: ...") and the file format: the same record written twice looked
# like two different lines
_PREFIX = re.compile(r"^(INFO: |WARNING: |\[[^]]*\]\[[^]]*\]\[[A-Z]+\] - )")


def repeated_lines(text: str) -> list[str]:
    """The log lines (prefixes stripped) that appear more than once."""
    seen: dict[str, int] = {}
    for line in text.splitlines():
        message = _PREFIX.sub("", line).strip()
        if message:
            seen[message] = seen.get(message, 0) + 1
    return [m for m, n in seen.items() if n > 1]


# -- the configs -----------------------------------------------------------------------------------
def hydra_node(config: str = "train", overrides=()):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config, overrides=list(overrides), return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg.hydra


@pytest.mark.parametrize("config", ["train", "eval", "predict"])
def test_every_entry_point_uses_the_project_logging(config):
    overrides = {"train": [], "eval": ["ckpt_path=x"], "predict": ["ckpt_path=x", "input=y"]}[config]
    hydra = hydra_node(config, overrides)
    job = OmegaConf.to_container(hydra.job_logging, resolve=False)
    assert job["handlers"]["file"]["filename"] == "${hydra.runtime.output_dir}/${hydra.job.name}.log"
    assert job["root"]["handlers"] == ["console", "file"]
    for name in LIGHTNING_LOGGERS:
        assert job["loggers"][name] == {"level": "INFO", "handlers": [], "propagate": True}
    assert job["loggers"]["alembic"]["level"] == "WARNING"
    assert hydra.hydra_logging.loggers.alembic.level == "WARNING"


@pytest.fixture
def logging_state():
    """Restore the logging configuration the tests below replace."""
    names = (*LIGHTNING_LOGGERS, "alembic", "alembic.runtime.plugins", "lecturenn")
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    loggers = {n: logging.getLogger(n) for n in names}
    saved = {n: (list(lg.handlers), lg.level, lg.propagate, lg.disabled) for n, lg in loggers.items()}
    yield
    root.handlers[:] = saved_root[0]
    root.setLevel(saved_root[1])
    for n, (handlers, level, propagate, disabled) in saved.items():
        lg = logging.getLogger(n)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate, lg.disabled = propagate, disabled


def job_logging(tmp_path) -> dict:
    node = OmegaConf.load(CONF / "hydra" / "job_logging" / "lecturenn.yaml")
    node.handlers.file.filename = str(tmp_path / "train.log")
    return OmegaConf.to_container(node)


def lightning_console() -> logging.Handler:
    """The handler `import lightning` gives the "lightning" logger (lightning/__init__.py)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    return handler


def emit_lightning_and_own_lines() -> None:
    logging.getLogger("lightning.pytorch.utilities.rank_zero").info("GPU available: False, used: False")
    logging.getLogger("lecturenn.somewhere").info("a lecturenn message")


@pytest.mark.parametrize("lightning_first", [True, False], ids=["imported-before-hydra", "imported-after"])
def test_each_log_line_once_on_the_console_and_in_the_run_log(
    tmp_path, capsys, logging_state, lightning_first
):
    pytorch = logging.getLogger("lightning.pytorch")
    if lightning_first:  # what `import lightning` leaves behind when the root logger has no handler yet
        logging.getLogger("lightning").addHandler(lightning_console())
        pytorch.addHandler(logging.StreamHandler())
        pytorch.propagate = False
    logging.config.dictConfig(job_logging(tmp_path))  # what Hydra does before the task function
    if not lightning_first:  # `import lightning` inside the task function, after Hydra's configuration
        logging.getLogger("lightning").addHandler(lightning_console())
    eval_script.route_lightning_logs_to_root()  # eval.py, right after its Lightning import
    emit_lightning_and_own_lines()
    for handler in logging.getLogger().handlers:
        handler.flush()

    err = capsys.readouterr().err
    assert err.splitlines() == ["GPU available: False, used: False", "a lecturenn message"]
    log = (tmp_path / "train.log").read_text()
    assert "[lightning.pytorch.utilities.rank_zero][INFO] - GPU available: False, used: False" in log
    assert "[lecturenn.somewhere][INFO] - a lecturenn message" in log
    assert repeated_lines(log) == []


def test_route_lightning_logs_to_root_leaves_lightning_alone_without_hydra(logging_state):
    root = logging.getLogger()
    root.handlers[:] = []
    console = lightning_console()
    logging.getLogger("lightning").addHandler(console)
    eval_script.route_lightning_logs_to_root()
    assert console in logging.getLogger("lightning").handlers  # else Lightning's lines would vanish


def test_no_alembic_setup_lines_before_a_sweep(capsys, logging_state):
    node = OmegaConf.to_container(OmegaConf.load(CONF / "hydra" / "hydra_logging" / "lecturenn.yaml"))
    logging.config.dictConfig(node)  # what Hydra does for its own log before loading the sweeper
    logging.getLogger("alembic.runtime.plugins").info("setup plugin %s", "alembic.autogenerate.schemas")
    logging.getLogger("hydra.core.utils").info("Launching 1 jobs locally")
    out = capsys.readouterr().out
    assert "setup plugin" not in out and "Launching 1 jobs locally" in out
    logging.getLogger("alembic.runtime.plugins").warning("a real problem")
    assert "a real problem" in capsys.readouterr().out


# -- the command line: one eval.py run ------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A ThetaMLPModule checkpoint for conf/data/xor.yaml's inputs, trained one epoch in-process."""
    import lightning as L

    from lecturenn.data import PlaygroundDataModule

    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    # conf/data/xor.yaml's data (eval.py refuses data whose standardisation differs from the run's)
    dm = PlaygroundDataModule(
        "xor", n=500, noise=0.1, batch_size=32, val_fraction=0.1, test_fraction=0.3, seed=0
    )
    dm.setup("fit")
    info = dm.info
    model = module_for(
        info,
        hidden_sizes=[4],
        init_seed=0,
        optimizer=functools.partial(torch.optim.SGD, lr=0.5),
    )
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(path)
    return path


def test_eval_prints_each_line_once_without_adverts_and_logs_to_eval_log(checkpoint, tmp_path):
    run_dir = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval.py"), f"ckpt_path={checkpoint}", "data=xor"]
        + [f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    assert repeated_lines(console) == [], console
    for advert in ("Tip", "litmodels", "litlogger"):
        assert advert not in console, console
    assert "test/acc" in proc.stdout and "GPU available" in proc.stderr  # results on stdout, log on stderr
    log = (run_dir / "eval.log").read_text()
    assert "[lightning.pytorch.utilities.rank_zero][INFO] - GPU available" in log
    assert repeated_lines(log) == []
