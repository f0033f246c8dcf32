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
class FakeTrainer:
    global_step = 0


def feed(guard, groups):
    """Feed step losses through the hook as batch groups, like the module's training_step does."""
    trainer = FakeTrainer()
    for group in groups:
        trainer.global_step += len(group)
        guard.on_train_batch_end(trainer, None, torch.tensor(group), None, 0)
    return guard


def guard_after(steps, group=1):
    """A guard with J_ref = max(J first step = 2.0, trivial = 2.0 (no net)) = 2.0, fed `steps`."""
    losses = [2.0, *steps]
    return feed(DivergenceGuard(), [losses[i : i + group] for i in range(0, len(losses), group)])


@pytest.mark.parametrize("group", [1, 3, 32])
@pytest.mark.parametrize(
    "steps,exploded,holding",
    [
        ([1e6] * 5, True, True),
        ([2.0, 2.0, 1e6, 2.0, 2.0], False, False),  # a spike that recovers is not divergence
        ([1e6] * 4 + [150.0], False, False),  # back under 100 × 2 at the last step
        ([201.0] * 5, True, True),  # just above 100 × J_ref
        ([199.0] * 5, False, False),
        ([1e6] * 4, False, True),  # not yet 5 in a row, but nothing may be saved meanwhile
        ([2.0] * 3 + [1e6] * 5, True, True),  # counted across groups and epochs
        ([1e6] * 3 + [2.0] + [1e6] * 4, False, True),
    ],
)
def test_explosion_criterion(steps, exploded, holding, group):
    guard = guard_after(steps, group)
    assert (guard._exploded() is not None) is exploded
    assert (guard._exploded(at_end=True) is not None) is holding


def test_first_step_never_counts_as_evidence():
    guard = feed(DivergenceGuard(), [[1e9]])  # one step: J_ref only
    assert guard._run is None and guard._exploded(at_end=True) is None


def test_reference_survives_a_checkpoint_round_trip():
    state = guard_after([1.0]).state_dict()
    resumed = DivergenceGuard()
    resumed.load_state_dict(state)
    feed(resumed, [[1e6] * 5])
    assert resumed.reference == pytest.approx({"first_step": 2.0, "trivial": 2.0})
    assert "above 100 × 2" in resumed._exploded()


def test_a_growing_explosion_never_reaches_last_ckpt(tmp_path, capsys):
    """Full-batch GD whose J grows epoch by epoch: every epoch above the threshold is held back
    from last.ckpt while the guard waits for 5 steps in a row."""
    overrides = [
        "experiment=regression",
        "optimizer=gd",
        "optimizer.lr=1.5",
        "model.lam=0",
        "trainer.max_epochs=20",
    ]
    code, line, _ = diverge(tmp_path, capsys, overrides)
    assert code == 3 and "exploded" in line
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    history = pd.read_csv(tmp_path / "csv" / "metrics.csv").dropna(subset=["train/loss"])
    loss_at = dict(zip(history["epoch"].astype(int), history["train/loss"]))
    assert loss_at[last["epoch"]] < 100 * 1.5, loss_at  # J_ref ≈ 1 for standardised targets


def test_a_run_that_ends_while_exploding_fails(tmp_path, capsys):
    """Full-batch GD, lr = 1e6, 4 epochs: never 5 steps in a row, but the run ends above the
    threshold — exit 3, and last.ckpt keeps epoch 0 (the last epoch below it)."""
    overrides = ["data=iris", "optimizer=gd", "optimizer.lr=1e6", "trainer.max_epochs=4"]
    code, line, names = diverge(tmp_path, capsys, overrides)
    assert code == 3 and "training ended while diverging" in line, line
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0


def test_resuming_with_a_larger_lambda_is_not_an_explosion(tmp_path):
    first = tmp_path / "first"
    train(make_cfg(first, ["data=iris", "trainer.max_epochs=2", *QUIET]))
    last = first / "checkpoints" / "last.ckpt"
    overrides = ["data=iris", "trainer.max_epochs=4", "model.lam=100000", f"ckpt_path={last}", *QUIET]
    assert train(make_cfg(tmp_path / "resumed", overrides))["epochs"] == 4
