"""Runs you can trust: last.ckpt is the last epoch, one directory per run, sweeps whose jobs fail alone."""

import json
import logging
import runpy
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import interrupt_training, run_script
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict
from runs import RUN_FILES, run_stamp, strict_json
from test_app import QUIET, ROOT, make_cfg
from train import train

# A run whose best epoch is early: val/loss is lowest at epoch 1 and never improves again.
XOR_EARLY_BEST = ["data=xor", "data.n=60", "data.noise=0.5", "model.lam=0", "optimizer.lr=0.2"]


def ckpt(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    """``python scripts/<script> <args>`` without a new interpreter: the script executed as
    ``__main__`` (runpy) with that command line, so Hydra parses it, composes the config and runs the
    RunDirectories callback as in a process. For runs the callback refuses (it raises SystemExit(2)
    before the job starts): returns a CompletedProcess with the exit code and what was printed.
    Hydra's set-up of the root logger is undone after each call."""

    def run(script, *args):
        path = str(ROOT / "scripts" / script)
        root = logging.getLogger()
        saved = list(root.handlers), root.level, logging.getLogger("alembic").level
        monkeypatch.setattr(sys, "argv", [path, *args])
        monkeypatch.chdir(tmp_path)  # as the processes ran (cwd=tmp_path)
        GlobalHydra.instance().clear()
        try:
            runpy.run_path(path, run_name="__main__")
            code = 0  # not reached: the script ends with sys.exit(main())
        except SystemExit as exit:
            code = exit.code
        finally:
            GlobalHydra.instance().clear()
            root.handlers[:], _, _ = saved
            root.setLevel(saved[1])
            logging.getLogger("alembic").setLevel(saved[2])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess([path, *args], code, out, err)

    return run


@pytest.fixture(autouse=True)
def _restore_torch_settings():
    """train() in-process sets torch's threads (threads: auto) and matmul precision for the process,
    as the CLI does for its own: give them back to the next test."""
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    yield
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(precision)


# -- last.ckpt ----------------------------------------------------------------------------------------
def test_last_ckpt_holds_the_last_epoch_and_resume_trains_only_the_new_epochs(tmp_path):
    """In-process (train.train, the CLI's code): the checkpoints and the resumed epochs are the point,
    not the process; test_a_second_run_into_a_run_directory_is_refused resumes through the CLI."""
    run = tmp_path / "run"
    train(make_cfg(run, [*XOR_EARLY_BEST, "trainer.max_epochs=10", *QUIET]))
    metrics = json.loads((run / "metrics.json").read_text())
    best, last = ckpt(metrics["best_checkpoint"]), ckpt(run / "checkpoints" / "last.ckpt")
    assert best["epoch"] < 9, "the property needs a run whose best epoch is early"
    assert last["epoch"] == 9 and last["global_step"] == 10 * 2  # 60 rows: 36 train, batch 32 -> 2 steps
    assert not torch.equal(best["state_dict"]["net.thetas.0"], last["state_dict"]["net.thetas.0"])

    resumed = [*XOR_EARLY_BEST, "trainer.max_epochs=12", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    train(make_cfg(run, [*resumed, *QUIET]))
    trained = pd.read_csv(run / "csv" / "resume-1" / "metrics.csv").dropna(subset=["train/loss"])
    assert sorted(trained["epoch"].astype(int)) == [10, 11]  # only the two new epochs
    assert ckpt(run / "checkpoints" / "last.ckpt")["epoch"] == 11


@pytest.mark.parametrize(
    "extra", [["trainer.check_val_every_n_epoch=2"], ["callbacks=early_stopping"], ["optimizer=gd"]]
)
def test_last_ckpt_is_written_after_every_epoch(tmp_path, extra):
    cfg = make_cfg(tmp_path, [*XOR_EARLY_BEST, "trainer.max_epochs=5", *extra, *QUIET])
    train(cfg)
    last = ckpt(tmp_path / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 4
    best = [p for p in (tmp_path / "checkpoints").glob("epoch_*.ckpt")]
    assert len(best) == 1 and best[0].name != "last.ckpt"


# -- run directories ----------------------------------------------------------------------------------
def test_run_stamps_differ_within_one_second():
    stamps = {run_stamp() for _ in range(50)}
    assert len(stamps) == 50
    assert all(len(s) == len("2026-11-30_06-40-12_3fa9c1") for s in stamps)


def test_two_runs_started_together_get_their_own_directories(tmp_path):
    args = [sys.executable, str(ROOT / "scripts" / "train.py"), "data=iris", "trainer.max_epochs=1", *QUIET]
    procs = [
        subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in "ab"
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:]
    runs = sorted((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:  # each with its own complete set of files
        assert (run / "metrics.json").is_file() and (run / ".hydra" / "config.yaml").is_file()
        assert len(pd.read_csv(run / "csv" / "metrics.csv").dropna(subset=["train/loss"])) == 1


def test_a_second_run_into_a_run_directory_is_refused(tmp_path, cli):
    run = tmp_path / "run"
    # the first run in-process (train.train, the CLI's code), with the .hydra/config.yaml Hydra writes
    # (the composed config without its hydra node); the refusals and the resume are the CLI's
    cfg = make_cfg(run, ["data=iris", "trainer.max_epochs=1", *QUIET])
    train(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    again = cli("train.py", "data=iris", "trainer.max_epochs=1", f"hydra.run.dir={run}", *QUIET)
    assert again.returncode == 2
    assert len(error_lines(again)) == 1 and "already holds a run" in error_lines(again)[0]
    assert "ckpt_path=" in error_lines(again)[0] and "Traceback" not in again.stderr

    other = tmp_path / "other"  # a checkpoint of another run cannot be resumed into this directory
    train(make_cfg(other, ["data=iris", "trainer.max_epochs=1", *QUIET]))
    foreign = cli(
        "train.py",
        "data=iris",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run}",
        f"ckpt_path={other / 'checkpoints' / 'last.ckpt'}",
        *QUIET,
    )
    assert foreign.returncode == 2 and "holds another run" in error_lines(foreign)[0]
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing was written into the first run's directory

    resumed = run_script(
        "train.py",
        "data=iris",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run}",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        *QUIET,
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    kept = run / ".hydra" / "before-resume-1"
    assert (kept / "config.yaml").read_bytes() == before[run / ".hydra" / "config.yaml"]
    assert (kept / "metrics.json").read_bytes() == before[run / "metrics.json"]
    assert not list((run / "checkpoints").glob("last-v*.ckpt"))


def test_a_directory_left_by_a_failed_run_is_refused_without_resume_advice(tmp_path, cli):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)  # what a run refused or diverged in epoch 0 leaves behind
    (run / "csv").mkdir()
    proc = cli("train.py", "data=iris", "trainer.max_epochs=1", f"hydra.run.dir={run}", *QUIET)
    assert proc.returncode == 2
    line = error_lines(proc)[0]
    assert "wrote no checkpoint" in line and "ckpt_path" not in line
    assert not (run / "checkpoints").exists()


def test_a_run_directory_that_is_a_file_is_refused(tmp_path, cli):
    (tmp_path / "afile").write_text("not a directory")
    proc = cli("train.py", "data=iris", f"hydra.run.dir={tmp_path / 'afile'}", *QUIET)
    assert proc.returncode == 2 and "is a file, not a directory" in error_lines(proc)[0]
    assert "Traceback" not in proc.stderr


def test_run_files_list_matches_what_a_run_writes(tmp_path):
    train(make_cfg(tmp_path, ["data=iris", "trainer.max_epochs=1", *QUIET]))
    assert {"checkpoints", "metrics.json", "csv", "plots"} <= set(RUN_FILES)
    assert all((tmp_path / name).exists() for name in ("checkpoints", "metrics.json", "csv", "plots"))


# -- sweeps -------------------------------------------------------------------------------------------
def _check_sweep_with_one_bad_job(proc, sweep):
    assert proc.returncode == 2, proc.stderr[-3000:]
    for job in ("0", "2"):  # the valid siblings finished
        assert "test/acc" in json.loads((sweep / job / "metrics.json").read_text())
    assert not (sweep / "1" / "metrics.json").exists()
    jobs = {r["job"]: r for r in (json.loads(p.read_text()) for p in sweep.glob("*/job.json"))}
    assert [jobs[i]["status"] for i in range(3)] == ["completed", "failed", "completed"]
    assert jobs[1]["exit_code"] == 2 and "model.lam=-1" in jobs[1]["error"]
    table = proc.stdout[proc.stdout.index("sweep summary") :]
    rows = [line.split() for line in table.splitlines()[2:] if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert rows[0][1] == "completed" and rows[1][1:3] == ["failed", "(2)"]
    assert "model.lam=-1" in table and "error: 1 of 3 jobs failed" in proc.stderr
    for job, lam in (("0", "1"), ("1", "-1"), ("2", "2")):  # each job its own directory and override
        assert f"model.lam={lam}" in (sweep / job / ".hydra" / "overrides.yaml").read_text()


def test_a_failing_sweep_job_does_not_stop_its_siblings(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_script(
        "train.py",
        "-m",
        "data=iris",
        "trainer.max_epochs=1",
        "model.lam=1,-1,2",
        f"hydra.sweep.dir={sweep}",
        *QUIET,
        cwd=tmp_path,
    )
    _check_sweep_with_one_bad_job(proc, sweep)


@pytest.mark.slow
def test_an_optuna_sweep_whose_every_trial_fails_still_ends_with_the_table(tmp_path):
    """Optuna's plugin crashed on a NaN trial value and, with no completed trial, on the best
    trial: a failed job now returns the worst value, so the sweep ends with the table, exit 2."""
    sweep = tmp_path / "sweep"
    proc = run_script(
        "train.py",
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "data=xor",
        "model.dropout=2",
        f"hydra.sweep.dir={sweep}",
        *QUIET,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "sweep summary" in proc.stdout
    assert proc.stdout.count("failed (2)") == 2
    assert "error: 2 of 2 jobs failed" in proc.stderr


@pytest.mark.slow
def test_a_failing_job_of_a_parallel_sweep_does_not_kill_its_siblings(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_script(
        "train.py",
        "-m",
        "hydra/launcher=local_parallel",
        "data=iris",
        "trainer.max_epochs=1",
        "model.lam=1,-1,2",
        f"hydra.sweep.dir={sweep}",
        *QUIET,
        cwd=tmp_path,
    )
    _check_sweep_with_one_bad_job(proc, sweep)


def test_a_sweep_into_a_used_sweep_directory_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    proc = run_script(
        "train.py",
        "-m",
        "data=iris",
        "trainer.max_epochs=1",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        *QUIET,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "already holds 1 job(s)" in error_lines(proc)[0]
    assert not (sweep / "1").exists()


def test_metrics_json_is_strict_json():
    text = strict_json({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {
        "a": None,
        "b": [None, 1.5],
        "c": {"d": None},
    }


def test_sigterm_stops_with_a_non_zero_status_and_a_resumable_last_ckpt(tmp_path):
    import signal

    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    args = ["data=xor", "data.n=4000", "trainer.max_epochs=500", f"hydra.run.dir={run}", *QUIET]
    returncode, err = interrupt_training(args, last, signal.SIGTERM, cwd=tmp_path)
    assert returncode == 128 + 15, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stopped by SIGTERM" in errors[0] and f"ckpt_path={last}" in errors[0]
    assert not (run / "metrics.json").exists() and ckpt(last)["epoch"] >= 0


@pytest.mark.parametrize("script,extra", [("eval.py", []), ("predict.py", ["input=rows.csv"])])
def test_eval_and_predict_never_write_into_another_runs_directory(tmp_path, cli, script, extra):
    run = tmp_path / "run"
    train(make_cfg(run, ["data=iris", "trainer.max_epochs=1", *QUIET]))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    last = run / "checkpoints" / "last.ckpt"
    proc = cli(script, f"ckpt_path={last}", *extra, f"hydra.run.dir={run}")
    assert proc.returncode == 2 and "already holds the files of another run" in error_lines(proc)[0]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_callbacks_none_writes_no_checkpoints_and_tests_the_last_weights(tmp_path):
    metrics = train(
        make_cfg(
            tmp_path,
            ["data=iris", "trainer.max_epochs=2", "callbacks=none", "++trainer.enable_progress_bar=false"],
        )
    )
    assert not list(tmp_path.rglob("*.ckpt")) and metrics["best_checkpoint"] == ""
    assert "test/acc" in metrics
