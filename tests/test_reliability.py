"""When things go wrong: crash + resume, divergence, bad data and configs, unsafe files, determinism."""

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_app import QUIET, make_cfg, run_script
from train import train

ROOT = Path(__file__).resolve().parents[1]


def state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    return err[-1]


@pytest.fixture(autouse=True)
def _restore_torch_settings():
    """train() and evaluate() in-process set torch's threads (threads: auto) and matmul precision for
    the process, as the CLI does for its own: give them back to the next test."""
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    yield
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(precision)


# -- crash and resume -------------------------------------------------------------------------------
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    args = ["trainer.max_epochs=10", "model.hidden_sizes=[32]", "model.dropout=0.1", "threads=1", *QUIET]
    train(make_cfg(tmp_path / "full", args))  # the uninterrupted reference, in-process (one start-up less)

    run = tmp_path / "killed"
    last = run / "checkpoints" / "last.ckpt"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args, f"hydra.run.dir={run}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            epoch = state(last)["epoch"]  # atomic writes: never a torn file, even mid-save
            if epoch >= 3:
                proc.send_signal(signal.SIGKILL)
                killed_at = epoch
                break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_at is not None, "training finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    assert not list(run.glob("checkpoints/*.tmp")) or state(last)  # a leftover .tmp never replaces last.ckpt

    resumed = run_script("train.py", *args, f"hydra.run.dir={run}", f"ckpt_path={last}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = state(tmp_path / "full" / "checkpoints" / "last.ckpt"), state(last)
    assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key  # bitwise on CPU
    ma = json.loads((tmp_path / "full" / "metrics.json").read_text())
    mb = json.loads((run / "metrics.json").read_text())
    for key in ("test/acc", "test/loss", "test/f1", "val/acc_best", "epochs"):
        assert ma[key] == mb[key], key


def test_truncated_checkpoint_gives_a_clear_error(tmp_path, capsys):
    train(make_cfg(tmp_path / "run", ["trainer.max_epochs=1", *QUIET]))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(SystemExit) as exit_info:
        train(make_cfg(tmp_path / "resume", [f"ckpt_path={broken}", "trainer.max_epochs=2", *QUIET]))
    assert exit_info.value.code == 2
    line = one_error_line(capsys)
    assert "broken.ckpt" in line and "truncated or corrupted" in line


# -- divergence -------------------------------------------------------------------------------------
def test_divergence_stops_with_a_message_and_exit_code(tmp_path, capsys):
    """In-process (train.train, the CLI's code); test_divergence.py's
    test_finite_explosion_stops_with_exit_3_and_writes_nothing holds exit code 3 as a process."""
    with pytest.raises(SystemExit) as info:
        train(
            make_cfg(tmp_path / "run", ["optimizer=sgd", "optimizer.lr=1e6", "trainer.max_epochs=5", *QUIET])
        )
    assert info.value.code == 3
    line = one_error_line(capsys)
    assert line.startswith("error: training diverged in epoch 0") and "learning rate (1e+06)" in line
    assert not list((tmp_path / "run").glob("checkpoints/*.ckpt"))


def test_divergence_never_overwrites_good_checkpoints(tmp_path, capsys):
    """Three good epochs, then a schedule multiplies the learning rate by 1e30: training must stop
    in epoch 3 and leave the checkpoints of epochs 0-2 as they were (finite)."""
    run = tmp_path / "run"
    overrides = [
        "optimizer=sgd",
        "scheduler=step",
        "scheduler.step_size=3",
        "scheduler.gamma=1e30",
        "trainer.max_epochs=6",
        *QUIET,
    ]
    with pytest.raises(SystemExit) as exit_info:
        train(make_cfg(run, overrides))
    assert exit_info.value.code == 3
    assert "diverged in epoch 3" in one_error_line(capsys)
    checkpoints = sorted((run / "checkpoints").glob("*.ckpt"))
    assert checkpoints and state(run / "checkpoints" / "last.ckpt")["epoch"] == 2
    for path in checkpoints:
        assert all(torch.isfinite(t).all() for t in state(path)["state_dict"].values()), path.name


# -- bad data, bad configs --------------------------------------------------------------------------
def write_csv(path, **columns):
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


BAD_TABLES = {
    "missing target": (dict(a=[1.0, 2.0] * 20, label=["x", "y"] * 20), "lable", "did you mean 'label'"),
    "non-numeric feature": (dict(a=["p", "q"] * 20, label=["x", "y"] * 20), "label", "not numeric"),
    "NaN feature": (dict(a=[1.0, np.nan] * 20, label=["x", "y"] * 20), "label", "NaN"),
    "inf feature": (dict(a=[1.0, np.inf] * 20, label=["x", "y"] * 20), "label", "inf"),
    "too few rows": (dict(a=[1.0, 2.0], label=["x", "y"]), "label", "rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_data_files_are_one_line_errors(tmp_path, capsys, case):
    columns, target, message = BAD_TABLES[case]
    path = write_csv(tmp_path / "data.csv", **columns)
    with pytest.raises(SystemExit) as exit_info:
        train(make_cfg(tmp_path, ["data=table", f"data.path={path}", f"data.target={target}", *QUIET]))
    assert exit_info.value.code == 2
    line = one_error_line(capsys)
    assert line.startswith("error: ") and message in line


def test_empty_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SystemExit):
        train(
            make_cfg(tmp_path, ["data=table", f"data.path={tmp_path / 'empty.csv'}", "data.target=y", *QUIET])
        )
    assert "empty" in one_error_line(capsys).lower()


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.activation=sigmod", "model.activation"),
        ("model.lam=-1", "model.lam"),
        ("optimizer.lr=0", "optimizer.lr"),
        ("optimizer.lr=-0.1", "optimizer.lr"),
        ("model.hidden_sizes=[16,0]", "model.hidden_sizes"),
        ("data.batch_size=0", "data.batch_size"),
        ("model.backprop=magic", "model.backprop"),
        ("model.init=ones", "model.init"),
    ],
)
def test_bad_configs_are_rejected_before_training(tmp_path, capsys, override, key):
    with pytest.raises(SystemExit) as exit_info:
        train(make_cfg(tmp_path, [override, *QUIET]))
    assert exit_info.value.code == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: config: {key}=")
    assert not (tmp_path / "checkpoints").exists()


def test_resuming_with_another_optimizer_is_a_clear_error(tmp_path, capsys):
    train(make_cfg(tmp_path / "a", ["trainer.max_epochs=1", "optimizer=adam", *QUIET]))
    with pytest.raises(SystemExit):
        train(
            make_cfg(
                tmp_path / "b", ["optimizer=sgd", f"ckpt_path={tmp_path / 'a/checkpoints/last.ckpt'}", *QUIET]
            )
        )
    assert "this run uses torch.optim.sgd.SGD" in one_error_line(capsys)


def test_unknown_config_group_option_exits_nonzero(tmp_path):
    proc = run_script("train.py", "optimizer=nadamw", cwd=tmp_path)
    # one line, exit 2, before Hydra composes (scripts/app.check_group_choices)
    assert proc.returncode == 2, proc.stderr
    assert "optimizer=nadamw" in proc.stderr and "choose one of" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()  # nothing written


# -- unsafe files -----------------------------------------------------------------------------------
class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_crafted_pickle_checkpoint_is_refused(tmp_path, capsys, monkeypatch):
    from eval import evaluate

    from lecturenn.training.checkpoint import CheckpointError, load_checkpoint

    monkeypatch.chdir(tmp_path)  # where the payload would write pwned.txt
    evil = tmp_path / "evil.ckpt"
    with open(evil, "wb") as f:
        torch.save({"state_dict": {}, "payload": _Payload()}, f)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_checkpoint(evil)
    with pytest.raises(SystemExit):
        train(make_cfg(tmp_path / "run", [f"ckpt_path={evil}", *QUIET]))
    assert "refusing to unpickle" in one_error_line(capsys)
    # eval in-process (eval.evaluate, the CLI's code; test_run_files.py runs eval.py's refusals as a process)
    with pytest.raises(SystemExit) as info:
        evaluate(make_cfg(tmp_path / "e", [f"ckpt_path={evil}", "data=iris"], config="eval"))
    assert info.value.code == 2 and "refusing to unpickle" in one_error_line(capsys)
    assert not (tmp_path / "pwned.txt").exists()


def test_plain_pickle_file_is_not_a_checkpoint(tmp_path):
    from lecturenn.training.checkpoint import CheckpointError, load_checkpoint

    path = tmp_path / "x.ckpt"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


# -- determinism and load ---------------------------------------------------------------------------
def test_same_seed_same_result_different_seed_differs(tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        metrics = train(make_cfg(tmp_path / name, [f"seed={seed}", "trainer.max_epochs=2", *QUIET]))
        runs[name] = (metrics, state(tmp_path / name / "checkpoints" / "last.ckpt")["state_dict"])
    (ma, sa), (mb, sb), (_, sc) = runs["a"], runs["b"], runs["c"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert {k: v for k, v in ma.items() if k.startswith("test/")} == {
        k: v for k, v in mb.items() if k.startswith("test/")
    }
    assert not torch.equal(sa["net.thetas.0"], sc["net.thetas.0"])
