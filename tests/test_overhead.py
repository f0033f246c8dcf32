"""What one training step costs in aten ops (≈ kernel launches), counted with torch.profiler on the CPU.

A step at the lecture's sizes is launch-bound on a GPU and Python/dispatch-bound on a CPU, so the
number of aten ops is the cost that can creep back unnoticed. The ceilings below are the counts
measured when they were written: a change that adds an op to the step fails here and must either
be justified (raise the ceiling, saying why in the commit) or be removed.
"""

import importlib

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import lecturenn as ln
from lecturenn.autograd_support import apply_function
from lecturenn.backprop import ThetaCost, ThetaForward


@pytest.fixture(scope="module")
def bench_module():
    return importlib.import_module("bench")  # benchmarks/bench.py (conftest puts benchmarks/ on sys.path)


ZERO_FILLS = {"aten::zeros", "aten::zero_", "aten::fill_", "aten::zeros_like"}


def _net(sizes, backprop="manual", hidden="sigmoid", output="softmax", dtype=torch.float32):
    return ln.ThetaMLP(sizes, hidden, output, backprop, generator=0, dtype=dtype)


def _batch(net, n, seed=1, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, net.sizes[0], generator=gen, dtype=dtype)
    K = net.sizes[-1]
    if net.head.name == "softmax":
        return X, torch.randint(0, K, (n,), generator=gen)
    if net.head.name == "sigmoid":
        return X, torch.randint(0, 2, (n, K), generator=gen).to(dtype)
    return X, torch.randn(n, K, generator=gen, dtype=dtype)


def _events(fn):
    """Run ``fn`` once under the CPU profiler; its events (after two unprofiled warm-up calls)."""
    fn(), fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.events()


def _direct_aten_children(events, node_name):
    """Names of the aten ops a backward node (e.g. ``ThetaCostBackward``) calls itself."""
    names = []
    for e in events:
        if e.name == node_name:
            names += [c.name for c in e.cpu_children if c.name.startswith("aten::")]
    return names


# -- ctx.set_materialize_grads(False): the Functions' extra outputs cost nothing in backward ---------
class _MaterializingCost(ThetaCost):
    """ThetaCost as it was before: autograd zero-fills a gradient for each unused extra output."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        ThetaCost.setup_context(ctx, inputs, output)
        ctx.set_materialize_grads(True)


class _MaterializingForward(ThetaForward):
    @staticmethod
    def setup_context(ctx, inputs, output):
        ThetaForward.setup_context(ctx, inputs, output)
        ctx.set_materialize_grads(True)


def _grads(function, args, thetas, X, pick):
    for t in (X, *thetas):
        t.grad = None
    pick(apply_function(function, *args, *thetas)).backward()
    return [X.grad.clone(), *(t.grad.clone() for t in thetas)]


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_unmaterialized_extras_give_bitwise_equal_gradients(output, lam):
    """∂J/∂x and ∂J/∂Θ^(l) are bitwise those of the same Function with zero-filled extra gradients,
    for ThetaCost (J) and ThetaForward (a function of z^(L+1)), and equal autograd's to rounding."""
    net = _net([5, 7, 6, 3], output=output, dtype=torch.float64)
    X, Y = _batch(net, 11, dtype=torch.float64)
    X.requires_grad_()
    thetas = [t.detach().clone().requires_grad_() for t in net.thetas]
    Yp = net.head.prepare_targets(Y, 11, 3, X.dtype, X.device)
    cost_args = (X, Yp, None, net.activation, net.head, lam, True)
    new = _grads(ThetaCost, cost_args, thetas, X, lambda out: out[0])
    old = _grads(_MaterializingCost, cost_args, thetas, X, lambda out: out[0])
    for a, b in zip(new, old):
        assert torch.equal(a, b)

    fwd_args = (X, net.activation, True)
    weights = torch.linspace(-1, 1, 33, dtype=torch.float64).view(11, 3)  # Σ w ⊙ z: a generic grad_z
    new = _grads(ThetaForward, fwd_args, thetas, X, lambda out: (out[0] * weights).sum())
    old = _grads(_MaterializingForward, fwd_args, thetas, X, lambda out: (out[0] * weights).sum())
    for a, b in zip(new, old):
        assert torch.equal(a, b)

    auto = ln.ThetaMLP([5, 7, 6, 3], "sigmoid", output, "autograd", dtype=torch.float64)
    auto.load_state_dict(net.state_dict())
    auto.cost(X.detach(), Y, lam).backward()
    net.cost(X.detach(), Y, lam).backward()
    for a, b in zip(net.thetas, auto.thetas):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sizes", [[6, 5, 3], [6, 5, 4, 3]])
