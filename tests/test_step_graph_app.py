"""Issue 13 §4 in the app: ``model.cuda_graph`` replays a captured training step on the direct fast
path (lecturenn/training/fast_path.py, "CUDA graphs"). On the CPU with the private "record" backend
(lecturenn.step_graph): the same steps bitwise, the same losses handed to the callbacks, the epoch
means read from the graph's sums; the refusals. The real capture: test_cuda_graph.py."""

from __future__ import annotations

import functools
import math

import lightning as L
import pytest
import torch
from conftest import bare_trainer, iris_module

from lecturenn.optim import LAMB
from lecturenn.training import ThetaMLPModule
from lecturenn.training.guards import DivergenceGuard

EPOCHS = 3  # iris: 105 training rows in batches of 8 -> 13 full batches and one of 1 row


pytestmark = pytest.mark.usefixtures("quiet_lightning")


class Losses(L.Callback):
    """Every step's loss as the callbacks (and the divergence guard) are handed it."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.seen.append(loss.detach().clone())


def fit(graph, optimizer, epochs=EPOCHS, backend="record", callbacks=(), accelerator="cpu", **kw):
    model, dm = iris_module(optimizer=optimizer, cuda_graph=graph, **kw)
    if graph and backend:
        model._cuda_graph_backend = backend
    losses = Losses()
    trainer = bare_trainer(epochs, [losses, DivergenceGuard(), *callbacks], accelerator)
    trainer.fit(model, datamodule=dm)
    return trainer, model, losses.seen


OPTIMIZERS = {
    "sgd": functools.partial(torch.optim.SGD, lr=0.2, momentum=0.9),
    # fused: the CPU's Adam without host reads of its step count (the CUDA graph makes it capturable)
    "adam": functools.partial(torch.optim.Adam, lr=0.01, fused=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_captured_step_trains_bitwise_as_the_direct_path(name):
    ref_trainer, ref, ref_losses = fit(False, OPTIMIZERS[name])
    trainer, model, losses = fit(True, OPTIMIZERS[name])
    assert model.fast_path_in_use == "direct" and trainer.global_step == ref_trainer.global_step == 42
    assert all(torch.equal(a, b) for a, b in zip(model.net.thetas, ref.net.thetas))
    assert len(losses) == len(ref_losses) == EPOCHS * 2  # batch groups of 8 steps: 8 + 6 per epoch
    assert all(torch.equal(a, b) for a, b in zip(losses, ref_losses))  # each step's own J, not the last
    got, want = trainer.callback_metrics, ref_trainer.callback_metrics
    assert float(got["train/acc"]) == float(want["train/acc"])  # counts: exact
    assert math.isclose(
        float(got["train/loss"]), float(want["train/loss"]), rel_tol=1e-6
    )  # summed in another order
    assert float(got["val/loss"]) == float(want["val/loss"])
    assert model._step_graph is None  # released when training ends


class KeepGraph(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        self.graph = pl_module._step_graph


def test_a_graph_per_batch_size_and_learning_rate_and_a_schedule_trains_bitwise_as_eager():
    halve = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    _, ref, ref_losses = fit(False, OPTIMIZERS["adam"], scheduler=halve)
    keep = KeepGraph()
    _, model, losses = fit(True, OPTIMIZERS["adam"], scheduler=halve, callbacks=[keep])
    assert all(torch.equal(a, b) for a, b in zip(model.net.thetas, ref.net.thetas))
    assert all(torch.equal(a, b) for a, b in zip(losses, ref_losses))
    # per epoch a new lr: the 13 full batches warm up 3 times and are captured; the 1-row last
    # batch (one per epoch) never gets past its warm-up
    graph = keep.graph
    assert (graph.captures, graph.eager_steps, graph.replays) == (3, 12, 30)


@pytest.mark.parametrize(
    "kw, optimizer, backend, message",
    [
        (
            {},
            OPTIMIZERS["sgd"],
            None,
            "model.cuda_graph=true needs a CUDA device, but the module trains on 'cpu'",
        ),
        ({"fast_path": "groups"}, OPTIMIZERS["sgd"], "record", "needs model.fast_path=direct"),
        ({}, functools.partial(LAMB, lr=0.01), "record", "not LAMB"),
        ({}, functools.partial(torch.optim.LBFGS, lr=1), "record", "not LBFGS"),
        ({"dropout": 0.2}, OPTIMIZERS["sgd"], "record", "does not capture dropout"),
    ],
)
def test_what_cannot_be_captured_is_refused_with_one_line(kw, optimizer, backend, message):
    with pytest.raises(ValueError, match=message) as err:
        fit(True, optimizer, epochs=1, backend=backend, **kw)
    assert "\n" not in str(err.value) and str(err.value).endswith("or set model.cuda_graph=false")


def test_cuda_graph_must_be_a_bool():
    with pytest.raises(ValueError, match="model.cuda_graph must be true or false, got 'yes'"):
        ThetaMLPModule(4, 3, "multiclass", cuda_graph="yes")
