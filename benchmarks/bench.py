"""Benchmark lecturenn's training paths against plain PyTorch, Lightning and scikit-learn, in one process.

    python benchmarks/bench.py                                # epoch mode: 784-256-256-10, 50 000 rows, CPU
    python benchmarks/bench.py --paths hand,ln-manual,ln-app --epochs 5 --json bench.json
    python benchmarks/bench.py --mode step                    # the single-step micro-benchmark
    python benchmarks/bench.py --device cuda --threads 4

Every path trains the same network — sigmoid hidden units, softmax + cross-entropy, plain SGD
(lr 0.1) — on the same synthetic data: X ~ N(0, 1) and y = argmax(X W) for a fixed random W, so
the task is learnable; a held-out test set is drawn the same way. Nothing is downloaded.

--mode epoch (default): every row trains its own model from the SAME initial weights (those of
``ThetaMLP(sizes, "sigmoid", "softmax", generator=seed)``; nn.Linear gets weight = Θ[:, 1:] and
bias = Θ[:, 0]) for one warm-up epoch, is reset to those weights, and is then timed for
``--epochs`` epochs, after which its test accuracy is measured. Rows (``--paths`` keys):

  hand         hand-written loop: nn.Sequential(nn.Linear, nn.Sigmoid, ...), torch.randperm per
               epoch, X[idx] batches, F.cross_entropy, SGD — THE BASELINE (ratio 1.00)
  theta-cat    the same loop, each layer computing torch.cat([1, a], 1) @ Θ.T (autograd)
  dataloader   the hand-written model fed by DataLoader(TensorDataset(X, y), shuffle=True)
  lightning    a minimal LightningModule (same nn.Sequential) + Trainer over that DataLoader
  ln-manual    ThetaMLP(backprop="manual"), validate_inputs=False, randperm loop, net.cost().backward()
  ln-autograd  the same with backprop="autograd"
  ln-app       lecturenn.training.ThetaMLPModule + Trainer over lecturenn.data.TensorBatches, in
               batch groups of the module's steps_per_execution (32) mini-batches, as the app runs
  ln-app-graph the app path with model.cuda_graph=true: each training step captured in a CUDA graph and
               replayed (on the CPU: the graph module's "record" stand-in — the plumbing, not the speed)
  sklearn      scikit-learn MLPClassifier(solver="sgd", momentum=0, alpha=0), same initial weights
               (set as coefs_/intercepts_ after the warm-up fit, then refit with warm_start)

Timing. Loop rows time each epoch (device-synchronised) and report the mean. Lightning rows and
scikit-learn cannot be timed per epoch from outside, so they run a separate warm-up fit of one
epoch, then a fresh ``Trainer(max_epochs=E)`` / ``fit`` of E epochs is timed whole and divided by
E: their s/epoch includes the fixed per-fit cost (Trainer setup and teardown, input validation)
amortised over E epochs. For the Lightning rows the in-loop epoch time (first epoch start to last
epoch end, from a callback) is stored in the JSON too, with the difference as ``fit_overhead_s``.

Columns. GFLOP/s counts the GEMMs of forward + backward, 6 · n · Σ s_l · s_{l+1} flops per epoch;
"%GEMM" compares it with the best rate of a 2048³ matmul measured in the same run (5 runs before
the rows and 5 after; the better of the two). "peak+ MiB" is the peak memory a row added on top of
what was in use when it started (model, optimizer, batches, framework objects; the data sets
already exist): on CUDA from torch.cuda.max_memory_allocated, on Linux CPUs from the process's
resident-set high-water mark (VmHWM, reset per row through /proc/self/clear_refs after gc +
malloc_trim; RSS-based, so allocator caching can hide reuse), else "n/a". Test accuracy is argmax
on the held-out rows after the E timed epochs. The timed epochs of the four randperm rows see the
same batches (the global RNG is reseeded with --seed), and so do the two DataLoader rows (their
generator is reseeded), so accuracies agree within each group; the app path (TensorBatches' own
shuffle) and scikit-learn shuffle differently.

"others" is the share of the machine's CPU time that other processes used while the row ran (from
/proc/stat minus this process's own ticks; Linux only): other processes busy on the same cores slow
every row a lot (torch's OpenMP threads spin-wait), so trust rows near 0 % only. A row during which
others took more than --busy-threshold % (10) is run again, up to --busy-retries (2) more times, and
the least disturbed attempt is kept (JSON: "attempts"). The load average at the start and the end
is printed too.

--rounds R (epoch mode): run every path once per round, R rounds; each path's s/epoch is its
median over the rounds and its ratio the median of its per-round ratios to the baseline, so a slow
phase of a shared machine hits all paths alike (peak memory: the largest of the rounds).

--mode step: the original micro-benchmark — one SGD step on one fixed batch for nn.Linear and the
two ThetaMLP backprops, rounds interleaved (the order alternating) so machine noise hits all paths
alike; the ratio is the median of the per-round ratios to nn.Linear. Each path's launches per step
are counted with torch.profiler (after the timing, so the profiler does not slow it): on CUDA the
kernels + memcpy + memset the device ran, on the CPU the aten ops that would launch a kernel
(innermost non-view ops) — the fixed cost of a small step either way — and the host syncs.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import gc
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import lecturenn as ln
from lecturenn.runtime import configure_malloc

BASELINE = "hand"
PATHS = {  # key -> row label, in table order
    "hand": "hand-written loop",
    "theta-cat": "ones-column Θ (autograd)",
    "dataloader": "DataLoader(TensorDataset)",
    "lightning": "Lightning + DataLoader",
    "ln-manual": "lecturenn manual loop",
    "ln-autograd": "lecturenn autograd loop",
    "ln-app": "lecturenn app path",
    "ln-app-graph": "app path, CUDA graph",
    "sklearn": "scikit-learn MLPClassifier",
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# step mode (the original benchmark)
# ---------------------------------------------------------------------------------------------
def make_baseline(sizes, device, dtype, generator_seed):
    layers = []
    for s, s_next in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(s, s_next, device=device, dtype=dtype), nn.Sigmoid()]
    model = nn.Sequential(*layers[:-1])
    ref = ln.ThetaMLP(sizes, "sigmoid", "softmax", generator=generator_seed, device=device, dtype=dtype)
    with torch.no_grad():  # same starting weights as the Θ paths
        for linear, theta in zip(model[::2], ref.thetas):
            linear.bias.copy_(theta[:, 0])
            linear.weight.copy_(theta[:, 1:])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def make_theta(sizes, backprop, device, dtype, generator_seed, checks: bool = True):
    """The README's loop, net.cost(x, y).backward() + SGD; ``checks``: validate_inputs (the default on)."""
    net = ln.ThetaMLP(
        sizes, "sigmoid", "softmax", backprop, generator=generator_seed, device=device, dtype=dtype
    )
    net.validate_inputs = checks
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        J = net.cost(x, y)
        J.backward()
        opt.step()
        return J

    return step


