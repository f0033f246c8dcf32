"""Issue 13 §4: steps/s of one training step at 64-100-10 (batch 64), eager vs captured in a CUDA graph.

    python benchmarks/bench_graph.py [--device cuda] [--sizes 64 100 10] [--batch 64] [--rounds 7]

The "graph" stage of benchmarks/gpu_check.py runs :func:`measure`. Paths, each a full SGD step
(lr 0.1, no momentum) from the same Θ on the same batch (x, y), timed in interleaved rounds:

  nn.Linear eager        bench.make_baseline: nn.Sequential of nn.Linear + sigmoid, cross_entropy, SGD
  manual eager           bench.make_theta("manual"): ``net.cost(x, y).backward()`` + SGD (the user's loop,
                         the δ-recursion as an autograd Function)
  engine eager           the estimators' step (``Engine.train_step``: cost_and_gradient into one flat
                         gradient + the fused SGD kernel), eager
  engine graph           the same step captured by :class:`lecturenn.step_graph.StepGraph` and replayed
                         (each step copies the batch into the static inputs first)
  manual compiled        ``torch.compile(mode="reduce-overhead")`` (CUDA graphs through Inductor) of the
                         "manual eager" step; a failure is recorded with its error text

``speedup`` is nn.Linear's time over the path's (median of the per-round ratios): issue 13 §4's
target is ≥ 3 for the captured step on a GPU. ``bitwise_equal`` checks that 100 captured steps give
the eager Θ bit for bit (with a short last batch). On the CPU (``--dry-run`` of the GPU check) the
graph is the private "record" backend and compile uses ``backend="eager"`` (dynamo's tracing only:
no C++ compiler on the CI machine); the numbers then say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from types import SimpleNamespace

import bench  # benchmarks/bench.py: the nn.Linear baseline and the user's manual step
import torch

PATHS = ("nn.Linear eager", "manual eager", "engine eager", "engine graph", "manual compiled")


def _engine(sizes, device, graph: str | None):
    """The estimators' training state for a plain SGD step (lr 0.1), Θ as bench's paths start."""
    from lecturenn import ThetaMLP
    from lecturenn.estimators._engine import Engine

    net = ThetaMLP(sizes, "sigmoid", "softmax", "manual", generator=0, device=device)
    net.validate_inputs = False  # as the estimators train: the data were checked once
    est = SimpleNamespace(learning_rate_init=0.1, momentum=0.0, nesterovs_momentum=False, cuda_graph=False)
    est.beta_1, est.beta_2, est.epsilon = 0.9, 0.999, 1e-8
    return Engine(net, "gd", est, "manual", graph)


def _engine_step(engine, graphed: bool, lam: float = 0.0):
    if graphed:
        return lambda X1, Y: engine.graph((X1, Y), (lam,))
    return lambda X1, Y: engine.train_step(X1, Y, lam)


def _compiled(sizes, device, dry_run: bool):
    """bench's manual step under torch.compile (reduce-overhead on CUDA; dynamo + eager on the CPU)."""
    step = bench.make_theta(sizes, "manual", device, torch.float32, 0)
    if device.type == "cuda":
        return torch.compile(step, mode="reduce-overhead")
    return torch.compile(step, backend="eager")


def bitwise_check(sizes, device, backend: str, steps: int = 100, batch: int = 64) -> dict:
    """100 steps eager vs captured over N = 4·batch + 37 rows, reshuffled per epoch (a short last batch)."""
    from lecturenn.estimators._engine import Batches
    from lecturenn.theta import with_bias_unit

    N = 4 * batch + 37
    gen = torch.Generator().manual_seed(1)
    X1 = with_bias_unit(torch.randn(N, sizes[0], generator=gen).to(device))
    Y = torch.nn.functional.one_hot(torch.randint(0, sizes[-1], (N,), generator=gen), sizes[-1])
    Y = Y.float().to(device)
    thetas = []
    for graph in (None, backend):
        engine, data, shuffle, done = _engine(sizes, device, graph), None, torch.Generator(), 0
        shuffle.manual_seed(2)
        data = Batches(X1, Y, batch, True)
        step = _engine_step(engine, graph is not None, lam=1e-3)
        while done < steps:
            for Xb, Yb in data.epoch(shuffle):
                if done < steps:
                    step(Xb, Yb)
                    done += 1
        bench.sync(device)
        thetas.append([t.clone() for t in engine.thetas])
        if graph is not None:
            counts = {"captures": engine.graph.captures, "replays": engine.graph.replays}
    equal = all(torch.equal(a, b) for a, b in zip(*thetas))
    return {"bitwise_equal": equal, "bitwise_steps": steps, **counts}