def test_backward_makes_no_zero_gradients_for_extra_outputs(sizes):
    """``net.cost(X, Y).backward()`` and ``net(X).sum().backward()``: the Functions' backward nodes
    call no zero-filling op (autograd would otherwise make a zero tensor for z^(L+1) and each a^(l));
    the same Function with materialised gradients does (the check can see them)."""
    net = _net(sizes)
    X, Y = _batch(net, 8)

    events = _events(lambda: net.cost(X, Y).backward())
    called = _direct_aten_children(events, "ThetaCostBackward")
    assert called and not ZERO_FILLS & set(called), called

    events = _events(lambda: net(X).sum().backward())
    called = _direct_aten_children(events, "ThetaForwardBackward")
    assert called and not ZERO_FILLS & set(called), called

    thetas = list(net.thetas)
    Yp = net.head.prepare_targets(Y, 8, sizes[-1], X.dtype, X.device)
    args = (X, Yp, None, net.activation, net.head, 0.0, True)
    events = _events(lambda: apply_function(_MaterializingCost, *args, *thetas)[0].backward())
    zeros = [n for n in _direct_aten_children(events, "_MaterializingCostBackward") if n in ZERO_FILLS]
    assert len(zeros) == len(sizes)  # z^(L+1) and the L kept activations [1, X], [1, a^(2..L)]


# -- launches per training step: ceilings at the measured counts -----------------------------------
# (ops, host syncs) per step at 64-100-10, batch 64, float32, measured with torch 2.13 on the CPU by
# bench.launches_per_step (aten ops that would launch a kernel: innermost non-view ops). A torch
# upgrade that decomposes an op differently may move them: re-measure with
# `python benchmarks/bench.py --mode step --sizes 64 100 10 --batch 64` and say so in the commit.
# Session 8 (z = [1, a] Θᵀ on every path, one read for the whole check, a cached ones column):
# manual 34 -> 30, autograd 41 -> 29. Syncs: the device way (the checks' verdicts stay on the device
# until one read) is what a GPU runs; on the CPU, where reads are free, the verdicts are read at once
# (fewer ops). Session 9: on the CPU the check reads each sum as it is made (X, J, each Θ) and adds
# them in Python — no tensor adds, about half the check's time (interleaved, one thread).
USER_LOOP_CEILING = {"manual": (30, 1), "autograd": (29, 1)}
CPU_READS = 6  # the targets' min and max; the sums of X, J, Θ^(1), Θ^(2)
ENGINE_CEILING = {0.0: 14, 0.01: 18}  # λ_B = 0 and > 0 (the ridge term: 4 more)


