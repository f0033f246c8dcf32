"""``tuner=lr_find``: the learning-rate range test (lecturenn/training/lr_find.py, scripts/tuning.py).

The reference is Lightning's own ``Tuner.lr_find`` called directly on the same model and data; the
app's record, printout and plot must carry exactly its numbers, leave Θ as it was, and refuse the
runs it cannot serve with one line (exit 2) before any work.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra")

import lightning as L  # noqa: E402
import schema  # noqa: E402  (scripts/, on sys.path through conftest.py)
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from lightning.pytorch.tuner import Tuner  # noqa: E402

from lecturenn.training.lr_find import MIN_STEPS, check_lr_find_settings, find_lr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "scripts" / "train.py"
# a tiny Playground run: 60 rows of xor, a 2-4-1 net, 16 steps of the range test
TINY = ["data=xor", "data.n=60", "model.hidden_sizes=[4]", "model.lam=0.0", "data.batch_size=8"]
STEPS = 16
FINDER = [f"tuner.num_training={STEPS}", "tuner.min_lr=1e-4", "tuner.max_lr=10.0"]


def composed(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("train", overrides=["paths.output_dir=/tmp/lecturenn-lr-find", *overrides])


def built(overrides: list[str]):
    """(datamodule, model) exactly as the app builds them for ``overrides`` (seeded as train.py seeds)."""
    import train

    cfg = composed(overrides)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    return train.build(cfg)


def plain_trainer(tmp_path, steps: int) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_epochs=-1,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )


def lightning_reference(tmp_path, overrides: list[str], **settings):
    """Lightning's ``Tuner.lr_find`` on the app's model and data, with no lecturenn code in between:
    the module on Lightning's automatic loop (fast_path none), Lightning's own suggestion."""
    datamodule, model = built(overrides)
    model.fast_path = "none"
    finder = Tuner(plain_trainer(tmp_path, settings["num_training"])).lr_find(
        model, datamodule=datamodule, update_attr=False, **settings
    )
    return finder.results["lr"], finder.results["loss"], finder.suggestion()


SETTINGS = dict(min_lr=1e-4, max_lr=10.0, num_training=STEPS, mode="exponential", early_stop_threshold=4.0)


def test_find_lr_is_lightnings_tuner_and_restores_the_module(tmp_path):
    """On the module's default fast path (manual optimisation, batch groups) with the δ-recursion:
    the same rates, losses and suggestion as Lightning's Tuner on its automatic loop; afterwards Θ
    and the module's fast path are as before."""
    lrs, losses, suggestion = lightning_reference(tmp_path / "ref", TINY, **SETTINGS)
    datamodule, model = built(TINY)
    assert model.fast_path == "direct" and model.net.backprop == "manual"
    before = [t.detach().clone() for t in model.net.thetas]
    result = find_lr(model, datamodule, plain_trainer(tmp_path, STEPS), **SETTINGS)
    assert result.lrs == lrs and len(lrs) == STEPS
    assert result.losses == pytest.approx(losses, rel=1e-6)
    assert result.suggestion == suggestion == result.lrs[result.index]
    assert SETTINGS["min_lr"] <= result.suggestion <= SETTINGS["max_lr"]
    assert all(torch.equal(a, b) for a, b in zip(before, model.net.thetas))
    assert model.fast_path == "direct"
    assert not list(Path(tmp_path).glob(".lr_find_*.ckpt"))  # Lightning's temporary checkpoint is gone


def test_the_manual_fast_path_is_why_the_module_runs_on_none(tmp_path):
    """Pins the reason find_lr switches the path: Lightning's finder on the batch-group path fails
    (its callback calls .item() on a group's losses). If a Lightning upgrade makes it work, this
    fails and the switch can be reconsidered."""
    datamodule, model = built(TINY)
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        Tuner(plain_trainer(tmp_path, STEPS)).lr_find(
            model, datamodule=datamodule, update_attr=False, **SETTINGS
        )


@pytest.mark.parametrize(
    "change,name",
    [
        (dict(min_lr=0.0), "min_lr"),
        (dict(min_lr=-1.0), "min_lr"),
        (dict(min_lr=1.0, max_lr=1.0), "max_lr"),
        (dict(num_training=MIN_STEPS - 1), "num_training"),
        (dict(num_training=2.5), "num_training"),
        (dict(mode="cubic"), "mode"),
        (dict(early_stop_threshold=0.5), "early_stop_threshold"),
        (dict(early_stop_threshold=float("nan")), "early_stop_threshold"),
    ],
)
def test_bad_settings_are_refused_naming_them(change, name):
    with pytest.raises((TypeError, ValueError), match=name):
        check_lr_find_settings(**{**SETTINGS, **change})


def test_min_steps_is_what_lightnings_suggestion_needs():
    """Lightning's suggestion skips the first 10 and the last point and needs 2: 13 steps suggest a
    rate, 12 cannot — and the schema's rule for tuner.num_training says the same."""
    from lightning.pytorch.tuner.lr_finder import _LRFinder

    for n, suggests in ((MIN_STEPS, True), (MIN_STEPS - 1, False)):
        finder = _LRFinder("exponential", 1e-4, 1.0, n)
        finder.results = {"lr": [1e-4 * 2**k for k in range(n)], "loss": [1.0 / (k + 1) for k in range(n)]}
        assert (finder.suggestion() is not None) is suggests
    rule = schema.RULES["tuner.num_training"]
    assert rule.accepts(MIN_STEPS) and not rule.accepts(MIN_STEPS - 1)


