"""Issue 13 §4 on a GPU: the training step really captured in a CUDA graph and replayed
(lecturenn.step_graph, backend "cuda"). Skipped without a GPU; the same properties with the CPU
"record" backend are in test_step_graph.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from test_step_graph import _Est, _train
from test_step_graph_app import OPTIMIZERS, KeepGraph, fit

from lecturenn import ThetaMLP
from lecturenn.estimators import ThetaMLPClassifier
from lecturenn.estimators._engine import Engine

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _cuda_engine(solver, graph):
    net = ThetaMLP([64, 100, 10], "relu", "softmax", "manual", generator=3, device="cuda")
    net.validate_inputs = False
    # the same optimizer flags (capturable=True) on both sides: replay vs eager of one step
    return Engine(net, solver, _Est(True), "manual", graph)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_100_replayed_steps_equal_the_eager_loop_bitwise_on_cuda(solver):
    eager, graphed = _cuda_engine(solver, None), _cuda_engine(solver, "cuda")
    expected = _train(eager, 100, device="cuda")
    got = _train(graphed, 100, device="cuda")
    torch.cuda.synchronize()
    for a, b in zip(expected, got):
        assert torch.equal(a, b)
    assert torch.equal(eager.loss_sum, graphed.loss_sum)
    graph = graphed.graph
    # 64-100-10, batch 64 and a short last batch of 37: two graphs, 94 of the 100 steps replayed
    assert (graph.captures, graph.graphs, graph.eager_steps, graph.replays) == (2, 2, 6, 94)


def test_replays_keep_the_optimizer_state_objects_on_cuda():
    engine = _cuda_engine("adam", "cuda")
    _train(engine, 20, device="cuda")
    state = dict(engine.optimizer.state[engine.param])
    _train(engine, 30, device="cuda")
    after = engine.optimizer.state[engine.param]
    assert all(after[k] is v for k, v in state.items())
    assert after["step"].is_cuda and float(after["step"]) == 50  # the device-side count advanced in replay


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_estimator_cuda_graph_end_to_end_equals_eager_bitwise(solver):
    X, y = load_digits(return_X_y=True)
    kw = dict(hidden_layer_sizes=(100,), solver=solver, batch_size=64, max_iter=6, random_state=0)
    eager = ThetaMLPClassifier(**kw, device="cuda").fit(X / 16, y)
    graphed = ThetaMLPClassifier(**kw, device="cuda", cuda_graph=True).fit(X / 16, y)
    for a, b in zip(eager.thetas_, graphed.thetas_):
        assert np.array_equal(a, b)
    assert eager.loss_curve_ == graphed.loss_curve_
    graph = graphed._engine.graph
    assert graph.captures == 2 and graph.replays > 100  # 1797 rows: 28 batches of 64 and one of 5
    np.testing.assert_array_equal(eager.predict(X / 16), graphed.predict(X / 16))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_app_module_cuda_graph_equals_the_direct_path_bitwise(name):
    _, ref, ref_losses = fit(False, OPTIMIZERS[name], accelerator="cuda")
    keep = KeepGraph()
    trainer, model, losses = fit(True, OPTIMIZERS[name], backend="cuda", accelerator="cuda", callbacks=[keep])
    assert model.net.thetas[0].is_cuda and model.fast_path_in_use == "direct"
    assert all(torch.equal(a, b) for a, b in zip(model.net.thetas, ref.net.thetas))
    assert all(torch.equal(a, b) for a, b in zip(losses, ref_losses))
    assert keep.graph.captures == 1 and keep.graph.replays == 42 - 3 - 3  # iris: the 1-row batch stays eager
