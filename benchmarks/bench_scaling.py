"""Epoch time against the number of rows, in memory and streamed from a ``.npy`` file.

    python benchmarks/bench_scaling.py                                  # 10k … 1M rows × 784 features
    python benchmarks/bench_scaling.py --rows 10000 100000 --paths app,stream --json scaling.json

Every path trains the 784-256-256-10 sigmoid net of ``benchmarks/bench.py`` (softmax + cross-entropy,
SGD lr 0.1, batch 256) on X ~ N(0, 1), y = argmax(X W) for a fixed W:

  hand    the hand-written loop (nn.Linear, randperm, X[idx] batches) over in-memory tensors
  app     lecturenn.training.ThetaMLPModule + Lightning over lecturenn.data.TensorBatches (in memory)
  stream  the same module over lecturenn.data.NpyStreamDataModule reading X.npy / y.npy from disk in
          blocks (the larger-than-RAM path; the file is written once per size, chunk by chunk)

Each (rows, path) runs one warm-up epoch and ``--epochs`` timed epochs (the Lightning paths are
timed inside the loop, from the first timed epoch's start to the last one's end). Then, per path,
the power law t = c·rows^β is fitted in log-log space (β = 1.00 means linear in rows) and the line
t = a + b·rows by least squares; the script prints β with its R², b (the marginal µs per row), a,
and the range of the cost per row over the sizes. "peak+ MiB" is the rise of the process's peak
resident memory during the row (VmHWM, reset before each row; Linux only): for ``stream`` it stays
bounded by the shuffle buffer whatever the file size; the in-memory paths hold X (rows × 784 × 4 B)
from before the row starts.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from bench import PeakMemory, quiet_lightning  # benchmarks/bench.py, beside this file
from torch import nn

from lecturenn.runtime import configure_malloc

PATHS = ("hand", "app", "stream")


def make_data(rows: int, d: int, k: int, seed: int, chunk: int = 65536):
    """X (rows, d) float32 ~ N(0, 1) and y = argmax(X W), generated chunk by chunk."""
    g = np.random.default_rng(seed)
    W = g.standard_normal((d, k)).astype(np.float32)
    X = np.empty((rows, d), dtype=np.float32)
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        X[start:stop] = g.standard_normal((stop - start, d), dtype=np.float32)
    return X, (X @ W).argmax(axis=1).astype(np.int64)


def write_npy(directory: Path, X: np.ndarray, y: np.ndarray) -> tuple[Path, Path]:
    xp, yp = directory / f"X_{len(X)}.npy", directory / f"y_{len(X)}.npy"
    out = np.lib.format.open_memmap(xp, mode="w+", dtype=X.dtype, shape=X.shape)
    for start in range(0, len(X), 65536):
        out[start : start + 65536] = X[start : start + 65536]
    out.flush()
    del out
    np.save(yp, y)
    return xp, yp


def hand(X: torch.Tensor, y: torch.Tensor, sizes, batch: int, epochs: int) -> list[float]:
    layers: list[nn.Module] = []
    for i, (s, t) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(s, t))
        if i < len(sizes) - 2:
            layers.append(nn.Sigmoid())
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    n, times = len(X), []
    for _ in range(1 + epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times[1:]


def lightning_epochs(module, fit_kwargs, epochs: int) -> list[float]:
    import lightning as L

    class Clock(L.Callback):
        def __init__(self):
            self.starts, self.ends = [], []

        def on_train_epoch_start(self, trainer, pl_module):
            self.starts.append(time.perf_counter())

        def on_train_epoch_end(self, trainer, pl_module):
            self.ends.append(time.perf_counter())

    clock = Clock()
    trainer = L.Trainer(
        max_epochs=1 + epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[clock],
    )
    trainer.fit(module, **fit_kwargs)
    return [e - s for s, e in zip(clock.starts[1:], clock.ends[1:])]


def make_module(sizes, n_train: int):
    from lecturenn.training import ThetaMLPModule

    module = ThetaMLPModule(
        n_features=sizes[0],
        n_outputs=sizes[-1],
        task="multiclass",
        hidden_sizes=list(sizes[1:-1]),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        init_seed=0,
    )
    module.n_train = n_train  # N in λ/(2N) (no DataInfo here: the rows are generated)
    return module


def run_row(path: str, X, y, sizes, args, directory: Path) -> dict:
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    files = write_npy(directory, X, y) if path == "stream" else None
    memory = PeakMemory(torch.device("cpu"))
    memory.start()
    extra = {}
    if path == "hand":
        times = hand(Xt, yt, sizes, args.batch, args.epochs)
    elif path == "app":
        from lecturenn.data import TensorBatches

        module = make_module(sizes, len(X))  # batch groups of its steps_per_execution, as the app serves
        loader = TensorBatches(Xt, yt, args.batch, shuffle=True, seed=0, group_size=module.batch_group_size)
        times = lightning_epochs(module, {"train_dataloaders": loader}, args.epochs)
    else:
        from lecturenn.data import NpyStreamDataModule

        del Xt, yt
        dm = NpyStreamDataModule(
            str(files[0]),
            str(files[1]),
            batch_size=args.batch,
            val_fraction=0.01,
            test_fraction=0.01,
            block_rows=max(64, min(1024, len(X) // 64)),  # ≥ 64 blocks: 1 % for val and test each
            seed=0,
        )
        t0 = time.perf_counter()
        dm.setup("fit")
        extra["setup_s"] = time.perf_counter() - t0
        extra["train_rows"] = dm.split_sizes()["train"]
        times = lightning_epochs(make_module(sizes, dm.info.n_train), {"datamodule": dm}, args.epochs)
    peak = memory.stop()
    if files is not None:
        for f in files:
            f.unlink()
    s = sum(times) / len(times)
    rows = extra.get("train_rows", len(X))
    return {
        "path": path,
        "rows": rows,
        "s_per_epoch": s,
        "us_per_row": 1e6 * s / rows,
        "epoch_s": times,
        "peak_added_mib": None if peak is None else peak[1],
        **extra,
    }


def fit_scaling(rows: list[int], seconds: list[float]) -> dict:
    """Power law t = c·rows^β fitted in log-log space (β = 1: linear in rows), its R², and the
    least-squares line t = a + b·rows (b: the marginal cost of a row)."""
    x, t = np.log(np.asarray(rows, dtype=float)), np.log(np.asarray(seconds))
    beta, log_c = np.polyfit(x, t, 1)
    residual = t - (log_c + beta * x)
    ss_tot = float(((t - t.mean()) ** 2).sum())
    b, a = np.polyfit(np.asarray(rows, dtype=float), np.asarray(seconds), 1)
    per_row = np.asarray(seconds) / np.asarray(rows)
    return {
        "exponent": float(beta),
        "r2_loglog": 1 - float((residual**2).sum()) / ss_tot if ss_tot > 0 else 1.0,
        "us_per_row_marginal": float(b) * 1e6,
        "intercept_s": float(a),
        "us_per_row_min_max": [float(per_row.min()) * 1e6, float(per_row.max()) * 1e6],
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000, 1_000_000])
    p.add_argument("--sizes", type=int, nargs="+", default=[784, 256, 256, 10])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per (rows, path) after 1 warm-up")
    p.add_argument("--paths", default=",".join(PATHS))
    p.add_argument("--dir", default=None, help="where the .npy files go (default: a temporary directory)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    paths = [k.strip() for k in args.paths.split(",") if k.strip()]
    if unknown := [k for k in paths if k not in PATHS]:
        p.error(f"unknown --paths {unknown}; choose from {list(PATHS)}")
    if min(args.rows) < 10 * args.batch or args.epochs < 1:
        p.error("--rows must be >= 10 batches and --epochs >= 1")

    import lightning  # noqa: F401  (it sets its loggers' levels on import: before quiet_lightning)

    configure_malloc()  # as the training app runs (lecturenn.runtime)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), python {platform.python_version()}"
    )
    print(f"sizes {args.sizes}, batch {args.batch}, {args.epochs} timed epoch(s) after a warm-up; {paths}")
    results = []
    with quiet_lightning(), tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for rows in sorted(args.rows):
            X, y = make_data(rows, args.sizes[0], args.sizes[-1], seed=0)
            for path in paths:
                r = run_row(path, X, y, args.sizes, args, Path(tmp))
                results.append(r)
                mem = "n/a" if r["peak_added_mib"] is None else f"{r['peak_added_mib']:.0f}"
                print(
                    f"rows {rows:>9}  {path:<7} {r['s_per_epoch']:9.3f} s/epoch  "
                    f"{r['us_per_row']:6.2f} µs/row  peak+ {mem:>6} MiB"
                    + (f"  (setup {r['setup_s']:.2f} s)" if "setup_s" in r else ""),
                    flush=True,
                )
            del X, y
    fits = {}
    print("\nfit per path: t = c·rows^β (β = 1 is linear in rows) and the line t = a + b·rows:")
    for path in paths:
        rs = [r for r in results if r["path"] == path]
        if len(rs) < 2:
            continue
        f = fits[path] = fit_scaling([r["rows"] for r in rs], [r["s_per_epoch"] for r in rs])
        lo, hi = f["us_per_row_min_max"]
        print(
            f"  {path:<7} β = {f['exponent']:.3f} (R² {f['r2_loglog']:.4f}); "
            f"b = {f['us_per_row_marginal']:.2f} µs/row, a = {f['intercept_s']:+.3f} s; "
            f"cost per row {lo:.1f}–{hi:.1f} µs over the sizes"
        )
    report = {"args": vars(args), "results": results, "fits": fits}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
