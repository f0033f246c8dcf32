"""Resume refuses what changes the network or the data, and allows what may change."""

import pytest
from test_app import QUIET, make_cfg
from train import train

BASE = ["data=iris", "trainer.max_epochs=1", *QUIET]


@pytest.fixture(scope="module")
def last_ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("first")
    train(make_cfg(run, BASE))
    return run / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize(
    "change,named",
    [
        ("model.activation=relu", "model.activation='sigmoid'"),
        ("model.dropout=0.2", "model.dropout=0.0"),
        ("model.batchnorm=true", "model.batchnorm=False"),
        ("model.hidden_sizes=[7]", "model.hidden_sizes=[100]"),
        ("data.standardize=false", "its x_mean"),
        ("data.seed=1", "its x_mean"),  # another split of the same file
        ("data.val_fraction=0.3", "its x_mean"),
        ("data=wine", "its n_features"),
        ("optimizer=sgd", "torch.optim.adam.Adam, this run uses torch.optim.sgd.SGD"),
        ("optimizer=adamw", "this run uses torch.optim.adamw.AdamW"),  # same settings' names as Adam
        # Lightning restores the optimizer's settings with its state: a changed one was silently ignored
        # (hostile round 10b: optimizer.lr=0.01 trained on at 0.1)
        ("optimizer.lr=0.01", "optimizer.lr=0.005 (this run: 0.01)"),
        ("optimizer.betas=[0.8,0.9]", "optimizer.betas=[0.9, 0.999] (this run: [0.8, 0.9])"),
    ],
)
def test_resume_refuses_a_different_network_or_data(tmp_path, capsys, last_ckpt, change, named):
    with pytest.raises(SystemExit) as info:
        train(make_cfg(tmp_path, [*BASE, change, "trainer.max_epochs=2", f"ckpt_path={last_ckpt}"]))
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0] and str(last_ckpt) in errors[0], errors
    assert not (tmp_path / "checkpoints").exists()  # refused before any work


@pytest.mark.parametrize(
    "change",
    [
        "model.lam=0.5",
        "model.backprop=autograd",
        "data.batch_size=16",
        "model.steps_per_execution=1",
        "scheduler=cosine",
    ],
)
def test_resume_allows_training_settings_to_change(tmp_path, last_ckpt, change):
    metrics = train(make_cfg(tmp_path, [*BASE, change, "trainer.max_epochs=2", f"ckpt_path={last_ckpt}"]))
    assert metrics["epochs"] == 2


def test_resume_with_nothing_left_to_train_is_refused(tmp_path, capsys, last_ckpt):
    with pytest.raises(SystemExit) as info:
        train(make_cfg(tmp_path, [*BASE, f"ckpt_path={last_ckpt}"]))  # max_epochs=1: already done
    assert info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has already trained 1 epoch(s)" in line and "trainer.max_epochs above 1" in line


def test_resumed_run_says_where_it_resumed(tmp_path, capsys, last_ckpt):
    train(make_cfg(tmp_path, [*BASE, "trainer.max_epochs=3", f"ckpt_path={last_ckpt}"]))
    assert "fit: 3 epochs (resumed at epoch 1: 2 epochs trained now)" in capsys.readouterr().out


@pytest.mark.parametrize("change", ["data.noise=0.3", "data.dataset=circle", "data.seed=1"])
def test_resume_refuses_other_rows_even_without_standardisation(tmp_path, capsys, change):
    xor = ["data=xor", "data.n=80", "data.standardize=false", *QUIET]
    first = tmp_path / "first"
    train(make_cfg(first, [*xor, "trainer.max_epochs=1"]))
    last = first / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as info:
        train(make_cfg(tmp_path / "again", [*xor, change, "trainer.max_epochs=2", f"ckpt_path={last}"]))
    assert info.value.code == 2
    assert "its train_digest is" in capsys.readouterr().err.strip().splitlines()[-1]


def test_resume_refuses_scheduler_settings_it_would_ignore_and_keeps_the_rest(tmp_path, capsys):
    """A cosine run resumed for more epochs: T_max=${trainer.max_epochs} grows, but Lightning restores
    the checkpoint's T_max, so the new epochs ran at lr = eta_min = 0 (and L-BFGS crashed on the zero
    step: hostile round 10b). Refused naming the setting; with the checkpoint's T_max it resumes."""
    first = tmp_path / "first"
    train(make_cfg(first, [*BASE, "scheduler=cosine"]))
    last = first / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as info:
        train(
            make_cfg(
                tmp_path / "more", [*BASE, "scheduler=cosine", "trainer.max_epochs=2", f"ckpt_path={last}"]
            )
        )
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "scheduler.T_max=1 (this run: 2)" in errors[0], errors
    with pytest.raises(SystemExit):
        train(
            make_cfg(
                tmp_path / "other", [*BASE, "scheduler=step", "trainer.max_epochs=2", f"ckpt_path={last}"]
            )
        )
    assert "another scheduler than StepLR" in capsys.readouterr().err
    same = [*BASE, "scheduler=cosine", "scheduler.T_max=1", "trainer.max_epochs=2", f"ckpt_path={last}"]
    assert train(make_cfg(tmp_path / "same", same))["epochs"] == 2