def measure(device, dry_run: bool, emit=lambda **kw: None, sizes=None, batch=None, rounds=None, steps=None):
    """Time the paths (module docstring), emitting partial results as it goes; returns the result."""
    from lecturenn.theta import with_bias_unit

    sizes = sizes or ([8, 6, 3] if dry_run else [64, 100, 10])
    batch = batch or (4 if dry_run else 64)
    rounds, steps = rounds or (2 if dry_run else 7), steps or (3 if dry_run else 200)
    backend = "cuda" if device.type == "cuda" else "record"
    result = {"sizes": sizes, "batch": batch, "rounds": rounds, "steps": steps, "graph_backend": backend}
    result["compile"] = "reduce-overhead" if device.type == "cuda" else "backend=eager (dry run)"
    emit(**result)
    result.update(bitwise_check(sizes, device, backend, steps=20 if dry_run else 100, batch=batch))
    emit(**result)
    print(f"captured vs eager, {result['bitwise_steps']} steps: bitwise equal = {result['bitwise_equal']}")

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, sizes[0], generator=gen).to(device)
    y = torch.randint(0, sizes[-1], (batch,), generator=gen).to(device)
    X1, Y1 = with_bias_unit(x), torch.nn.functional.one_hot(y, sizes[-1]).float()
    steps_of = {
        "nn.Linear eager": (bench.make_baseline(sizes, device, torch.float32, 0), (x, y)),
        "manual eager": (bench.make_theta(sizes, "manual", device, torch.float32, 0), (x, y)),
        "engine eager": (_engine_step(_engine(sizes, device, None), False), (X1, Y1)),
        "engine graph": (_engine_step(_engine(sizes, device, backend), True), (X1, Y1)),
    }
    errors: dict[str, str] = {}
    _time_paths(steps_of, errors, result, device, rounds, steps)  # first without compile: a compile
    emit(**result)  # that hangs past the stage's timeout leaves these numbers behind
    try:
        compiled = _compiled(sizes, device, dry_run)
        for _ in range(3):  # compile + the graph's own warm-up and capture
            compiled(x, y)
        steps_of["manual compiled"] = (compiled, (x, y))
    except Exception as err:  # recorded, not fatal: the hand capture is measured anyway
        traceback.print_exc()
        errors["manual compiled"] = f"{type(err).__name__}: {err}".strip().splitlines()[0][:300]
    if "manual compiled" in steps_of:
        _time_paths(steps_of, errors, result, device, rounds, steps)  # all paths, interleaved again
    else:
        result["rows"][-1] = {"path": "manual compiled", "error": errors["manual compiled"]}
    emit(**result)
    print(format_rows(result), flush=True)
    return result


def _time_paths(steps_of: dict, errors: dict, result: dict, device, rounds: int, steps: int) -> None:
    """Interleaved rounds of ``steps`` steps per path; rows and speed-ups into ``result``."""
    for step, args in steps_of.values():  # warm-up: past every graph's capture (3 warm-up calls)
        for _ in range(5):
            step(*args)
    bench.sync(device)
    times = {name: [] for name in steps_of}
    for r in range(rounds):  # alternating order: no path always follows the same one
        for name, (step, args) in list(steps_of.items())[:: 1 if r % 2 == 0 else -1]:
            bench.sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                step(*args)
            bench.sync(device)
            times[name].append((time.perf_counter() - t0) / steps)
    base = times["nn.Linear eager"]
    rows = []
    for name in PATHS:
        if name not in times:
            rows.append({"path": name, "error": errors.get(name, "not run yet")})
            continue
        t = statistics.median(times[name])
        speedup = statistics.median(b / a for a, b in zip(times[name], base))
        rows.append({"path": name, "us_per_step": t * 1e6, "steps_per_s": 1 / t, "speedup": speedup})
    result["rows"] = rows
    graph_row = next(r for r in rows if r["path"] == "engine graph")
    result["graph_speedup_vs_linear"] = graph_row["speedup"]
    result["graph_vs_engine_eager"] = statistics.median(
        a / b for a, b in zip(times["engine eager"], times["engine graph"])
    )
    result["target_3x_met"] = graph_row["speedup"] >= 3.0 if device.type == "cuda" else None


def format_rows(result: dict) -> str:
    """The table: µs per step, steps/s and the speed-up over nn.Linear per path."""
    size = f"{'-'.join(map(str, result['sizes']))} b{result['batch']}"
    lines = [f"graph: one SGD step at {size}, eager vs captured (speed-up = nn.Linear's time / the path's)"]
    lines.append(f"{'path':<18}{'µs/step':>10}{'steps/s':>10}{'speed-up':>10}")
    for r in result.get("rows") or []:
        if "error" in r:
            lines.append(f"{r['path']:<18}{'-':>10}{'-':>10}{'-':>10}  {r['error'][:90]}")
        else:
            lines.append(
                f"{r['path']:<18}{r['us_per_step']:>10.1f}{r['steps_per_s']:>10.0f}{r['speedup']:>10.2f}"
            )
    if "bitwise_equal" in result:
        lines.append(
            f"captured = eager bitwise over {result['bitwise_steps']} steps: {result['bitwise_equal']}; "
            f"graph {result.get('graph_vs_engine_eager', float('nan')):.2f}x the eager engine step"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 100, 10])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dry = device.type != "cuda"
    measure(device, dry, sizes=args.sizes, batch=args.batch, rounds=args.rounds, steps=args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
