"""Benchmark lecturenn's training step against a hand-written PyTorch baseline, in one process.

    python scripts/bench.py                                  # 784-256-256-10 sigmoid, batch 256, CPU
    python scripts/bench.py --sizes 64 25 10 --batch 64 --device cuda --json bench.json

Every path trains the same architecture (sigmoid hidden units, softmax + cross-entropy) with SGD on
the same synthetic batch; rounds are interleaved so that machine noise hits all paths alike, and the
median over rounds is reported. Ratios are against ``torch nn.Linear`` (an ``nn.Sequential`` of
``nn.Linear`` + ``nn.Sigmoid`` with ``F.cross_entropy``) measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import lecturenn as ln


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def make_theta(sizes, backprop, device, dtype, generator_seed):
    net = ln.ThetaMLP(
        sizes, "sigmoid", "softmax", backprop, generator=generator_seed, device=device, dtype=dtype
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        J = net.cost(x, y)
        J.backward()
        opt.step()
        return J

    return step


def step_flops(sizes, batch):
    """Multiply-adds of forward (1×) + backward (2×) GEMMs, counted as 2 flops each."""
    macs = sum(s * s_next for s, s_next in zip(sizes[:-1], sizes[1:]))
    return 3 * 2 * batch * macs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[784, 256, 256, 10])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.sizes[0], generator=gen).to(device, dtype)
    y = torch.randint(0, args.sizes[-1], (args.batch,), generator=gen).to(device)

    paths = {
        "torch nn.Linear": make_baseline(args.sizes, device, dtype, 0),
        "lecturenn autograd": make_theta(args.sizes, "autograd", device, dtype, 0),
        "lecturenn manual": make_theta(args.sizes, "manual", device, dtype, 0),
    }
    times = {name: [] for name in paths}
    for step in paths.values():  # warm-up
        for _ in range(5):
            step(x, y)
    sync(device)
    for _ in range(args.rounds):
        for name, step in paths.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            sync(device)
            times[name].append((time.perf_counter() - t0) / args.steps)

    base = statistics.median(times["torch nn.Linear"])
    flops = step_flops(args.sizes, args.batch)
    rows = []
    print(
        f"sizes {args.sizes}, batch {args.batch}, {args.dtype}, {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print(f"{'path':<22}{'ms/step':>10}{'samples/s':>12}{'GFLOP/s':>10}{'ratio':>8}")
    for name, ts in times.items():
        t = statistics.median(ts)
        row = {
            "path": name,
            "ms_per_step": t * 1e3,
            "samples_per_s": args.batch / t,
            "gflops": flops / t / 1e9,
            "ratio": t / base,
        }
        rows.append(row)
        print(
            f"{name:<22}{row['ms_per_step']:>10.3f}{row['samples_per_s']:>12.0f}"
            f"{row['gflops']:>10.1f}{row['ratio']:>8.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "torch": torch.__version__, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
