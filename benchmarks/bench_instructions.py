"""Instructions per training step, counted by valgrind's callgrind: the step's CPU work as a number
that does not drift with the machine, unlike its time (this shared VM's timings move by ±30 %).

    python benchmarks/bench_instructions.py                          # 64-25-10/32 and 64-100-10/64, ~8 min
    python benchmarks/bench_instructions.py --sizes 64 25 10 --batch 32 --steps 100
    python benchmarks/bench_instructions.py --phases                 # only run the phases (no valgrind)

Rows, each the README's loop (``J = cost(X, y); J.backward(); opt.step()``, SGD, one thread) on one
fixed batch, built by benchmarks/bench.py's step mode: ``nn.Linear`` (the baseline), the bare
``ThetaCost.apply`` (the manual Function without ``net.cost``'s argument handling), ``net.cost`` on the
manual and the autograd path with ``validate_inputs=False``, and both with the checks on.

How: the script runs itself under ``valgrind --tool=callgrind --dump-before=getppid``; every phase
(``--steps`` steps of one row, after 30 warm-up steps of every row) is framed by ``os.getppid()``
calls, so callgrind writes one dump per phase, whose total divided by the steps is the row's
instructions per step (all threads; user space only). Instructions are not time: at the lecture's
sizes the manual path executes fewer instructions than the autograd one but takes longer (its
backward runs in the Python interpreter, whose branchy code retires fewer instructions per cycle than
torch's C++ autograd engine) — so this measures work, `bench.py --mode step` measures time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_RUNS = [([64, 25, 10], 32), ([64, 100, 10], 64)]
ROWS = (
    "torch nn.Linear",
    "ThetaCost.apply",
    "manual, no checks",
    "autograd, no checks",
    "lecturenn manual",
    "lecturenn autograd",
)
WARM_UP = 30


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="one network (default: two)")
    p.add_argument("--batch", type=int, default=None, help="its batch size (with --sizes)")
    p.add_argument("--steps", type=int, default=100, help="steps counted per row")
    p.add_argument("--phases", action="store_true", help="run the phases in this process, no valgrind")
    p.add_argument("--order", help=argparse.SUPPRESS)  # internal: where --phases writes the phase names
    args = p.parse_args(argv)
    if (args.sizes is None) != (args.batch is None):
        p.error("--sizes and --batch go together")
    if args.sizes is not None and (len(args.sizes) < 2 or min(args.sizes) < 1 or args.batch < 1):
        p.error("--sizes needs at least two layer sizes >= 1 and --batch >= 1")
    if args.steps < 1:
        p.error("--steps must be >= 1")
    args.runs = DEFAULT_RUNS if args.sizes is None else [(args.sizes, args.batch)]
    return args


def bare_function_step(sizes, x, y):
    """ThetaCost.apply itself: what the manual Function costs without ``net.cost``'s wrapper."""
    import torch

    import lecturenn as ln
    from lecturenn.autograd_support import apply_function
    from lecturenn.backprop import ThetaCost

    net = ln.ThetaMLP(sizes, "sigmoid", "softmax", generator=0)
    thetas = net._theta_list()
    opt = torch.optim.SGD(thetas, lr=0.1)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        J = apply_function(ThetaCost, x, y, None, net.activation, net.head, 0.0, True, *thetas)[0]
        J.backward()
        opt.step()

    return step


def run_phases(runs, steps: int) -> list[str]:
    """Warm every row up, then run each for ``steps`` steps between two ``os.getppid()`` calls (the
    markers callgrind dumps at); returns the phases' names in order."""
    import torch

    sys.path.insert(0, str(HERE))
    import bench

    torch.set_num_threads(1)
    cpu, names = torch.device("cpu"), []
    for sizes, batch in runs:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, sizes[0], generator=gen)
        y = torch.randint(0, sizes[-1], (batch,), generator=gen)
        rows = {
            "torch nn.Linear": bench.make_baseline(sizes, cpu, torch.float32, 0),
            "ThetaCost.apply": bare_function_step(sizes, x, y),
            "manual, no checks": bench.make_theta(sizes, "manual", cpu, torch.float32, 0, checks=False),
            "autograd, no checks": bench.make_theta(sizes, "autograd", cpu, torch.float32, 0, checks=False),
            "lecturenn manual": bench.make_theta(sizes, "manual", cpu, torch.float32, 0),
            "lecturenn autograd": bench.make_theta(sizes, "autograd", cpu, torch.float32, 0),
        }
        for step in rows.values():
            for _ in range(WARM_UP):
                step(x, y)
        for name, step in rows.items():
            os.getppid()
            for _ in range(steps):
                step(x, y)
            os.getppid()
            names.append(f"{'-'.join(map(str, sizes))}/{batch}\t{name}")
    return names


def phase_totals(dumps: list[Path]) -> list[int]:
    """Each phase's instruction count: the "summary:" of every second dump (callgrind dumps before
    each marker, so dump 2k holds the steps of phase k; the odd ones hold what lies between)."""
    totals = []
    for path in sorted(dumps, key=lambda p: int(p.name.rsplit(".", 1)[1]))[1::2]:
        match = re.search(r"^summary:\s*(\d+)", path.read_text(errors="replace"), re.M)
        if match is None:
            raise ValueError(f"{path}: no 'summary:' line (not a callgrind dump?)")
        totals.append(int(match.group(1)))
    return totals


def table(names: list[str], totals: list[int], steps: int) -> str:
    """Instructions per step per row, and each row's ratio to nn.Linear and manual ÷ autograd."""
    per_step: dict[str, dict[str, float]] = {}
    for name, total in zip(names, totals):
        run, row = name.split("\t")
        per_step.setdefault(run, {})[row] = total / steps
    lines = [f"{'size/batch':<16}{'row':<22}{'instructions/step':>18}{'÷ nn.Linear':>13}"]
    for run, rows in per_step.items():
        base = rows["torch nn.Linear"]
        for row in ROWS:
            lines.append(f"{run:<16}{row:<22}{rows[row]:>18,.0f}{rows[row] / base:>13.3f}")
        unchecked = rows["manual, no checks"] / rows["autograd, no checks"]
        checked = rows["lecturenn manual"] / rows["lecturenn autograd"]
        lines.append(
            f"{run:<16}manual ÷ autograd: {unchecked:.3f} without the checks, {checked:.3f} with them"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phases:
        names = run_phases(args.runs, args.steps)
        if args.order:
            Path(args.order).write_text("\n".join(names) + "\n")
        return 0
    if shutil.which("valgrind") is None:
        print(
            "bench_instructions: valgrind is not installed (Debian: apt-get install valgrind)",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out, order = Path(tmp) / "cg.out", Path(tmp) / "order.txt"
        me = [sys.executable, str(Path(__file__).resolve()), "--phases", "--order", str(order)]
        me += ["--steps", str(args.steps)]
        if args.sizes is not None:
            me += ["--sizes", *map(str, args.sizes), "--batch", str(args.batch)]
        cmd = ["valgrind", "--tool=callgrind", "--dump-before=getppid", f"--callgrind-out-file={out}", *me]
        print("running:", " ".join(cmd), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not order.exists():
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        names = order.read_text().splitlines()
        totals = phase_totals(list(Path(tmp).glob("cg.out.*")))
    print(table(names, totals, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
