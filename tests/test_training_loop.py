"""ThetaMLPModule's own optimisation loop: batch groups (several optimizer steps per
``training_step``), the automatic-optimisation fallback, L-BFGS closures, schedulers, max_steps."""

import functools

import lightning as L
import pytest
import torch
from conftest import bare_trainer, iris_module, module_for

from lecturenn.data import SklearnDataModule, TensorBatches
from lecturenn.data.batches import BatchGroup
from lecturenn.training import ThetaMLPModule
from lecturenn.training.guards import DivergenceGuard, TrainingDiverged

EPOCHS = 3


pytestmark = pytest.mark.usefixtures("quiet_lightning")


def fit(
    steps_per_execution=8,
    automatic=None,
    optimizer=None,
    scheduler=None,
    epochs=EPOCHS,
    batch_size=8,  # 105 training rows: 14 steps per epoch
    callbacks=(),
    **trainer_kw,
):
    model, dm = iris_module(batch_size, steps_per_execution, optimizer, scheduler=scheduler)
    if automatic is not None:
        model.automatic_optimization = automatic
    trainer = bare_trainer(epochs, [DivergenceGuard(), *callbacks], **trainer_kw)
    trainer.fit(model, datamodule=dm)
    return trainer, model


def thetas(model):
    return [t.detach().clone() for t in model.net.thetas]


def test_batch_groups_take_the_same_steps_as_one_batch_per_step():
    """Grouping changes only how often Lightning's loop runs: Θ, the step count and the logged
    epoch metrics are bitwise those of one mini-batch per training_step, and of automatic
    optimisation."""
    runs = {
        "group8": fit(steps_per_execution=8),
        "group1": fit(steps_per_execution=1),
        "automatic": fit(automatic=True),
    }
    for name, (trainer, model) in runs.items():
        assert trainer.global_step == EPOCHS * 14, name
        assert model.automatic_optimization == (name == "automatic")
        # nothing observes the per-step hooks: the configured direct path runs
        assert model.fast_path_in_use == ("none" if name == "automatic" else "direct")
    ref_trainer, ref = runs["automatic"]
    for name in ("group8", "group1"):
        trainer, model = runs[name]
        for a, b in zip(thetas(model), thetas(ref)):
            assert torch.equal(a, b), name
        for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
            assert torch.equal(trainer.callback_metrics[key], ref_trainer.callback_metrics[key]), (name, key)


class HookCounter(L.Callback):
    def __init__(self):
        self.calls = {"backward": 0, "after_backward": 0, "optimizer_step": 0}

    def on_before_backward(self, trainer, pl_module, loss):
        self.calls["backward"] += 1

    def on_after_backward(self, trainer, pl_module):
        self.calls["after_backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.calls["optimizer_step"] += 1


def test_per_step_hooks_still_run_for_callbacks_that_use_them():
    """A callback overriding a per-step hook turns the direct steps off (fast_path falls back to
    groups): every hook runs once per optimizer step, and Θ is the same as with the direct steps."""
    counter = HookCounter()
    trainer, model = fit(callbacks=[counter])
    assert model.fast_path_in_use == "groups"
    assert counter.calls == dict.fromkeys(counter.calls, EPOCHS * 14)
    for a, b in zip(thetas(model), thetas(fit()[1])):
        assert torch.equal(a, b)


def test_groups_are_what_the_data_module_serves_to_the_module():
    trainer, model = fit(steps_per_execution=4)
    loader = trainer.datamodule.train_dataloader()
    assert model.batch_group_size == 4 and loader.group_size == 4
    assert len(loader) == 4 and loader.num_batches == 14  # groups of 4, 4, 4, 2
    groups = list(loader)
    assert all(isinstance(g, BatchGroup) for g in groups) and [len(g) for g in groups] == [4, 4, 4, 2]
    flat = [b for g in groups for b in g]
    loader.group_size = 1
    for (X1, Y1), (X2, Y2) in zip(flat, loader):
        assert torch.equal(X1, X2) and torch.equal(Y1, Y2)


def test_gradient_clipping_falls_back_to_automatic_optimisation():
    trainer, model = fit(gradient_clip_val=0.1)
    assert model.automatic_optimization and model.batch_group_size == 1
    assert trainer.global_step == EPOCHS * 14
    unclipped = thetas(fit()[1])
    assert any(not torch.equal(a, b) for a, b in zip(thetas(model), unclipped))
    trainer, model = fit(accumulate_grad_batches=2)
    assert model.automatic_optimization and trainer.global_step == EPOCHS * 7


def test_lbfgs_steps_through_a_closure_and_records_one_loss_per_step():
    lbfgs = functools.partial(torch.optim.LBFGS, lr=1, max_iter=10, line_search_fn="strong_wolfe")
    trainer, model = fit(optimizer=lbfgs, epochs=6, batch_size=-1)  # full batch: one step per epoch
    assert trainer.global_step == 6
    assert trainer.callback_metrics["val/acc"] > 0.9
    auto_trainer, auto = fit(optimizer=lbfgs, epochs=6, batch_size=-1, automatic=True)
    for a, b in zip(thetas(model), thetas(auto)):
        assert torch.equal(a, b)
    # J is recorded once per step (at the step's start), not once per closure evaluation as
    # automatic optimisation does (its training_step runs for every evaluation)
    net, (X, Y) = model.net, trainer.datamodule.train
    assert trainer.callback_metrics["train/loss"] > net.cost(X, Y, model.lam)  # J before the last step


def test_max_steps_stops_inside_a_group():
    trainer, _ = fit(steps_per_execution=8, max_steps=5, epochs=10)
    assert trainer.global_step == 5


def test_epoch_schedulers_are_stepped_under_manual_optimisation():
    step_lr = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    trainer, model = fit(scheduler=step_lr)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.2 * 0.5**EPOCHS)
    plateau = functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=0, factor=0.5)
    trainer, _ = fit(scheduler=plateau, epochs=6, optimizer=functools.partial(torch.optim.SGD, lr=5.0))
    assert trainer.optimizers[0].param_groups[0]["lr"] < 5.0  # val/loss stopped improving at some epoch