def _user_loop(net):
    """The README's loop: J = net.cost(X, Y); J.backward(); opt.step(); opt.zero_grad()."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(X, Y):
        J = net.cost(X, Y)
        J.backward()
        opt.step()
        opt.zero_grad()

    return step


@pytest.mark.parametrize("reads_free", [False, True], ids=["device-way", "cpu-way"])
@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_user_training_step_launches_no_more_ops_than_measured(
    bench_module, backprop, reads_free, monkeypatch
):
    """Ops and host reads per step, both ways of validate_inputs' checks: the device way (forced
    here on the CPU) reads once per step; the CPU way reads each verdict at once."""
    monkeypatch.setattr(ln.ThetaMLP, "_reads_are_free", staticmethod(lambda X: reads_free))
    net = _net([64, 100, 10], backprop)
    X, Y = _batch(net, 64)
    counts = bench_module.launches_per_step(_user_loop(net), X, Y, torch.device("cpu"))
    ops, syncs = USER_LOOP_CEILING[backprop]
    assert counts["launches_per_step"] <= ops, counts
    assert counts["syncs"] <= (CPU_READS if reads_free else syncs), counts


def test_cpu_checks_are_read_at_once():
    """On the CPU the verdicts are bools (no clamped copy of Y); elsewhere 0-d tensors."""
    net = _net([6, 5, 3])
    X, Y = _batch(net, 8)
    assert net._reads_are_free(X) is True
    Yp = net.head.prepare_targets(Y, 8, 3, X.dtype, X.device)
    safe, ok = net.head.safe_targets(Yp, 3, read_now=True)
    assert ok is True and safe is Yp
    safe, ok = net.head.safe_targets(Yp, 3, read_now=False)
    assert isinstance(ok, torch.Tensor) and ok.ndim == 0 and bool(ok) and torch.equal(safe, Yp)
    bad = Yp.clone()
    bad[3] = 7
    assert net.head.safe_targets(bad, 3, read_now=True)[1] is False
    safe, ok = net.head.safe_targets(bad, 3, read_now=False)
    assert not bool(ok) and int(safe.max()) == 2  # clamped: cannot index out of bounds


@pytest.mark.parametrize("lam", sorted(ENGINE_CEILING))
def test_estimator_batch_launches_no_more_ops_than_measured(bench_module, lam):
    """One mini-batch of the estimators (Engine.accumulate: cost_and_gradient with a Workspace)."""
    from lecturenn.estimators import ThetaMLPClassifier
    from lecturenn.estimators._engine import Engine
    from lecturenn.theta import with_bias_unit

    net = _net([64, 100, 10])
    X, Y = _batch(net, 64)
    engine = Engine(net, "sgd", ThetaMLPClassifier(), "manual")
    counts = bench_module.launches_per_step(
        lambda X1, Y: engine.accumulate(X1, Y, lam), with_bias_unit(X), Y, torch.device("cpu")
    )
    assert counts["launches_per_step"] <= ENGINE_CEILING[lam], counts
    assert counts["syncs"] == 0, counts  # the epoch's loss stays on the device


def test_launch_count_sees_every_op(bench_module):
    """The counter is not blind: one more element-wise op in the step is one more launch."""
    net = _net([64, 100, 10])
    X, Y = _batch(net, 64)
    step = _user_loop(net)
    base = bench_module.launches_per_step(step, X, Y, torch.device("cpu"))["launches_per_step"]
    more = bench_module.launches_per_step(lambda X, Y: (step(X, Y), X.mul(2)), X, Y, torch.device("cpu"))[
        "launches_per_step"
    ]
    assert more == base + 1


def test_bench_step_mode_prints_launches_per_step(bench_module, capsys):
    """`benchmarks/bench.py --mode step` counts each path's launches per step (CPU: aten ops) and
    prints them in its table; the manual path's count is the one the ceiling test measures."""
    argv = ["--mode", "step", "--sizes", "64", "100", "10", "--batch", "64", "--threads", "1"]
    report = bench_module.main([*argv, "--gemm-size", "64", "--steps", "2", "--rounds", "1"])
    printed = capsys.readouterr().out
    assert "aten ops" in printed and "syncs" in printed
    rows = {r["path"]: r for r in report["rows"]}
    for name, r in rows.items():
        assert r["launches_per_step"] >= 1 and r["launches_per_step"] == int(r["launches_per_step"]), name
        line = next(line for line in printed.splitlines() if line.startswith(name))
        assert line.split()[-2:] == [f"{r['launches_per_step']:.0f}", f"{r['syncs']:.0f}"], line
    assert rows["lecturenn manual"]["launches_per_step"] <= USER_LOOP_CEILING["manual"][0]


