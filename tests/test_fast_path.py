"""Pins lecturenn/training/fast_path.py: every path (direct, groups, none) takes bitwise the same
steps, counts them, shows the callbacks the same batches and writes the same checkpoint; the
configured path is validated (fallback + one logged line); and each private Lightning / torch API
that the module docstring lists behaves as relied on — an upgrade that changes one fails here."""

import functools
import inspect
import logging
import os
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import bare_trainer, iris_module
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

from lecturenn.training import ThetaMLPModule
from lecturenn.training import fast_path as fp
from lecturenn.training.checkpoint import load_checkpoint
from lecturenn.training.running_means import RunningMeans, StageMeans

EPOCHS, STEPS_PER_EPOCH = 3, 14  # iris: 105 training rows in batches of 8


pytestmark = pytest.mark.usefixtures("quiet_lightning")


class BatchRecorder(L.Callback):
    """What a per-batch callback sees: (batch_idx, global_step, the losses it is handed)."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.seen.append((batch_idx, trainer.global_step, loss.detach().reshape(-1).clone()))


class HookCounter(L.Callback):
    def __init__(self):
        self.calls = {"backward": 0, "after_backward": 0, "optimizer_step": 0}

    def on_before_backward(self, trainer, pl_module, loss):
        self.calls["backward"] += 1

    def on_after_backward(self, trainer, pl_module):
        self.calls["after_backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.calls["optimizer_step"] += 1


def make_model(fast_path="direct", optimizer=None, **kw):
    return iris_module(fast_path=fast_path, optimizer=optimizer, **kw)


def fit(fast_path="direct", callbacks=(), optimizer=None, epochs=EPOCHS, **trainer_kw):
    model, dm = make_model(fast_path, optimizer)
    trainer = bare_trainer(epochs, callbacks, **trainer_kw)
    trainer.fit(model, datamodule=dm)
    return trainer, model


def thetas(model):
    return [t.detach().clone() for t in model.net.thetas]


def same_tree(a, b) -> bool:
    """Equal nested dicts/lists with tensors compared bitwise."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_every_path_takes_bitwise_the_same_steps(tmp_path, optimizer):
    """Θ, global_step, the epoch metrics and the checkpoint (weights, optimizer state, step and
    epoch counters, the loops' progress) are bitwise those of Lightning's own loop; the callbacks
    see every step's loss, in groups on the fast paths."""
    opt = functools.partial(torch.optim.Adam, lr=0.01) if optimizer == "adam" else None
    runs = {}
    for path in fp.FAST_PATHS:
        recorder = BatchRecorder()
        trainer, model = fit(path, callbacks=[recorder], optimizer=opt)
        assert model.fast_path_in_use == path  # nothing forced a fallback
        trainer.save_checkpoint(tmp_path / f"{path}.ckpt")
        runs[path] = trainer, model, recorder.seen, load_checkpoint(tmp_path / f"{path}.ckpt")
    ref_trainer, ref, ref_seen, ref_ckpt = runs["none"]
    assert ref_trainer.global_step == EPOCHS * STEPS_PER_EPOCH
    assert [s for _, s, _ in ref_seen] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    for path in ("direct", "groups"):
        trainer, model, seen, ckpt = runs[path]
        assert trainer.global_step == ref_trainer.global_step, path
        assert all(torch.equal(a, b) for a, b in zip(thetas(model), thetas(ref))), path
        for key in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best"):
            assert torch.equal(trainer.callback_metrics[key], ref_trainer.callback_metrics[key]), (path, key)
        # batch groups of 8 and 6 steps: the hook sees the group's losses and the step after it
        groups = [(i % 2, 14 * (i // 2) + (8 if i % 2 == 0 else 14)) for i in range(2 * EPOCHS)]
        assert [(i, s) for i, s, _ in seen] == groups, path
        assert torch.equal(torch.cat([losses for *_, losses in seen]), torch.cat([l for *_, l in ref_seen]))
        for key in (
            "state_dict",
            "optimizer_states",
            "global_step",
            "epoch",
            "rng_states",
            "optimizer_class",
        ):
            assert same_tree(ckpt[key], ref_ckpt[key]), (path, key)
    # the two manual paths agree on everything Lightning saves, the loops' progress included
    direct, groups = runs["direct"][3], runs["groups"][3]
    for key in ("loops", "callbacks", "hyper_parameters", "lr_schedulers"):
        if key == "hyper_parameters":
            assert {k: v for k, v in direct[key].items() if k != "fast_path"} == {
                k: v for k, v in groups[key].items() if k != "fast_path"
            }
        else:
            assert same_tree(direct.get(key), groups.get(key)), key


def test_groups_run_every_per_step_hook_and_direct_falls_back_to_them(caplog):
    """fast_path=groups calls on_before_backward, on_after_backward and on_before_optimizer_step
    once per optimizer step; configured direct, a callback overriding them makes the run fall back
    to groups with one logged line naming the callback and the hook."""
    for path in ("groups", "direct"):
        counter = HookCounter()
        with caplog.at_level(logging.INFO, logger="lecturenn.training.fast_path"):
            caplog.clear()
            _, model = fit(path, callbacks=[counter])
        assert model.fast_path_in_use == "groups"
        assert counter.calls == dict.fromkeys(counter.calls, EPOCHS * STEPS_PER_EPOCH)
        notes = [r.getMessage() for r in caplog.records if r.name == "lecturenn.training.fast_path"]
        if path == "direct":
            assert notes == [
                "model.fast_path=direct: the callback HookCounter overrides on_before_backward; "
                "training with fast_path=groups"
            ]
        else:
            assert notes == []


def test_gradient_clipping_falls_back_to_lightnings_loop(caplog):
    with caplog.at_level(logging.INFO, logger="lecturenn.training.fast_path"):
        trainer, model = fit("direct", gradient_clip_val=0.1)
    assert model.automatic_optimization and model.fast_path_in_use == "none" and model.batch_group_size == 1
    assert trainer.global_step == EPOCHS * STEPS_PER_EPOCH
    assert any("trainer.gradient_clip_val=0.1" in r.getMessage() for r in caplog.records)


def test_direct_reason_names_what_the_direct_step_would_skip():
    """The validation of fast_path=direct, setting by setting (no Trainer needed)."""
    model, _ = make_model()

    def trainer(strategy=None, plugin=None, callbacks=(), precision="32-true"):
        strategy = strategy or SingleDeviceStrategy(device=torch.device("cpu"))
        return SimpleNamespace(
            strategy=strategy,
            precision_plugin=plugin or Precision(),
            callbacks=list(callbacks),
            precision=precision,
        )

    ddp = DDPStrategy.__new__(DDPStrategy)  # its type is all that is read
    assert fp.direct_reason(model, trainer(strategy=ddp)) == "the DDPStrategy is not a single-device strategy"
    scaled = MixedPrecision("16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu"))
    assert "scales the loss" in fp.direct_reason(model, trainer(plugin=scaled, precision="16-mixed"))

    class Custom(Precision):
        pass

    assert "Custom is not one of Lightning's plain ones" in fp.direct_reason(model, trainer(plugin=Custom()))
    assert "HookCounter overrides on_before_backward" in fp.direct_reason(
        model, trainer(callbacks=[HookCounter()])
    )

    class OwnBackward(ThetaMLPModule):
        def backward(self, loss, *args, **kwargs):
            loss.backward()

    own = OwnBackward(4, 3, "multiclass")
    assert fp.direct_reason(own, trainer()) == "OwnBackward overrides backward"
    assert fp.automatic_reason(None) is None
    assert fp.automatic_reason(SimpleNamespace(gradient_clip_val=None, accumulate_grad_batches=2)) == (
        "trainer.accumulate_grad_batches=2 (Lightning accumulates in its own loop only)"
    )


def test_fast_path_is_checked_and_none_is_lightnings_own_loop():
    with pytest.raises(ValueError, match="model.fast_path must be one of direct, groups, none, got 'fast'"):
        ThetaMLPModule(4, 3, "multiclass", fast_path="fast")
    model = ThetaMLPModule(4, 3, "multiclass", fast_path="none")
    assert model.automatic_optimization and model.batch_group_size == 1
    model.automatic_optimization = False  # the setter is a shortcut for fast_path
    assert model.fast_path == "groups" and model.batch_group_size == 32


# -- the private APIs of the module docstring, one test each --------------------------------------------
def test_private_api_1_lightning_optimizer_step_hooks():
    """LightningOptimizer.step = _on_before_step(); strategy.optimizer_step(...); _on_after_step(),
    and the manual-optimisation loop points those two at its step counter and profiler: the direct
    step counts (global_step) and profiles ("optimizer_step") every step as Lightning's step does."""
    source = inspect.getsource(LightningOptimizer.step)
    before, dispatch, after = (
        source.index("self._on_before_step()"),
        source.index("self._strategy.optimizer_step("),
        source.index("self._on_after_step()"),
    )
    assert before < dispatch < after
    wrapped = LightningOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    assert callable(wrapped._on_before_step) and callable(wrapped._on_after_step)
    counts = {}
    for path in ("direct", "groups"):
        trainer, _ = fit(path, profiler="simple", epochs=1)
        counts[path] = (trainer.global_step, len(trainer.profiler.recorded_durations["optimizer_step"]))
    assert counts["direct"] == counts["groups"] == (STEPS_PER_EPOCH, STEPS_PER_EPOCH)


def test_private_api_2_attached_trainer():
    model, dm = make_model()
    assert fp.attached_trainer(model) is None
    with pytest.raises(RuntimeError, match="not attached"):
        model.trainer  # noqa: B018 (the public property raises: why _trainer is read)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, datamodule=dm)
    assert fp.attached_trainer(model) is trainer is model.trainer


def test_private_api_3_module_attributes_outside_dict():
    """Parameters, buffers and submodules never live in the instance __dict__, so QuickSetattr's
    short way gives nn.Module's result; everything else still goes through nn.Module."""
    model = ThetaMLPModule(4, 3, "multiclass")
    model.register_buffer("scale", torch.ones(3))  # a buffer (the module itself keeps none)
    for name in ("net", "scale", "val_metrics"):
        assert name not in model.__dict__
    assert not any(n in model.net.__dict__ for n, _ in model.net.named_parameters(recurse=False))
    model._current_fx_name = "training_step"  # Lightning's per-hook write: the short way
    assert model.__dict__["_current_fx_name"] == "training_step"
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'scale'"):
        model.scale = 3  # a buffer's name: nn.Module's check still runs
    model.extra = 1.0
    model.extra = torch.nn.Parameter(torch.ones(2))  # a Parameter replaces the plain value
    assert "extra" not in model.__dict__ and "extra" in dict(model.named_parameters())


# -- issue 13: an empty epoch logs NaN on the module's device; threads by the strategy's device --------
def test_an_empty_epoch_logs_nan_on_the_modules_device(monkeypatch):
    nan, _ = RunningMeans().means(device="meta")
    assert nan.device.type == "meta" and nan.shape == ()
    assert torch.isnan(StageMeans(None).pop("val", "cpu")[0])
    model = ThetaMLPModule(4, 3, "multiclass", fast_path="none")
    monkeypatch.setattr(ThetaMLPModule, "device", property(lambda self: torch.device("meta")))
    logged = {}
    monkeypatch.setattr(model, "log", lambda name, value, **kw: logged.setdefault(name, (value, kw)))
    model._epoch_lr = 0.1
    model.on_train_epoch_end()  # nothing was recorded this epoch
    for name in ("train/loss", "train/acc"):
        value, kw = logged[name]
        assert kw["sync_dist"] and value.device.type == "meta", name


@pytest.mark.parametrize("device, divided", [("cpu", True), ("cuda", False)])
def test_ddp_threads_follow_the_strategys_device_not_the_unmoved_module(monkeypatch, device, divided):
    """setup() runs before Lightning moves the module (self.device is still CPU there): the
    cores are divided among data-parallel processes only when the strategy trains on the CPU."""
    model = ThetaMLPModule(4, 3, "multiclass")
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    fake = SimpleNamespace(
        datamodule=None,
        world_size=2,
        num_devices=2,
        strategy=SimpleNamespace(root_device=torch.device(device)),
    )
    model.trainer = fake
    try:
        model.setup("fit")
    finally:
        model.trainer = None
    assert calls == ([max(1, len(os.sched_getaffinity(0)) // 2)] if divided else [])