BAD_KEYS = [
    (["tuner.num_training=1"], "config: tuner.num_training=1"),
    (["tuner.min_lr=0"], "config: tuner.min_lr=0"),
    (["tuner.min_lr=0.1", "tuner.max_lr=0.1"], "config: tuner.min_lr=0.1 must be below tuner.max_lr=0.1"),
    (["tuner.mode=cubic"], "config: tuner.mode='cubic'"),
    (["tuner.early_stop_threshold=0.5"], "config: tuner.early_stop_threshold=0.5"),
    (["tuner.train=yes"], "config: tuner.train='yes'"),
    (["+tuner.max_lrs=2"], "config: tuner.max_lrs is not a key of tuner=lr_find; did you mean tuner.max_lr?"),
    (["optimizer=lbfgs"], "config: tuner=lr_find cannot sweep L-BFGS's lr"),
    (["trainer=ddp_sim"], "config: tuner=lr_find runs in one process, not with trainer.devices=2"),
    (["ckpt_path=x.ckpt"], "config: tuner=lr_find picks the rate a run starts with"),
    (["+trainer.fast_dev_run=true"], "trainer.fast_dev_run"),
]


@pytest.mark.parametrize("overrides,fragment", BAD_KEYS, ids=[" ".join(o) for o, _ in BAD_KEYS])
def test_bad_tuner_configs_are_one_line_naming_the_key(overrides, fragment):
    with pytest.raises(schema.ConfigError) as err:
        schema.check(composed([*TINY, "tuner=lr_find", *overrides]))
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_tuner_keys_without_the_tuner_are_refused_and_none_changes_nothing():
    with pytest.raises(schema.ConfigError, match="tuner.min_lr is set but no tuner is chosen"):
        schema.check(composed([*TINY, "+tuner.min_lr=1e-3"]))
    plain, none = composed(TINY), composed([*TINY, "tuner=none"])
    assert plain == none and not plain.tuner
    schema.check(plain)
    schema.check(composed([*TINY, "tuner=lr_find"]))  # the shipped settings pass


# -- the app, as a user runs it ---------------------------------------------------------------------


def run_app(tmp_path, *args, name="run", first=()):
    return subprocess.run(
        [sys.executable, str(TRAIN), *first, f"hydra.run.dir={tmp_path / name}", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )


@pytest.mark.slow
def test_app_prints_and_records_lightnings_suggestion_and_draws_it(tmp_path):
    result = run_app(tmp_path, *TINY, "tuner=lr_find", *FINDER)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    printed = re.findall(r"^suggested: optimizer\.lr=(\S+)$", result.stdout, re.M)
    assert len(printed) == 1, result.stdout
    record = json.loads((run / "lr_find.json").read_text())
    lrs, losses, suggestion = lightning_reference(tmp_path / "ref", TINY, **SETTINGS)
    assert float(printed[0]) == record["suggestion"] == suggestion
    assert record["lrs"] == lrs and record["losses"] == pytest.approx(losses, rel=1e-6)
    assert 1e-4 <= record["suggestion"] <= 10.0 and record["steps"] == STEPS
    # the whole command, pasteable: this run's overrides with the suggestion instead of the tuner
    lines = result.stdout.splitlines()
    command = lines[lines.index(f"suggested: optimizer.lr={printed[0]}") + 1]
    assert command.strip() == record["command"] and command.strip().endswith(f"optimizer.lr={printed[0]}")
    assert "tuner" not in command and "hydra.run.dir" not in command
    png = (run / "plots" / "lr_find.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(run / "plots" / "lr_find.png").shape[2] in (3, 4)
    # stops after the suggestion (tuner.train=false): nothing trained
    assert not (run / "metrics.json").exists() and not (run / "checkpoints").exists()


@pytest.mark.slow
def test_train_true_trains_like_the_printed_command(tmp_path):
    """tuner.train=true: Lightning restores Θ, the optimizer and the RNG after the test, and the
    optimizer is rebuilt with the suggestion — so the trained weights equal those of the printed
    command's run, bitwise (Θ started from the same initial weights)."""
    epochs = ["trainer.max_epochs=2", "test=false"]
    tuned = run_app(tmp_path, *TINY, *epochs, "tuner=lr_find", *FINDER, "tuner.train=true", name="tuned")
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    lr = re.search(r"^suggested: optimizer\.lr=(\S+)$", tuned.stdout, re.M).group(1)
    assert f"tuner.train=true: training with optimizer.lr={lr}" in tuned.stdout
    from test_app import make_cfg  # the plain run in-process: the same train() the CLI runs
    from train import train

    train(make_cfg(tmp_path / "plain", [*TINY, *epochs, f"optimizer.lr={lr}"]))
    a, b = (
        torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for name in ("tuned", "plain")
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    last_epoch = torch.load(tmp_path / "plain" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert last_epoch == 1  # two epochs each: the comparison covers real training


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,fragment",
    [
        # a bad key takes schema.check's path, tested in-process above for each key; the sweep is
        # refused by the app itself, before its first job
        (["seed=0,1"], "config: tuner=lr_find in a sweep (-m)"),
    ],
)
def test_cli_refuses_with_one_line_before_any_work(tmp_path, args, fragment):
    """The CLI side of the refusals above (optimizer=lbfgs, trainer=ddp_sim, … take the same path)."""
    sweep = [f"hydra.sweep.dir={tmp_path / 'sweep'}"] if "," in args[0] else []
    result = run_app(tmp_path, *TINY, "tuner=lr_find", *args, *sweep, first=["-m"] if sweep else [])
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in result.stderr, result.stderr
    assert not list(tmp_path.rglob("lr_find.json")) and not list(tmp_path.rglob("*.ckpt"))