def launches_per_step(step, x, y, device, steps: int = 3) -> dict:
    """Kernel launches per step, counted with torch.profiler over ``steps`` steps (after 2 unprofiled
    ones): ``launches_per_step`` is on CUDA the device's kernels + memcpy + memset, on the CPU the aten
    ops that would launch a kernel (innermost non-view ops); ``syncs``: host syncs (CPU: ``.item()``s);
    the rest of :func:`gpu_check.count_events`' counts alongside."""
    from gpu_check import count_events, profiler

    for _ in range(2):
        step(x, y)
    sync(device)
    with profiler() as prof:
        for _ in range(steps):
            step(x, y)
        sync(device)
    counts = count_events(prof.events(), steps, device.type == "cuda")
    launches = (
        counts["kernels"] + counts["memcpy"] + counts["memset"] if "kernels" in counts else counts["ops"]
    )
    return {**counts, "launches_per_step": launches}


def step_flops(sizes, batch):
    """Multiply-adds of forward (1×) + backward (2×) GEMMs, counted as 2 flops each."""
    macs = sum(s * s_next for s, s_next in zip(sizes[:-1], sizes[1:]))
    return 3 * 2 * batch * macs


def run_step_mode(args, device, dtype, header):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.sizes[0], generator=gen).to(device, dtype)
    y = torch.randint(0, args.sizes[-1], (args.batch,), generator=gen).to(device)

    paths = {
        "torch nn.Linear": make_baseline(args.sizes, device, dtype, 0),
        "lecturenn autograd": make_theta(args.sizes, "autograd", device, dtype, 0),
        "lecturenn manual": make_theta(args.sizes, "manual", device, dtype, 0),
        "autograd, no checks": make_theta(args.sizes, "autograd", device, dtype, 0, checks=False),
        "manual, no checks": make_theta(args.sizes, "manual", device, dtype, 0, checks=False),
    }
    times = {name: [] for name in paths}
    for step in paths.values():  # warm-up
        for _ in range(5):
            step(x, y)
    sync(device)
    for r in range(args.rounds):  # the order alternates, so no path always follows the same one
        for name, step in list(paths.items())[:: 1 if r % 2 == 0 else -1]:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            sync(device)
            times[name].append((time.perf_counter() - t0) / args.steps)

    counts = {name: launches_per_step(step, x, y, device) for name, step in paths.items()}
    flops = step_flops(args.sizes, args.batch)
    rows = []
    print(
        f"sizes {args.sizes}, batch {args.batch}, {args.dtype}, {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    launch = "kernels" if device.type == "cuda" else "aten ops"
    print(f"{'path':<22}{'ms/step':>10}{'samples/s':>12}{'GFLOP/s':>10}{'ratio':>8}{launch:>10}{'syncs':>7}")
    for name, ts in times.items():
        t = statistics.median(ts)
        row = {
            "path": name,
            "ms_per_step": t * 1e3,
            "samples_per_s": args.batch / t,
            "gflops": flops / t / 1e9,
            # median of the per-round ratios: a slow phase of the machine hits a round's paths alike
            "ratio": statistics.median(a / b for a, b in zip(ts, times["torch nn.Linear"])),
            "ratio_rounds": [a / b for a, b in zip(ts, times["torch nn.Linear"])],
            **counts[name],
        }
        rows.append(row)
        print(
            f"{name:<22}{row['ms_per_step']:>10.3f}{row['samples_per_s']:>12.0f}"
            f"{row['gflops']:>10.1f}{row['ratio']:>8.2f}{row['launches_per_step']:>10.0f}{row['syncs']:>7.0f}"
        )
    print(
        f"{launch}/step: "
        + (
            "CUDA kernels + memcpy + memset per step (torch.profiler's device events)"
            if device.type == "cuda"
            else "aten ops that would launch a kernel (innermost non-view ops; torch.profiler, CPU)"
        )
        + "; syncs: host waits per step (.item() on the CPU)"
    )
    manual_vs_autograd = statistics.median(
        m / a for m, a in zip(times["lecturenn manual"], times["lecturenn autograd"])
    )
    unchecked = statistics.median(
        m / a for m, a in zip(times["manual, no checks"], times["autograd, no checks"])
    )
    print(
        f"manual / autograd (the same ThetaMLP; median of per-round ratios): {manual_vs_autograd:.3f} "
        f"(validate_inputs=False: {unchecked:.3f})"
    )
    return {
        "mode": "step",
        "header": header,
        "args": vars(args),
        "torch": torch.__version__,
        "rows": rows,
        "manual_vs_autograd": manual_vs_autograd,
        "manual_vs_autograd_no_checks": unchecked,
    }


# ---------------------------------------------------------------------------------------------
# machine information, GEMM peak, memory
# ---------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> str:
    """numpy's BLAS (what scikit-learn runs on), via threadpoolctl if present."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i.get('internal_api')} {i.get('version')}" for i in blas) or "none found"


def gemm_gflops(n, device, dtype, repeats=5) -> float:
    """Best rate of an n×n @ n×n matmul over ``repeats`` timed runs (after one warm-up)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.matmul(a, b, out=out)
    best = math.inf
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        torch.matmul(a, b, out=out)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _malloc_trim() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class OtherLoad:
    """Share of the machine's CPU time that OTHER processes used while a row ran (Linux /proc).

    Busy ticks of all CPUs (including steal) minus this process's own user + system ticks, over all
    ticks. Anything well above 0 % means the row shared its cores and its time is inflated.
    """

    @staticmethod
    def _read():
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:]]
            with open("/proc/self/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            own = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of proc(5))
        except (OSError, ValueError, IndexError):
            return None
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal
        return busy, busy + idle, own

    def start(self) -> None:
        self.begin = self._read()

    def stop(self) -> float | None:
        end = self._read()
        if self.begin is None or end is None or end[1] <= self.begin[1]:
            return None
        busy, total, own = (e - b for e, b in zip(end, self.begin))
        return max(0.0, 100.0 * (busy - own) / total)


class PeakMemory:
    """Peak memory a row adds: CUDA allocator peak, or the Linux RSS high-water mark reset per row."""

    def __init__(self, device):
        self.device = device
        self.base = None

    def start(self) -> None:
        gc.collect()
        self.base = None
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return
        if self.device.type != "cpu":
            return
        _malloc_trim()
        try:
            with open("/proc/self/clear_refs", "w") as f:  # "5": reset VmHWM to the current RSS
                f.write("5")
        except OSError:
            return
        rss, hwm = _status_kib("VmRSS"), _status_kib("VmHWM")
        if rss is not None and hwm is not None and hwm <= rss * 1.01 + 1024:  # the reset took effect
            self.base = rss * 1024

    def stop(self) -> tuple[float, float] | None:
        """(peak MiB, peak above the start MiB), or None where it cannot be measured."""
        if self.base is None:
            return None
        if self.device.type == "cuda":
            sync(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            hwm = _status_kib("VmHWM")
            if hwm is None:
                return None
            peak = hwm * 1024
        return peak / 2**20, max(0, peak - self.base) / 2**20


# ---------------------------------------------------------------------------------------------
# data, shared initial weights, models
# ---------------------------------------------------------------------------------------------
def make_data(sizes, rows, test_rows, seed):
    """X ~ N(0, 1) float32, y = argmax(X W) for a fixed random W; train and test drawn alike (CPU)."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(sizes[0], sizes[-1], generator=gen)
    X = torch.randn(rows, sizes[0], generator=gen)
    X_test = torch.randn(test_rows, sizes[0], generator=gen)
    return X, (X @ W).argmax(1), X_test, (X_test @ W).argmax(1)


def build_sequential(sizes, thetas, device, dtype):
    layers = []
    for s, s_next in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(s, s_next, device=device, dtype=dtype), nn.Sigmoid()]
    model = nn.Sequential(*layers[:-1])
    load_sequential(model, thetas)
    return model


@torch.no_grad()
def load_sequential(model, thetas):
    for linear, theta in zip(model[::2], thetas):
        linear.weight.copy_(theta[:, 1:])
        linear.bias.copy_(theta[:, 0])


@torch.no_grad()
def load_thetas(params, thetas):
    for p, theta in zip(params, thetas):
        p.copy_(theta)


class ThetaCat(nn.Module):
    """The lecture's layer written naively: z = [1, a] Θᵀ, torch autograd differentiates."""

    def __init__(self, thetas):
        super().__init__()
        self.thetas = nn.ParameterList(nn.Parameter(t.detach().clone()) for t in thetas)

    def forward(self, a):
        ones = a.new_ones(a.shape[0], 1)
        for l, theta in enumerate(self.thetas):
            a = torch.cat([ones, a], 1) @ theta.T
            if l < len(self.thetas) - 1:
                a = torch.sigmoid(a)
        return a  # logits


@torch.no_grad()
def accuracy(predict, X_test, y_test) -> float:
    return (predict(X_test).argmax(1) == y_test).double().mean().item()


@contextlib.contextmanager
def quiet_lightning():
    """Silence Lightning's INFO banners and its advice warnings (few workers, no val loop, ...)."""
    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
            warnings.filterwarnings("ignore", message=r".*(does not have many workers|val_dataloader).*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# ---------------------------------------------------------------------------------------------
# the rows
# ---------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args, device, dtype):
        self.args, self.device, self.dtype = args, device, dtype
        self.sizes, self.batch, self.epochs, self.seed = args.sizes, args.batch, args.epochs, args.seed
        X, y, X_test, y_test = make_data(self.sizes, args.rows, args.test_rows, args.seed)
        self.X_cpu, self.y_cpu = X.to(dtype), y
        self.X, self.y = X.to(device, dtype), y.to(device)
        self.X_test, self.y_test = X_test.to(device, dtype), y_test.to(device)
        self.n = self.X.shape[0]
        ref = ln.ThetaMLP(self.sizes, "sigmoid", "softmax", generator=args.seed, dtype=dtype)
        self.init = [t.detach().to(device).clone() for t in ref.thetas]

    # -- plain loops: warm-up epoch, reset to the initial weights, E timed epochs ----------------
    def _timed_loop(self, reset, run_epoch):
        run_epoch()  # warm-up
        reset()
        torch.manual_seed(self.seed)  # the timed epochs of every randperm row see the same batches
        sync(self.device)
        times = []
        for _ in range(self.epochs):
            t0 = time.perf_counter()
            run_epoch()
            sync(self.device)
            times.append(time.perf_counter() - t0)
        return times

    def _randperm_epoch(self, params, loss_fn):
        opt = torch.optim.SGD(params, lr=0.1)
        X, y, n, batch, device = self.X, self.y, self.n, self.batch, self.device

        def run_epoch():
            perm = torch.randperm(n, device=device)
            for start in range(0, n, batch):
                idx = perm[start : start + batch]
                xb, yb = X[idx], y[idx]
                opt.zero_grad(set_to_none=True)
                loss_fn(xb, yb).backward()
                opt.step()

        return run_epoch

    def row_hand(self):
        model = build_sequential(self.sizes, self.init, self.device, self.dtype)
        run = self._randperm_epoch(model.parameters(), lambda xb, yb: F.cross_entropy(model(xb), yb))
        times = self._timed_loop(lambda: load_sequential(model, self.init), run)
        return {"epoch_s": times}, model

    def row_theta_cat(self):
        model = ThetaCat(self.init)
        run = self._randperm_epoch(model.parameters(), lambda xb, yb: F.cross_entropy(model(xb), yb))
        times = self._timed_loop(lambda: load_thetas(model.thetas, self.init), run)
        return {"epoch_s": times}, model

    def _dataloader(self):
        from torch.utils.data import DataLoader, TensorDataset

        # CPU tensors, batches moved to the device (Lightning does that itself): the common idiom
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            TensorDataset(self.X_cpu, self.y_cpu), batch_size=self.batch, shuffle=True, generator=gen
        )

    def row_dataloader(self):
        model = build_sequential(self.sizes, self.init, self.device, self.dtype)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loader, device = self._dataloader(), self.device

        def run_epoch():
            for xb, yb in loader:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                opt.step()

        def reset():
            load_sequential(model, self.init)
            loader.generator.manual_seed(self.seed)  # = torch.randperm after torch.manual_seed(seed)

        times = self._timed_loop(reset, run_epoch)
        return {"epoch_s": times}, model

    def _theta_net(self, backprop):
        net = ln.ThetaMLP(
            self.sizes,
            "sigmoid",
            "softmax",
            backprop,
            generator=self.seed,
            device=self.device,
            dtype=self.dtype,
        )
        load_thetas(net.thetas, self.init)
        net.validate_inputs = False
        run = self._randperm_epoch(net.parameters(), net.cost)
        times = self._timed_loop(lambda: load_thetas(net.thetas, self.init), run)
        return {"epoch_s": times}, net

    def row_ln_manual(self):
        return self._theta_net("manual")

    def row_ln_autograd(self):
        return self._theta_net("autograd")

    # -- Lightning: warm-up fit of 1 epoch, reset, a fresh Trainer for E epochs timed whole -----
    def _trainer(self, max_epochs, callbacks=()):
        import lightning as L

        index = self.device.index
        return L.Trainer(
            max_epochs=max_epochs,
            accelerator=self.device.type,
            devices=1 if index is None else [index],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=list(callbacks),
        )

    def _timed_fit(self, module, make_loader, reset):
        import lightning as L

        class EpochClock(L.Callback):
            def __init__(self):
                self.first = self.last = None

            def on_train_epoch_start(self, trainer, pl_module):
                if self.first is None:
                    sync(pl_module.device)
                    self.first = time.perf_counter()

            def on_train_epoch_end(self, trainer, pl_module):
                sync(pl_module.device)
                self.last = time.perf_counter()

        with quiet_lightning():
            self._trainer(1).fit(module, train_dataloaders=make_loader())  # warm-up
            reset()
            torch.manual_seed(self.seed)
            clock = EpochClock()
            trainer, loader = self._trainer(self.epochs, [clock]), make_loader()
            sync(self.device)
            t0 = time.perf_counter()
            trainer.fit(module, train_dataloaders=loader)
            sync(self.device)
            total = time.perf_counter() - t0
        extra = {"fit_s": total, "epochs_run": trainer.current_epoch}
        if clock.first is not None and clock.last is not None:
            extra["in_loop_s_per_epoch"] = (clock.last - clock.first) / self.epochs
            extra["fit_overhead_s"] = total - (clock.last - clock.first)
        return total, extra

    def row_lightning(self):
        import lightning as L

        class Plain(L.LightningModule):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def training_step(self, batch, batch_idx):
                x, y = batch
                return F.cross_entropy(self.model(x), y)

            def configure_optimizers(self):
                return torch.optim.SGD(self.model.parameters(), lr=0.1)

        module = Plain(build_sequential(self.sizes, self.init, self.device, self.dtype))
        total, extra = self._timed_fit(
            module, self._dataloader, lambda: load_sequential(module.model, self.init)
        )
        return {"total_s": total, **extra}, module.model.to(self.device)

    def row_ln_app_graph(self):
        return self.row_ln_app(cuda_graph=True)

    def row_ln_app(self, cuda_graph: bool = False):
        from lecturenn.data import TensorBatches
        from lecturenn.training import ThetaMLPModule

        module = ThetaMLPModule(
            n_features=self.sizes[0],
            n_outputs=self.sizes[-1],
            task="multiclass",
            hidden_sizes=list(self.sizes[1:-1]),
            activation="sigmoid",
            lam=0.0,
            optimizer=functools.partial(torch.optim.SGD, lr=0.1),
            init_seed=self.seed,
            cuda_graph=cuda_graph,
        ).to(self.device, self.dtype)
        if cuda_graph and self.device.type != "cuda":
            module._cuda_graph_backend = "record"  # lecturenn.step_graph's CPU stand-in (dry runs)
        reset = lambda: load_thetas(module.net.thetas, self.init)  # noqa: E731
        reset()

        def make_loader():  # batch groups of steps_per_execution mini-batches, as the app serves them
            return TensorBatches(
                self.X,
                self.y,
                batch_size=self.batch,
                shuffle=True,
                seed=self.seed,
                group_size=module.batch_group_size,
            )

        total, extra = self._timed_fit(module, make_loader, reset)
        return {"total_s": total, **extra}, module.net.to(self.device)

    # -- scikit-learn: warm-up fit (max_iter=1), shared weights in, refit E epochs (warm_start) ---
    def row_sklearn(self):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            threadpool_limits = None
        X = self.X_cpu.numpy()
        y = self.y_cpu.numpy()
        init = [t.cpu().numpy() for t in self.init]
        clf = MLPClassifier(
            hidden_layer_sizes=tuple(self.sizes[1:-1]),
            activation="logistic",
            solver="sgd",
            learning_rate_init=0.1,
            batch_size=self.batch,
            momentum=0.0,
            alpha=0.0,
            max_iter=1,
            tol=0,
            n_iter_no_change=10**9,
            shuffle=True,
            random_state=self.seed,
            warm_start=True,
        )
        limits = (
            threadpool_limits(limits=torch.get_num_threads())
            if threadpool_limits is not None
            else contextlib.nullcontext()
        )
        with limits, warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)  # warm-up; also sets up classes_, n_layers_, ...
            same_init = all(c.shape == t[:, 1:].T.shape for c, t in zip(clf.coefs_, init))
            if same_init:  # the shared initial weights; a fresh SGD optimizer is made by fit
                clf.coefs_ = [t[:, 1:].T.astype(X.dtype, copy=True) for t in init]
                clf.intercepts_ = [t[:, 0].astype(X.dtype, copy=True) for t in init]
            clf.set_params(max_iter=self.epochs)
            t0 = time.perf_counter()
            clf.fit(X, y)
            total = time.perf_counter() - t0
        dtype_used = str(clf.coefs_[0].dtype)

        def predict(X_test):  # class scores as a (n, K) tensor for accuracy(); columns = labels
            proba = torch.from_numpy(clf.predict_proba(X_test.cpu().numpy()))
            scores = torch.full((proba.shape[0], self.sizes[-1]), -1.0, dtype=proba.dtype)
            scores[:, torch.as_tensor(clf.classes_, dtype=torch.long)] = proba
            return scores

        return {"total_s": total, "same_init": same_init, "sklearn_dtype": dtype_used}, predict

    # -- one row ------------------------------------------------------------------------------
    def run(self, key):
        torch.manual_seed(self.seed)  # reproducible warm-up too (the timed part is reseeded)
        meter, others = PeakMemory(self.device), OtherLoad()
        meter.start()
        others.start()
        extra, model = getattr(self, "row_" + key.replace("-", "_"))()
        others_pct = others.stop()
        mem = meter.stop()  # before evaluation: its 10 000-row activations would dominate
        if "epoch_s" in extra:
            s_per_epoch = sum(extra["epoch_s"]) / len(extra["epoch_s"])
        else:
            s_per_epoch = extra["total_s"] / self.epochs
        acc = accuracy(model, self.X_test, self.y_test.to(self.X_test.device))
        return {
            "key": key,
            "path": PATHS[key],
            "s_per_epoch": s_per_epoch,
            "peak_mib": None if mem is None else mem[0],
            "peak_added_mib": None if mem is None else mem[1],
            "test_acc": acc,
            "others_cpu_pct": others_pct,
            **extra,
        }


def epoch_flops(sizes, n):
    """Forward (1×) + backward (2×) GEMM multiply-adds, 2 flops each, over n rows."""
    return 6 * n * sum(s * s_next for s, s_next in zip(sizes[:-1], sizes[1:]))


def run_row(bench, key, retries, threshold):
    """Run a row; while other processes took more than ``threshold`` % of the CPU during it, run it
    again (at most ``retries`` more times) and keep the least disturbed attempt."""
    best = None
    for attempt in range(1, retries + 2):
        row = bench.run(key)
        row["attempts"] = attempt
        busy = row["others_cpu_pct"]
        if best is None or (busy is not None and busy < best["others_cpu_pct"]):
            best = row
        if busy is None or busy <= threshold:
            break
    best["attempts"] = attempt
    return best


def run_epoch_mode(args, device, dtype, header):
    keys = args.paths
    bench = Bench(args, device, dtype)
    skipped = []
    if "sklearn" in keys:
        reason = None
        if device.type != "cpu":
            reason = f"scikit-learn runs on the CPU only (--device {device})"
        else:
            try:
                import sklearn  # noqa: F401
            except ImportError:
                reason = "scikit-learn is not installed"
        if reason:
            skipped.append({"key": "sklearn", "path": PATHS["sklearn"], "skipped": reason})
            keys = [k for k in keys if k != "sklearn"]
    # rounds: every path once per round, so a slow phase of the machine hits all paths alike; a
    # path's s/epoch is its median over rounds and its ratio the median of its per-round ratios
    rounds = []
    for i in range(args.rounds):
        if args.rounds > 1:
            print(f"round {i + 1}/{args.rounds} ...", flush=True)
        rounds.append({key: run_row(bench, key, args.busy_retries, args.busy_threshold) for key in keys})
    rows = []
    for key in keys:
        runs = [r[key] for r in rounds]
        row = dict(runs[-1])
        row["s_per_epoch_rounds"] = [r["s_per_epoch"] for r in runs]
        row["s_per_epoch"] = statistics.median(row["s_per_epoch_rounds"])
        row["ratio_rounds"] = [r[key]["s_per_epoch"] / r[BASELINE]["s_per_epoch"] for r in rounds]
        if row["peak_added_mib"] is not None:
            row["peak_added_mib"] = max(r["peak_added_mib"] for r in runs)
        row["others_cpu_pct"] = max((r["others_cpu_pct"] or 0) for r in runs)
        row["attempts"] = max(r["attempts"] for r in runs)
        rows.append(row)

    # the GEMM rate again after the rows (a busy moment at the start would understate it); the
    # "%GEMM" column uses the better of the two
    header["gemm_gflops_end"] = gemm_gflops(args.gemm_size, device, dtype)
    header["gemm_gflops"] = max(header["gemm_gflops_start"], header["gemm_gflops_end"])
    n = args.gemm_size
    print(
        f"{args.dtype} GEMM {n}x{n} @ {n}x{n} again after the rows: {header['gemm_gflops_end']:.1f} GFLOP/s; "
        f"%GEMM below is against the better, {header['gemm_gflops']:.1f} GFLOP/s"
    )
    flops = epoch_flops(args.sizes, args.rows)
    for r in rows:
        r["samples_per_s"] = args.rows / r["s_per_epoch"]
        r["gflops"] = flops / r["s_per_epoch"] / 1e9
        r["pct_gemm_peak"] = 100 * r["gflops"] / header["gemm_gflops"]
        r["ratio"] = statistics.median(r["ratio_rounds"])

    print(
        f"{'key':<12}{'path':<28}{'s/epoch':>9}{'samples/s':>11}{'GFLOP/s':>9}{'%GEMM':>7}"
        f"{'ratio':>7}{'peak+ MiB':>11}{'test acc':>10}{'others':>8}"
    )
    for r in rows:
        mem = "n/a" if r["peak_added_mib"] is None else f"{r['peak_added_mib']:.1f}"
        other = "n/a" if r["others_cpu_pct"] is None else f"{r['others_cpu_pct']:.0f}%"
        print(
            f"{r['key']:<12}{r['path']:<28}{r['s_per_epoch']:>9.3f}{r['samples_per_s']:>11.0f}"
            f"{r['gflops']:>9.1f}{r['pct_gemm_peak']:>6.1f}%{r['ratio']:>7.2f}{mem:>11}{r['test_acc']:>10.4f}"
            f"{other:>8}"
        )
    for s in skipped:
        print(f"{s['key']:<12}{s['path']:<28}skipped: {s['skipped']}")
    notes = [
        f"{r['key']}: fit of {args.epochs} epochs {r['fit_s']:.3f} s, in-loop {r['in_loop_s_per_epoch']:.3f} "
        f"s/epoch, fixed per-fit overhead {r['fit_overhead_s']:.3f} s"
        for r in rows
        if "fit_overhead_s" in r
    ]
    notes += [
        f"sklearn: from the shared initial weights: {r['same_init']}, computes in {r['sklearn_dtype']}"
        for r in rows
        if r["key"] == "sklearn"
    ]
    notes += [
        f"{r['key']}: {r['attempts']} attempts (others busy), kept the least disturbed "
        f"({r['others_cpu_pct']:.0f}%)"
        for r in rows
        if r["attempts"] > 1
    ]
    if notes:
        print("notes: " + "\n       ".join(notes))
    return {"mode": "epoch", "header": header, "args": vars(args), "rows": rows, "skipped": skipped}


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["epoch", "step"], default="epoch")
    p.add_argument("--sizes", type=int, nargs="+", default=[784, 256, 256, 10])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--seed", type=int, default=0, help="data, initial weights and shuffles (epoch mode)")
    p.add_argument("--json", default=None, help="also write the header and all rows here")
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's adaptive malloc thresholds (default: fixed, as the training app runs)",
    )
    e = p.add_argument_group("epoch mode")
    e.add_argument("--rows", type=int, default=50_000, help="synthetic training rows")
    e.add_argument("--test-rows", type=int, default=10_000, help="held-out rows for the test accuracy")
    e.add_argument("--epochs", type=int, default=3, help="timed epochs per path (after 1 warm-up epoch)")
    e.add_argument(
        "--paths",
        default=None,
        help=f"comma list of rows to run: {','.join(PATHS)} (default: all, ln-app-graph on cuda only)",
    )
    e.add_argument("--gemm-size", type=int, default=2048, help="n of the n×n @ n×n matmul giving the peak")
    e.add_argument(
        "--busy-retries",
        type=int,
        default=2,
        help="rerun a row up to this many times while other processes used > --busy-threshold %% of the CPU",
    )
    e.add_argument("--busy-threshold", type=float, default=10.0, help="see --busy-retries (percent)")
    s = p.add_argument_group("step mode")
    s.add_argument("--steps", type=int, default=50, help="steps per timed round")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds: step mode 7 (default), epoch mode 1 (default); medians are reported",
    )
    args = p.parse_args(argv)

    if args.paths is None:  # a CUDA graph's replay is a GPU thing: on the CPU only when asked for
        args.paths = ",".join(k for k in PATHS if k != "ln-app-graph" or args.device.startswith("cuda"))
    keys = [k.strip() for k in args.paths.split(",") if k.strip()]
    unknown = [k for k in keys if k not in PATHS]
    if unknown:
        p.error(f"unknown --paths {unknown}; choose from {list(PATHS)}")
    if BASELINE not in keys:  # every ratio is against the hand-written loop
        keys.insert(0, BASELINE)
    args.paths = [k for k in PATHS if k in keys]
    if args.rounds is None:
        args.rounds = 7 if args.mode == "step" else 1
    for name in ("batch", "rows", "test_rows", "epochs", "gemm_size", "steps", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.busy_retries < 0:
        p.error("--busy-retries must be >= 0")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if len(args.sizes) < 2 or min(args.sizes) < 1 or args.sizes[-1] < 2:
        p.error("--sizes needs at least 2 layers of >= 1 unit and >= 2 outputs (softmax)")
    return args


def _load_avg():
    """1/5/15-minute load average: other busy processes distort every timing (OpenMP threads spin)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def make_header(args, device, dtype, threads_explicit):
    import lightning

    try:
        import sklearn

        sklearn_version = sklearn.__version__
    except ImportError:
        sklearn_version = None
    header = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "sklearn": sklearn_version,
        "blas_numpy": blas_info(),
        "threads": torch.get_num_threads(),
        "threads_set_by": "--threads" if threads_explicit else "default",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "dtype": args.dtype,
        "load_avg_start": _load_avg(),
    }
    header["gemm_size"] = args.gemm_size
    header["gemm_gflops_start"] = header["gemm_gflops"] = gemm_gflops(args.gemm_size, device, dtype)
    print(
        f"machine: {header['cpu']}, {header['cores']} cores ({header['cores_usable']} usable), "
        f"{header['platform']}, python {header['python']}"
    )
    print(
        f"torch {header['torch']}, torch.set_num_threads({header['threads']}) ({header['threads_set_by']}), "
        f"device {device} ({header['device_name']}), {args.dtype}; lightning {header['lightning']}, "
        f"scikit-learn {sklearn_version or 'missing'} (numpy BLAS {header['blas_numpy']})"
    )
    n = args.gemm_size
    print(f"{args.dtype} GEMM {n}x{n} @ {n}x{n}: best {header['gemm_gflops']:.1f} GFLOP/s of 5 runs (start)")
    return header


def main(argv=None):
    args = parse_args(argv)
    threads_before = torch.get_num_threads()
    try:
        return _main(args)
    finally:  # called in-process (tests): leave torch's thread count as it was
        torch.set_num_threads(threads_before)


def _main(args):
    malloc = configure_malloc() if not args.default_malloc else False
    threads_explicit = args.threads is not None
    torch.set_num_threads(args.threads if threads_explicit else torch.get_num_threads())
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")

    header = make_header(args, device, dtype, threads_explicit)
    header["malloc_configured"] = malloc
    print(
        "glibc malloc: fixed mmap/trim thresholds (lecturenn.runtime.configure_malloc)"
        if malloc
        else "malloc: the platform's defaults"
    )
    if args.mode == "step":
        report = run_step_mode(args, device, dtype, header)
    else:
        print(
            f"epoch mode: sizes {args.sizes}, sigmoid hidden, softmax + cross-entropy, SGD lr 0.1, "
            f"batch {args.batch}, {args.rows} train / {args.test_rows} test rows, seed {args.seed}; "
            f"{args.epochs} timed epochs per path after 1 warm-up epoch, all from the same initial Θ"
        )
        report = run_epoch_mode(args, device, dtype, header)
    header["load_avg_end"] = _load_avg()
    if header["load_avg_start"] is not None:
        print(
            f"load average (1/5/15 min): {header['load_avg_start']} at start, {header['load_avg_end']} at "
            f"end, {header['cores_usable']} cores (load beyond this run's own: shared cores, noisier times)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    sys.stdout.flush()
    return report


if __name__ == "__main__":
    main()
