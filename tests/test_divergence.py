"""Divergence that stays finite is caught too, and the likely cause comes from evidence."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_app import QUIET, make_cfg, run_script
from train import train

from lecturenn.training.guards import DivergenceGuard


def diverge(tmp_path, capsys, overrides):
    """Train in-process; return (exit code, the single error line, checkpoint names)."""
    with pytest.raises(SystemExit) as info:
        train(make_cfg(tmp_path, [*overrides, *QUIET]))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    return info.value.code, errors[0], names


def test_finite_explosion_stops_with_exit_3_and_writes_nothing(tmp_path):
    """Adam with lr = 1e6 on digits: J ~ 1e10, finite — used to end with exit 0 and chance accuracy."""
    run = tmp_path / "run"
    proc = run_script(
        "train.py",
        "optimizer=adam",
        "optimizer.lr=1e6",
        "trainer.max_epochs=5",
        f"hydra.run.dir={run}",
        *QUIET,
        cwd=tmp_path,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert errors[0].startswith("error: training diverged in epoch 0: the loss J(Θ) exploded")
    assert "learning rate (1e+06)" in errors[0]
    assert not list(run.glob("checkpoints/*.ckpt")) and not (run / "metrics.json").exists()


def test_explosion_in_a_later_epoch_never_reaches_best_or_last(tmp_path, capsys):
    overrides = ["optimizer=adam", "scheduler=step", "scheduler.step_size=2", "scheduler.gamma=1e6"]
    code, line, names = diverge(tmp_path, capsys, [*overrides, "trainer.max_epochs=5"])
    assert code == 3 and "diverged in epoch 2" in line and "exploded" in line
    assert "learning rate (5000)" in line  # the rate in force when it exploded
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1 and all(n in ("last.ckpt", "epoch_000.ckpt", "epoch_001.ckpt") for n in names)


def test_extreme_initialisation_is_named_not_the_learning_rate(tmp_path, capsys):
    code, line, _ = diverge(
        tmp_path, capsys, ["model.init=epsilon", "model.epsilon=1e30", "trainer.max_epochs=2"]
    )
    assert code == 3 and "extreme initialisation" in line and "1e+30" in line
    assert "learning rate" not in line


def test_extreme_inputs_are_named_not_the_learning_rate(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    X[:, 1] *= 1e5
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": 2 * X[:, 0]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    data = ["data=table", f"data.path={tmp_path / 't.csv'}", "data.target=y", "data.standardize=false"]
    code, line, _ = diverge(
        tmp_path / "run",
        capsys,
        [*data, "model.activation=relu", "optimizer=sgd", "optimizer.lr=0.01", "trainer.max_epochs=3"],
    )
    assert code == 3 and "extreme input values (feature column 'b'" in line
    assert "learning rate" not in line


def test_a_normal_run_is_not_flagged(tmp_path):
    metrics = train(make_cfg(tmp_path, ["optimizer=sgd", "optimizer.lr=0.5", "trainer.max_epochs=3", *QUIET]))
    assert metrics["epochs"] == 3
    json.loads((tmp_path / "metrics.json").read_text())


# -- the criterion, unit by unit --------------------------------------------------------------------
def guard_with(first, trivial, recent):
    guard = DivergenceGuard()
    guard._start = torch.tensor([first, trivial])
    guard._recent = torch.tensor(recent)
    return guard


@pytest.mark.parametrize(
    "recent,exploded",
    [
        ([1e6] * 5, True),
        ([2.0, 2.0, 1e6, 2.0, 2.0], False),  # a spike that recovers is not divergence
        ([1e6, 1e6, 1e6, 1e6, 200.0], False),  # back under 100 × 2.3 at the last step
        ([231.0] * 5, True),  # just above 100 × max(J_first = 2.0, J_trivial = 2.3)
        ([229.0] * 5, False),
        ([1e6], True),  # fewer steps than the window so far (full-batch GD: one step per epoch)
    ],
)
def test_explosion_criterion(recent, exploded):
    assert (guard_with(2.0, 2.3, recent)._exploded() is not None) is exploded


def test_reference_survives_a_checkpoint_round_trip():
    state = guard_with(2.0, 2.3, [1.0]).state_dict()
    resumed = DivergenceGuard()
    resumed.load_state_dict(state)
    resumed._recent = torch.tensor([1e6] * 5)
    assert resumed.reference == pytest.approx({"first_step": 2.0, "trivial": 2.3})
    assert "above 100 × 2.3" in resumed._exploded()


def test_full_batch_explosion_is_caught_at_its_second_step(tmp_path, capsys):
    """Gradient descent takes one step per epoch: the first step (J_ref itself) is not evidence,
    so an explosion at the second step stops the run there, before it reaches last.ckpt."""
    overrides = ["data=iris", "optimizer=gd", "optimizer.lr=1e6", "trainer.max_epochs=4"]
    code, line, names = diverge(tmp_path, capsys, overrides)
    assert code == 3 and "diverged in epoch 1" in line, line
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0


def test_resuming_with_a_larger_lambda_is_not_an_explosion(tmp_path):
    first = tmp_path / "first"
    train(make_cfg(first, ["data=iris", "trainer.max_epochs=2", *QUIET]))
    last = first / "checkpoints" / "last.ckpt"
    overrides = ["data=iris", "trainer.max_epochs=4", "model.lam=100000", f"ckpt_path={last}", *QUIET]
    assert train(make_cfg(tmp_path / "resumed", overrides))["epochs"] == 4


def test_first_step_never_counts_as_evidence():
    guard = DivergenceGuard()

    class Trainer:
        global_step = 1

    guard.on_train_batch_end(Trainer(), None, torch.tensor([1e9]), None, 0)  # one step: J_ref only
    assert guard._recent is None and guard._exploded() is None