def test_plateau_scheduler_on_a_metric_never_logged_is_a_clear_error():
    plateau = functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau)
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="monitors 'val/nope', which was not logged"):
        dm = SklearnDataModule("iris", batch_size=8, seed=0)
        dm.setup()
        info = dm.info
        model = module_for(
            info,
            scheduler=plateau,
            scheduler_monitor="val/nope",
        )
        L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False).fit(
            model, datamodule=dm
        )


def test_divergence_inside_a_group_names_the_step():
    trainer_kw = {}
    with pytest.raises(TrainingDiverged, match=r"at step \d+"):
        fit(optimizer=functools.partial(torch.optim.SGD, lr=1e7), **trainer_kw)


@pytest.mark.parametrize(
    "bad, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("8", TypeError)]
)
def test_steps_per_execution_must_be_a_positive_integer(bad, error):
    with pytest.raises(error, match="model.steps_per_execution"):
        ThetaMLPModule(4, 3, "multiclass", steps_per_execution=bad)


def test_tensor_batches_group_size_is_checked():
    X, Y = torch.zeros(10, 2), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="group_size"):
        TensorBatches(X, Y, 4, shuffle=False, group_size=0)
    groups = list(TensorBatches(X, Y, 4, shuffle=False, group_size=2))
    assert [[len(b[0]) for b in g] for g in groups] == [[4, 4], [2]]


def test_a_subclass_with_its_own_training_step_gets_automatic_optimisation():
    """Subclasses written the usual Lightning way (training_step returns the loss) keep working:
    automatic optimisation, one (X, Y) batch per step."""

    class Own(ThetaMLPModule):
        def training_step(self, batch, batch_idx):
            X, Y = batch
            assert isinstance(X, torch.Tensor)
            return self.net.cost(X, Y, self.batch_lam(X.shape[0]))

    dm = SklearnDataModule("iris", batch_size=8, seed=0)
    dm.setup()
    info = dm.info
    model = Own(info.n_features, info.n_outputs, info.task, data_info=info.to_dict(), init_seed=0)
    assert model.automatic_optimization and model.batch_group_size == 1
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 2 * 14


class _RecordingPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """ReduceLROnPlateau that records the metric it was stepped with (one entry per step)."""

    def __init__(self, optimizer, **kw):
        super().__init__(optimizer, **kw)
        self.seen = []

    def step(self, metrics, *args, **kw):
        self.seen.append(float(metrics))
        super().step(metrics, *args, **kw)


class _LearningRates(L.Callback):
    def __init__(self):
        self.logged = []

    # a callback's on_train_epoch_end runs before the module's (which logs): read it one hook later
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch:
            self.logged.append(float(trainer.callback_metrics["train/lr"]))

    def on_train_end(self, trainer, pl_module):
        self.logged.append(float(trainer.callback_metrics["train/lr"]))


@pytest.mark.parametrize("automatic", [False, True], ids=["manual", "automatic"])
@pytest.mark.parametrize("every", [1, 2, 3])
@pytest.mark.parametrize("kind", ["plateau", "step", "cosine"])
def test_every_scheduler_under_every_validation_cadence(kind, every, automatic):
    """A val-watching scheduler steps only after a validation, on the loss of that validation;
    epoch schedulers step every epoch; train/lr is the rate each epoch trained with."""
    epochs = 6
    scheduler = {
        "plateau": functools.partial(_RecordingPlateau, patience=0, factor=0.5),
        "step": functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        "cosine": functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs),
    }[kind]
    lrs = _LearningRates()
    trainer, model = fit(
        scheduler=scheduler,
        epochs=epochs,
        automatic=automatic,
        check_val_every_n_epoch=every,
        callbacks=[lrs],
    )
    assert trainer.current_epoch == epochs
    assert lrs.logged[0] == pytest.approx(0.2)
    final = trainer.optimizers[0].param_groups[0]["lr"]
    if kind == "plateau":
        assert len(trainer.lr_scheduler_configs[0].scheduler.seen) == epochs // every
    elif kind == "step":
        assert lrs.logged == pytest.approx([0.2 * 0.5**e for e in range(epochs)])
        assert final == pytest.approx(0.2 * 0.5**epochs)
    else:
        assert final == pytest.approx(0.0, abs=1e-12)


def test_cuda_rng_states_saved_on_more_gpus_restore_on_fewer(monkeypatch):
    """A checkpoint saved with 4 visible GPUs loads where 1 is visible (issue 13: IndexError)."""
    from lecturenn.training import checkpoint

    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append(device))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("restores every state"))
    states = checkpoint.rng_states()
    states["cuda"] = [torch.zeros(16, dtype=torch.uint8) for _ in range(4)]
    checkpoint.restore_rng_states(states)
    assert restored == [0]
