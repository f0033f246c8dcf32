"""Issue 13 §4 on the CPU: the captured training step (lecturenn.step_graph) with the "record"
backend, which replays by calling the step on the static buffers under a no-host-sync dispatch
mode. Proves the plumbing and the absence of host syncs; the real capture is in test_cuda_graph.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from lecturenn import ThetaMLP
from lecturenn.estimators import ThetaMLPClassifier, ThetaMLPRegressor
from lecturenn.estimators._engine import Batches, Engine
from lecturenn.regularization import batch_lam
from lecturenn.step_graph import HostSyncError, StepGraph
from lecturenn.theta import with_bias_unit


@pytest.fixture(autouse=True)
def _quiet_one_thread():
    threads = torch.get_num_threads()  # small steps: one thread (OpenMP threads spin on a busy machine)
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_num_threads(threads)


class _Est:  # the hyperparameters make_optimizer reads (scikit-learn's defaults)
    learning_rate_init, beta_1, beta_2, epsilon, momentum, nesterovs_momentum = (
        1e-3,
        0.9,
        0.999,
        1e-8,
        0.9,
        True,
    )

    def __init__(self, cuda_graph):
        self.cuda_graph = cuda_graph


def _engine(solver, graph, sizes=(64, 100, 10), backprop="manual"):
    net = ThetaMLP(list(sizes), "relu", "softmax", backprop, generator=3)
    net.validate_inputs = False  # as the estimators do (the checks read a flag on the host)
    return Engine(net, solver, _Est(graph is not None), backprop, graph)


def _train(engine, steps, N=64 * 4 + 37, batch=64, lam=1e-3, device="cpu"):
    """``steps`` mini-batch steps over N rows (reshuffled every epoch, a short last batch of 37)."""
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(N, 64, generator=gen).to(device)
    Y = torch.nn.functional.one_hot(torch.randint(0, 10, (N,), generator=gen), 10).float().to(device)
    data, shuffle, done = Batches(with_bias_unit(X), Y, batch, True), torch.Generator().manual_seed(9), 0
    while done < steps:
        for Xb, Yb in data.epoch(shuffle):
            lam_b = batch_lam(lam, Xb.shape[0], N)
            if engine.graph is None:
                engine.accumulate(Xb, Yb, lam_b)
                engine.step()
            else:
                engine.graph((Xb, Yb), (lam_b,), (engine.optimizer.param_groups[0]["lr"],))
            done += 1
            if done == steps:
                break
    return [t.clone() for t in engine.thetas]


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_100_replayed_steps_equal_the_eager_loop_bitwise(solver, backprop):
    eager, graphed = _engine(solver, None, backprop=backprop), _engine(solver, "record", backprop=backprop)
    state = None
    graph = graphed.graph
    expected = _train(eager, 100)
    got = _train(graphed, 100)
    for a, b in zip(expected, got):
        assert torch.equal(a, b)
    assert torch.equal(eager.loss_sum, graphed.loss_sum)  # the running sum, read after the replays
    # 5 batches per epoch (4 full + 1 of 37 rows): two signatures, each warmed up 3 times, then captured
    assert (graph.captures, graph.graphs, graph.eager_steps, graph.replays) == (2, 2, 6, 94)
    state = graphed.optimizer.state[graphed.param]
    assert state and all(v is graphed.optimizer.state[graphed.param][k] for k, v in state.items())


def test_the_optimizer_state_and_outputs_stay_the_same_objects_across_replays():
    engine = _engine("adam", "record")
    _train(engine, 20)  # past the captures
    state = dict(engine.optimizer.state[engine.param])
    pointers = {k: v.data_ptr() for k, v in state.items()}
    outputs = (engine.loss_sum, engine.param, engine.param.grad)
    addresses = [t.data_ptr() for t in outputs]
    _train(engine, 30)
    after = engine.optimizer.state[engine.param]
    assert all(after[k] is v and v.data_ptr() == pointers[k] for k, v in state.items())
    assert [t.data_ptr() for t in (engine.loss_sum, engine.param, engine.param.grad)] == addresses
    assert engine.param.grad is outputs[2]
    assert after["step"].item() == 50


def test_static_buffers_are_refilled_before_every_call_and_keep_their_address():
    seen = []

    def step(x, y, scale):
        seen.append((x.data_ptr(), x.clone(), y.clone(), scale))

    graph = StepGraph(step, "cpu", warmup=2, backend="record")
    batches = [(torch.full((4, 3), float(i)), torch.full((4,), -float(i))) for i in range(6)]
    short = (torch.arange(6.0).reshape(2, 3), torch.ones(2))
    for i, b in enumerate(batches):
        graph(b, (0.5,))
        if i == 3:
            graph(short, (0.25,))
    assert len(seen) == 7  # one run per call: the capturing call replays once, capture itself runs nothing
    full = [s for s in seen if s[1].shape[0] == 4]
    assert len({s[0] for s in full}) == 1  # one static X for the full batches
    assert seen[4][0] != full[0][0] and torch.equal(seen[4][1], short[0]) and seen[4][3] == 0.25
    for (_, x, y, scale), (bx, by) in zip(full, batches):
        assert torch.equal(x, bx) and torch.equal(y, by) and scale == 0.5
    assert graph.static_inputs(batches[0], (0.5,))[0].data_ptr() == full[0][0]
    assert (graph.captures, graph.eager_steps, graph.replays) == (1, 3, 4)


def test_args_and_key_select_graphs_and_the_cache_drops_the_least_recently_used():
    calls = []
    graph = StepGraph(lambda x, lam: calls.append(lam), "cpu", warmup=1, max_graphs=2, backend="record")
    x = torch.zeros(3)
    for lam in (1.0, 1.0, 2.0, 2.0, 1.0, 3.0, 3.0):
        graph((x,), (lam,))
    assert calls == [1.0, 1.0, 2.0, 2.0, 1.0, 3.0, 3.0]
    assert graph.captures == 3 and graph.graphs == 2
    assert graph.static_inputs((x,), (2.0,)) is None  # dropped: 1.0 was used after it
    graph((x,), (1.0,), key=(0.1,))  # the same args with another learning rate: a new graph
    assert graph.static_inputs((x,), (1.0,), (0.1,)) is not None and graph.eager_steps == 4


def test_a_step_that_reads_a_tensor_on_the_host_is_refused():
    graph = StepGraph(lambda x: x.sum().item(), "cpu", backend="record")
    with pytest.raises(HostSyncError, match=r"aten\._local_scalar_dense.*cannot capture"):
        graph((torch.ones(2),))
    branch = StepGraph(lambda x: x.mul_(2) if bool(x.sum() > 0) else x, "cpu", backend="record")
    with pytest.raises(HostSyncError):
        branch((torch.ones(2),))


def test_lamb_reads_its_step_count_on_the_host_so_it_cannot_be_captured():
    engine = _engine("lamb", "record", sizes=(4, 5, 3))
    with pytest.raises(HostSyncError):
        engine.graph((with_bias_unit(torch.randn(6, 4)), torch.eye(3)[[0, 1, 2, 0, 1, 2]]), (0.0,))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"warmup": 0}, "warmup must be an int >= 1, got 0"),
        ({"max_graphs": True}, "max_graphs must be an int >= 1, got True"),
        ({"backend": "cpu"}, "backend must be 'cuda' or 'record', got 'cpu'"),
        ({"backend": "cuda"}, r"StepGraph\(backend='cuda'\) needs device='cuda'"),
    ],
)
def test_bad_step_graph_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        StepGraph(lambda x: None, "cpu", **kwargs)
    assert "\n" not in str(err.value)
    with pytest.raises(TypeError, match="step must be callable"):
        StepGraph(None, "cpu", backend="record")


# -- the estimators' option -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:700] / 16, y[:700]


def _fit(X, y, graph, **kw):
    kw = {
        "hidden_layer_sizes": (32,),
        "batch_size": 64,
        "max_iter": 4,
        "random_state": 0,
        "device": "cpu",
        **kw,
    }
    est = ThetaMLPClassifier(**kw, cuda_graph=graph)
    if graph:
        est._cuda_graph_backend = "record"
    return est.fit(X, y)


@pytest.mark.parametrize(
    "kw",
    [
        {"solver": "adam"},
        {"solver": "adamw", "early_stopping": True},
        {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.1},
        {"solver": "gd"},
    ],
)
def test_estimator_cuda_graph_trains_the_same_network_bitwise(digits, kw):
    eager, graphed = _fit(*digits, False, **kw), _fit(*digits, True, **kw)
    for a, b in zip(eager.thetas_, graphed.thetas_):
        assert np.array_equal(a, b)
    assert eager.loss_curve_ == graphed.loss_curve_
    graph = graphed._engine.graph
    assert graph.replays > 0 and graph.captures >= 1
    if kw.get("learning_rate") == "invscaling":  # a new η each epoch: a new graph each epoch
        assert graph.captures >= 2


def test_estimator_partial_fit_and_warm_start_keep_training_the_same_way(digits):
    X, y = digits
    eager = ThetaMLPClassifier((16,), batch_size=50, random_state=1, device="cpu")
    graphed = clone(eager).set_params(cuda_graph=True)
    graphed._cuda_graph_backend = "record"
    for _ in range(5):
        eager.partial_fit(X, y, classes=np.arange(10))
        graphed.partial_fit(X, y, classes=np.arange(10))
    graphed.set_params(cuda_graph=False)  # switched off mid-way: the optimizer state carries over
    eager.partial_fit(X, y)
    graphed.partial_fit(X, y)
    for a, b in zip(eager.thetas_, graphed.thetas_):
        assert np.array_equal(a, b)


def test_estimator_cuda_graph_round_trips_params_clone_and_save(digits, tmp_path):
    est = ThetaMLPRegressor((8,), cuda_graph=True)
    assert est.get_params()["cuda_graph"] is True and clone(est).cuda_graph is True
    assert ThetaMLPClassifier().get_params()["cuda_graph"] is False
    assert est.set_params(cuda_graph=False).cuda_graph is False
    fitted = _fit(*digits, True)
    path = fitted.save(tmp_path / "g.npz")
    loaded = ThetaMLPClassifier.load(path)
    assert loaded.cuda_graph is True
    np.testing.assert_array_equal(loaded.predict_proba(digits[0]), fitted.predict_proba(digits[0]))


def test_a_file_saved_before_cuda_graph_existed_still_loads(digits, tmp_path):
    import json

    path = _fit(*digits, False).save(tmp_path / "old.npz")
    arrays = dict(np.load(path, allow_pickle=False))
    doc = json.loads(str(arrays["estimator"]))
    del doc["params"]["cuda_graph"]  # what a file written before the option holds
    arrays["estimator"] = np.array(json.dumps(doc))
    np.savez(tmp_path / "older.npz", **arrays)
    assert ThetaMLPClassifier.load(tmp_path / "older.npz").cuda_graph is False


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"device": "cpu"}, r"cuda_graph=True needs device='cuda' .* the device here is 'cpu'"),
        ({"solver": "lbfgs"}, r"not solver='lbfgs'"),
        ({"solver": "lamb"}, r"not solver='lamb'"),
        ({"class_weight": "balanced"}, "does not support sample_weight or class_weight"),
        ({"cuda_graph": "yes"}, "cuda_graph must be True or False, got 'yes'"),
    ],
)
def test_estimator_cuda_graph_refusals_are_one_line_before_any_work(digits, kw, message):
    est = ThetaMLPClassifier((8,), **{"device": "cpu", "cuda_graph": True, **kw})
    if "device" not in kw:
        est._cuda_graph_backend = "record"  # past the device check, on to the one tested
    with pytest.raises(ValueError, match=message) as err:
        est.fit(*digits)
    assert "\n" not in str(err.value) and not hasattr(est, "net_")


def test_estimator_cuda_graph_refuses_sample_weight(digits):
    X, y = digits
    est = ThetaMLPRegressor((8,), cuda_graph=True, device="cpu")
    est._cuda_graph_backend = "record"
    with pytest.raises(ValueError, match="does not support sample_weight or class_weight"):
        est.fit(X, y.astype(float), sample_weight=np.arange(len(y)) % 3)
    assert not hasattr(est, "net_")
    est.fit(X, y.astype(float), sample_weight=np.ones(len(y)))  # all ones: the unweighted cost, allowed


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_resume_from_a_file_of_a_captured_run_continues_bitwise(digits, tmp_path, solver):
    """A run trained with cuda_graph=True (Adam capturable: its step count a device tensor), saved,
    loaded and trained on (captured again) equals the uninterrupted eager run bitwise: the optimizer
    state the graphs left in place is what the file holds."""
    X, y = digits
    kw = {"hidden_layer_sizes": (16,), "batch_size": 50, "random_state": 1, "device": "cpu", "solver": solver}
    eager = ThetaMLPClassifier(**kw)
    graphed = ThetaMLPClassifier(**kw, cuda_graph=True)
    graphed._cuda_graph_backend = "record"
    for _ in range(3):
        eager.partial_fit(X, y, classes=np.arange(10))
        graphed.partial_fit(X, y, classes=np.arange(10))
    resumed = ThetaMLPClassifier.load(graphed.save(tmp_path / "run.npz"))
    assert resumed.cuda_graph is True
    resumed._cuda_graph_backend = "record"
    for _ in range(2):
        eager.partial_fit(X, y)
        resumed.partial_fit(X, y)
    assert resumed._engine.graph.replays > 0
    for a, b in zip(eager.thetas_, resumed.thetas_):
        assert np.array_equal(a, b)
    assert eager.loss_curve_ == resumed.loss_curve_