# -- the one fused value check of net.cost ---------------------------------------------------------
@pytest.mark.parametrize("backprop", ["manual", "autograd"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["X", "Θ^(1)", "Θ^(2)"])
def test_one_bad_value_anywhere_is_reported_before_any_gradient(backprop, bad, where):
    """One sum over X, every Θ^(l) and J replaces their separate finite checks: a single NaN or ±inf
    anywhere is still named — also where J stays finite (an infinite hidden weight saturates the
    sigmoid; a −inf output bias only zeroes a class no row has) — and no .grad is written."""
    net = _net([4, 5, 3], backprop)
    X, Y = _batch(net, 6)
    Y = torch.zeros_like(Y)  # class 0 only: a −inf bias of class 2 leaves J finite
    with torch.no_grad():
        if where == "X":
            X[2, 1] = bad
        elif where == "Θ^(1)":
            net.thetas[0][1, 2] = bad
        else:
            net.thetas[1][2, 0] = bad
    with pytest.raises((ValueError, FloatingPointError), match=r"X contains NaN or inf|Θ\^\(\d\) contains"):
        net.cost(X, Y)
    assert all(t.grad is None for t in net.thetas)


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_a_sum_that_overflows_is_no_false_alarm(backprop):
    """Finite X whose sum overflows float32 (3e38 + 3e38 = inf) passes: the fused check's alarm is
    cleared by the detailed one, and J and its gradient are those of the same net without checks."""
    net = _net([4, 5, 3], backprop)
    X, Y = _batch(net, 6)
    X[:2, 0] = 3e38
    assert not torch.isfinite(X.sum())
    J = net.cost(X, Y)
    J.backward()
    grads = [t.grad.clone() for t in net.thetas]
    net.zero_grad()
    net.validate_inputs = False
    J2 = net.cost(X, Y)
    J2.backward()
    assert torch.equal(J, J2) and all(torch.equal(a, t.grad) for a, t in zip(grads, net.thetas))


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
@pytest.mark.parametrize("label", [-1, 3, 2**40])
def test_cpu_label_check_holds_with_sample_weights(backprop, label):
    """Hostile round, session 8: a bad label with sample weights gave torch's raw IndexError."""
    net = ln.ThetaMLP([3, 4, 3], "sigmoid", "softmax", backprop, generator=0)
    X, Y = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, label])
    for weight in (torch.ones(5), torch.tensor([1.0, -1, 1, 1, 1])):
        with pytest.raises(ValueError, match="label"):
            net.cost(X, Y, sample_weight=weight)
        assert all(t.grad is None for t in net.thetas)


def _saved_bytes(cost, exclude) -> int:
    """Bytes of the storages autograd saves for backward while ``cost()`` runs, less ``exclude``'s."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        cost()
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    return sum(nbytes for ptr, nbytes in storages.items() if ptr not in skip)


def test_memory_saved_for_backward_is_nn_linears_plus_one_column_of_ones():
    """What a step keeps for its backward, besides X, Y and Θ: the manual path saves [1, X] and the
    [1, a^(l)] (one matmul per Δ^(l)), i.e. nn.Linear's saved activations plus [1, X] (a copy of X with
    the bias column) and a ones column per layer; autograd's graph of the same forward keeps more
    (the cat inputs and outputs). Measured at 784-4096-4096-10, batch 1024: manual 35.1 MiB,
    autograd 67.1, nn.Linear 32.0 (session 9)."""
    sizes, n = [50, 40, 30, 5], 64
    X, Y = torch.randn(n, sizes[0]), torch.randint(0, sizes[-1], (n,))
    saved = {}
    for backprop in ("manual", "autograd"):
        net = _net(sizes, backprop)
        saved[backprop] = _saved_bytes(lambda: net.cost(X, Y), [X, Y, *net.thetas])
    layers = []
    for s, t in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(s, t), torch.nn.Sigmoid()]
    seq = torch.nn.Sequential(*layers[:-1])
    linear = _saved_bytes(lambda: torch.nn.functional.cross_entropy(seq(X), Y), [X, Y, *seq.parameters()])
    ones_columns = 4 * n * (len(sizes) - 1)  # float32 bias units, one column per layer input
    assert saved["manual"] <= linear + 4 * X.numel() + ones_columns, saved
    assert saved["manual"] < saved["autograd"], saved
