"""The GPU check: everything the project measures on a GPU, in one command, on a bare CUDA machine.

    bash scripts/gpu_check.sh OUTDIR              # on a machine with CUDA: under 7 minutes
    bash scripts/gpu_check.sh --dry-run OUTDIR    # every stage on the CPU, tiny sizes (a test runs it)
    python benchmarks/gpu_check.py OUTDIR [--dry-run] [--only step,epoch] [--budget 400] [--timeout step=60]

Made for a machine lent for minutes with nothing installed beyond torch, lightning, torchmetrics,
scikit-learn, numpy, pandas and pytest, and no network: the project is imported from the working
tree (gpu_check.sh puts the repository root on PYTHONPATH; nothing is installed), and no stage needs
hydra-core or omegaconf — they call the library, Lightning and benchmarks/bench.py directly, and the
test modules that need hydra skip themselves.

Stages, in priority order. Each runs in its own process with a timeout (a CUDA error, a crash or a
hang ends that stage only), is recorded as ok / failed / timeout / skipped, and the rest continue;
together they get a time budget (--budget, 400 s), so the whole check ends in under 7 minutes:

  env         torch / CUDA / GPU / package versions and one CUDA matmul (no CUDA: the other stages
              are skipped, with the reason)
  cuda_tests  pytest -m cuda over tests/ (pyproject's xdist addopts switched off)
  step        one SGD step: nn.Linear vs lecturenn autograd vs manual (benchmarks/bench.py's step mode,
              interleaved rounds) at 64-100-10 (batch 64), 784-256-256-10 (256) and 784-4096-4096-10
              (1024) with fp32 matmuls, and the two larger sizes again with TF32
  kernels     per training step, from torch.profiler: CUDA kernels, memcpy, memset, launch calls, host
              syncs; the peak GPU memory of one step. The same three paths and sizes, and the app's
              training step (ThetaMLPModule + Trainer over batch groups) at 64-100-10 in 32-true,
              bf16-mixed and 16-mixed. On the CPU (dry run) the kernel column is empty and "ops"
              counts the aten ops that would launch one (innermost non-view ops); "syncs" the .item()s.
  graph       one training step at 64-100-10 (batch 64) eager vs captured in a CUDA graph
              (benchmarks/bench_graph.py): steps/s of nn.Linear, the manual step, the estimators'
              step eager and replayed (lecturenn.step_graph) and torch.compile(mode="reduce-overhead")
              of the manual step (its error text if it fails); the speed-ups over nn.Linear (issue 13
              §4's target: >= 3 for the captured step) and a 100-step bitwise check. Dry run: the
              CPU "record" backend and compile's backend="eager" (the plumbing, not the speed)
  precision   digits test accuracy, 3 seeds x fp32 / TF32 / bf16-mixed / 16-mixed, with the app's
              defaults (hidden [100] sigmoid, λ 1, glorot, Adam 0.005, batch 64, 60 epochs, tested on
              the best val/loss epoch), built directly: Lightning Trainer + ThetaMLPModule +
              SklearnDataModule
  epoch       benchmarks/bench.py's epoch mode on the GPU: the app's epoch, without and with
              model.cuda_graph=true, vs a hand-written loop (and DataLoader, plain Lightning, lecturenn
              loops), at 784-256-256-10 (batch 256) and 64-100-10 (batch 64); peak memory added per row

OUTDIR receives four files: summary.json (every stage's status, seconds and numbers; rewritten after
each stage, and stages save partial results as they go, so a run cut short keeps what it measured),
summary.txt (the tables printed last), gpu_check.log (every stage's output) and cuda_tests.log
(pytest's). Exit status 0 when every stage was ok, else 1.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("env", "cuda_tests", "step", "kernels", "graph", "precision", "epoch")  # priority order
BUDGET_S = 400.0  # all stages; the device allows 10 minutes per command, the issue asks for < 7
TIMEOUT_S = {
    "env": 60,
    "cuda_tests": 200,
    "step": 90,
    "kernels": 90,
    "graph": 90,
    "precision": 150,
    "epoch": 150,
}
DRY_TIMEOUT_S = 300.0  # per stage in a dry run: on a loaded 2-core CI machine imports alone take 20 s
MIN_START_S = 10.0  # no stage is started with less of the budget left
OUT_FILES = ("summary.json", "summary.txt", "gpu_check.log", "cuda_tests.log")

# the real run's sizes, and the dry run's stand-ins (dry_run -> [(sizes, batch), ...])
STEP_SIZES = {
    False: [([64, 100, 10], 64), ([784, 256, 256, 10], 256), ([784, 4096, 4096, 10], 1024)],
    True: [([8, 6, 3], 4), ([12, 10, 10, 3], 8), ([16, 32, 32, 3], 16)],
}
EPOCH_SIZES = {False: [([784, 256, 256, 10], 256), ([64, 100, 10], 64)], True: [([16, 8, 4], 32)]}
EPOCH_PATHS = "hand,dataloader,lightning,ln-manual,ln-autograd,ln-app,ln-app-graph"
PRECISIONS = ("fp32", "tf32", "bf16-mixed", "16-mixed")  # fp32, tf32: 32-true, matmuls highest / high
APP_PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


# =============================================================================================
# the orchestrator (imports no torch: a broken CUDA install fails a stage, not the check)
# =============================================================================================
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", nargs="?", default=os.environ.get("OUT") or "gpu_check_out")
    p.add_argument("--dry-run", action="store_true", help="every stage on the CPU with tiny sizes")
    p.add_argument("--only", default=None, help=f"comma list of stages to run, of {','.join(STAGES)}")
    p.add_argument("--budget", type=float, default=None, help=f"seconds for all stages ({BUDGET_S:.0f})")
    p.add_argument("--timeout", action="append", default=[], metavar="STAGE=S", help="a stage's timeout")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run these stages in this process
    p.add_argument("--results", help=argparse.SUPPRESS)  # internal: the worker's folder for results
    args = p.parse_args(argv)
    if not args.outdir.strip():  # "$OUT" with OUT unset: not the current folder
        p.error("OUTDIR is empty: name the folder for the results, e.g. gpu_check_out")
    if args.worker and not args.results:
        p.error("--worker needs --results")
    args.only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else list(STAGES)
    unknown = [s for s in args.only if s not in STAGES]
    if unknown:
        p.error(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    args.only = [s for s in STAGES if s in args.only]  # always in priority order
    timeouts = dict.fromkeys(STAGES, DRY_TIMEOUT_S) if args.dry_run else dict(TIMEOUT_S)
    for item in args.timeout:
        name, _, value = item.partition("=")
        if name not in STAGES:
            p.error(f"--timeout {item!r}: unknown stage {name!r}")
        try:
            timeouts[name] = float(value)
        except ValueError:
            p.error(f"--timeout {item!r}: not a number of seconds")
    args.timeouts = timeouts
    if args.budget is None:
        args.budget = len(STAGES) * DRY_TIMEOUT_S if args.dry_run else BUDGET_S
    return args


def child_env(dry_run: bool) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))  # no install
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MPLBACKEND", "Agg")
    if dry_run:  # the CPU only, one thread each (a shared CI machine: spinning OpenMP threads crawl)
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["OMP_NUM_THREADS"] = "1"
    return env


def run_process(cmd: list[str], log_path: Path, timeout: float, env: dict) -> tuple[str, int | None]:
    """Run cmd in its own process group, output appended to log_path: ("ok"|"failed"|"timeout", rc)."""
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}   (timeout {timeout:.0f} s)\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)  # the stage's own process group: it and its children
            proc.wait()
            log.write(f"\n[gpu_check] timed out after {timeout:.0f} s: killed\n")
            return "timeout", None
    return ("ok" if rc == 0 else "failed"), rc


def log_tail(path: Path, lines: int = 4) -> str:
    try:
        text = path.read_text(errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def pytest_command(junit: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "pytest", "-m", "cuda", "tests"),
        *("-o", "addopts="),  # pyproject's addopts need pytest-xdist (-n auto): not required here
        *("-ra", "--strict-markers", f"--junitxml={junit}"),
        # a module that fails to import (a test package missing there) is one error, not the end of the
        # run: without this pytest stops at collection and no cuda test of any module runs
        "--continue-on-collection-errors",
        *("-p", "no:cacheprovider"),  # nothing written into the tree
        *("-p", "no:hydra_pytest"),  # hydra-core's plugin, where hydra is installed but broken
    ]


def read_junit(junit: Path, log: Path) -> dict:
    """Counts and failing test names from pytest's JUnit XML (else counts from its last line)."""
    import xml.etree.ElementTree as ET

    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failing: list[str] = []
    skipped_app: list[str] = []
    try:
        cases = list(ET.parse(junit).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", log_tail(log, 1)):
            counts["errors" if what.startswith("error") else what] = int(n)
        return {**counts, "failing": failing}
    for case in cases:
        name = "::".join(filter(None, (case.get("classname"), case.get("name"))))
        tags = {child.tag: child for child in case}
        if "failure" in tags or "error" in tags:
            counts["failed" if "failure" in tags else "errors"] += 1
            failing.append(name)
        elif "skipped" in tags:
            counts["skipped"] += 1
            reason = f"{tags['skipped'].get('message', '')} {tags['skipped'].text or ''}"
            if re.search(r"hydra|omegaconf", reason):  # a module that needs the Hydra app's packages
                skipped_app.append(name)
        else:
            counts["passed"] += 1
    return {**counts, "failing": failing, "skipped_needing_hydra": skipped_app}


def write_json(path: Path, obj) -> None:
    write_whole(path, json.dumps(obj, indent=1, default=str))


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` so that a reader sees the old file or the whole new one, never a part (rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def prepare_outdir(out: Path, summary: dict) -> str | None:
    """Make ``out`` a folder holding none of the check's files but the first ``summary.json``, or say
    in one line why it cannot be (a file in the way, no permission, ...)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in OUT_FILES:
            (out / name).unlink(missing_ok=True)
        write_json(out / "summary.json", summary)
    except OSError as e:
        return f"gpu_check: cannot write the results into {str(out)!r}: {e.strerror or e} ({e.filename})"
    return None


def orchestrate(args) -> int:
    out = Path(args.outdir)
    summary = {
        "dry_run": args.dry_run,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "budget_s": args.budget,
        "python": sys.executable,
        "stages": [],
        "files": list(OUT_FILES),
    }
    problem = prepare_outdir(out, summary)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    mode = "dry run: CPU, tiny sizes" if args.dry_run else "GPU"
    print(f"gpu_check ({mode}): {', '.join(args.only)}; budget {args.budget:.0f} s; files in {out}/")
    run = Run(args, out, summary)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        run.tmp = Path(tmp)
        pending = list(args.only)
        while pending:
            if pending[0] == "cuda_tests":
                run.pytest_stage()
                pending.pop(0)
            else:  # the Python stages up to the next pytest run share a worker process while all is well
                batch = list(itertools.takewhile(lambda name: name != "cuda_tests", pending))
                done = run.worker_stages(batch)
                pending = pending[done:]
    summary["wall_s"] = round(time.perf_counter() - run.start, 1)
    write_json(out / "summary.json", summary)
    text = format_summary(summary)
    (out / "summary.txt").write_text(text + "\n")
    print(text, flush=True)
    return 0 if all(s["status"] == "ok" for s in summary["stages"]) else 1


class Run:
    """The stages' records, the budget and the clock, and the processes that run the stages.

    cuda_tests runs pytest in its own process. The Python stages run in a worker process
    (``gpu_check.py --worker a,b,c``) that imports torch and Lightning once and runs them in turn,
    marking each one's start and end in files the orchestrator watches: a stage past its timeout
    gets its worker killed (its process group), a stage that fails or crashes ends its worker (a CUDA
    error can poison the process), and the stages after it go to a fresh worker.
    """

    def __init__(self, args, out: Path, summary: dict):
        self.args, self.out, self.summary = args, out, summary
        self.env = child_env(args.dry_run)
        self.start = time.perf_counter()
        self.blocked: str | None = None  # why the stages after env cannot run (no CUDA)
        self.tmp = Path(tempfile.gettempdir())

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - self.start)

    def open(self, name: str) -> dict | None:
        """The stage's record, or None (recorded as skipped) when it cannot start."""
        record = {"stage": name, "status": "skipped", "seconds": 0.0, "timeout_s": None, "result": {}}
        self.summary["stages"].append(record)
        left = self.left()
        if self.blocked and name != "env":
            record["error"] = self.blocked
        elif left < MIN_START_S:
            record["error"] = f"time budget spent ({max(left, 0):.0f} s left)"
        else:
            record["timeout_s"] = round(min(self.args.timeouts[name], left), 1)
            number = self.args.only.index(name) + 1
            print(
                f"[{number}/{len(self.args.only)}] {name} (timeout {record['timeout_s']:.0f} s) ...",
                flush=True,
            )
            return record
        self.close(record)
        return None

    def close(self, record: dict, seconds: float = 0.0) -> None:
        record["seconds"] = round(seconds, 1)
        if record["stage"] == "env":
            if record["status"] != "ok":
                self.blocked = f"the env stage {record['status']}: {str(record.get('error'))[:200]}"
            elif not self.args.dry_run and not record["result"].get("cuda"):
                self.blocked = "no CUDA device (env stage); on a machine without a GPU use --dry-run"
        print(f"      {record['stage']}: {record['status']} ({record['seconds']:.1f} s)", flush=True)
        self.summary["wall_s"] = round(time.perf_counter() - self.start, 1)
        write_json(self.out / "summary.json", self.summary)

    def pytest_stage(self) -> None:
        record = self.open("cuda_tests")
        if record is None:
            return
        t0, junit, log = time.perf_counter(), self.tmp / "junit.xml", self.out / "cuda_tests.log"
        status, rc = run_process(pytest_command(junit), log, record["timeout_s"], self.env)
        record["result"] = read_junit(junit, log)
        if rc == 5:  # pytest: no test collected (no cuda-marked test at all) is no failure
            status = "ok"
        record["status"] = status
        if status != "ok":
            record["error"] = f"pytest exit status {rc}" if rc is not None else "timed out"
        self.close(record, time.perf_counter() - t0)

    def worker_stages(self, batch: list[str]) -> int:
        """Run batch's stages in one worker until one is not ok; returns how many were dealt with."""
        record = self.open(batch[0])
        if record is None:
            return 1
        results = Path(tempfile.mkdtemp(prefix="worker_", dir=self.tmp))
        log_path = self.out / "gpu_check.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), str(self.out), "--worker", ",".join(batch)]
        cmd += ["--results", str(results)] + (["--dry-run"] if self.args.dry_run else [])
        with open(log_path, "a") as log:
            log.write(f"\n$ {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        done = 0
        try:
            while True:
                name = batch[done]
                t0 = time.perf_counter()  # the first stage's clock includes the worker's imports
                status = self.wait_for(proc, results / f"{name}.done", t0 + record["timeout_s"])
                result = results / f"{name}.json"
                if result.exists():  # partial results survive a failure or a timeout
                    record["result"] = json.loads(result.read_text())
                record["status"] = status
                if status == "timeout":
                    with open(log_path, "a") as log:
                        log.write(
                            f"\n[gpu_check] {name} timed out after {record['timeout_s']:.0f} s: killed\n"
                        )
                if status != "ok":
                    error = record["result"].pop("error", None)
                    record["error"] = error or ("timed out" if status == "timeout" else log_tail(log_path))
                self.close(record, time.perf_counter() - t0)
                done += 1
                if status != "ok" or done == len(batch):
                    return done
                record = self.open(batch[done])
                if record is None:  # out of budget, or env found no CUDA: the worker is not needed
                    return done + 1
        finally:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the worker's own process group
            proc.wait()

    @staticmethod
    def wait_for(proc: subprocess.Popen, done: Path, deadline: float) -> str:
        """ "ok" / "failed" as the worker marks the stage done, "failed" if it exits without doing
        so (a crash), "timeout" at the deadline (the worker is then killed)."""
        while True:
            if mark := _done_mark(done):
                return mark
            if proc.poll() is not None:
                return _done_mark(done) or "failed"
            if time.perf_counter() >= deadline:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return "timeout"
            time.sleep(0.05)


def _done_mark(done: Path) -> str | None:
    """The worker's mark for a stage ("ok"/"failed"), None while there is none (or none whole yet: a
    dry run once read an empty file, written by a worker without write_whole, and crashed)."""
    try:
        words = done.read_text().split()
    except OSError:
        return None
    return words[0] if words else None


# ---------------------------------------------------------------------------------------------
# the tables (printed last, and written to summary.txt)
# ---------------------------------------------------------------------------------------------
def _f(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _size(sizes, batch) -> str:
    return f"{'-'.join(map(str, sizes))} b{batch}"


def format_summary(summary: dict) -> str:
    results = {s["stage"]: s.get("result") or {} for s in summary["stages"]}
    lines: list[str] = []
    runs = results.get("step", {}).get("runs") or []
    if runs:
        lines += ["", "step: ms per SGD step (ratio to nn.Linear: median of interleaved rounds)"]
        lines.append(
            f"{'size':<26}{'matmul':<7}{'nn.Linear':>10}{'autograd':>16}{'manual':>16}{'man/auto':>10}"
        )
        for run in runs:
            ms, ratio = run["ms_per_step"], run["ratio"]
            cells = "".join(
                f"{ms[p]:>9.3f} ({ratio[p]:.2f})" for p in ("lecturenn autograd", "lecturenn manual")
            )
            lines.append(
                f"{_size(run['sizes'], run['batch']):<26}{run['matmul']:<7}{ms['torch nn.Linear']:>10.3f}"
                f"{cells}{run['manual_vs_autograd']:>10.3f}"
            )
    rows = results.get("kernels", {}).get("rows") or []
    if rows:
        cuda = any(r.get("kernels") is not None for r in rows)
        what = (
            "CUDA kernels (device), launch calls and syncs (host)" if cuda else "no GPU: aten ops, .item()s"
        )
        lines += ["", f"kernels per training step: {what}; peak memory of a step"]
        keys, widths = ("kernels", "memcpy", "memset", "launches", "syncs", "ops"), (8, 7, 7, 9, 6, 6)
        head = "".join(f"{k:>{w}}" for k, w in zip(keys, widths))
        lines.append(f"{'path':<26}{'size':<26}{head}{'peak MiB':>10}")
        for r in rows:
            cells = "".join(f"{_f(r.get(k), '.1f'):>{w}}" for k, w in zip(keys, widths))
            error = f"  {r['error'][:100]}" if r.get("error") else ""
            peak = _f(r.get("peak_mib"), ".1f")
            lines.append(f"{r['path']:<26}{_size(r['sizes'], r['batch']):<26}{cells}{peak:>10}{error}")
    graph = results.get("graph", {})
    if graph.get("rows"):
        import bench_graph

        lines += ["", bench_graph.format_rows(graph)]
    by_precision = results.get("precision", {}).get("by_precision") or []
    if by_precision:
        lines += [
            "",
            "precision: digits test accuracy over seeds (the app's defaults; the best val/loss epoch)",
        ]
        lines.append(
            f"{'precision':<12}{'seeds':>6}{'mean':>8}{'std':>8}{'min':>8}{'vs fp32':>9}{'fit s':>8}"
        )
        for r in by_precision:
            lines.append(
                f"{r['precision']:<12}{r['seeds']:>6}{_f(r.get('acc_mean'), '.4f'):>8}"
                f"{_f(r.get('acc_std'), '.4f'):>8}{_f(r.get('acc_min'), '.4f'):>8}"
                f"{_f(r.get('delta_vs_fp32'), '+.4f'):>9}{_f(r.get('fit_s_mean'), '.1f'):>8}"
                + (f"  {r['error']}" if r.get("error") else "")
            )
    epoch_runs = results.get("epoch", {}).get("runs") or []
    if epoch_runs:
        lines += [
            "",
            "epoch: s/epoch per path (ratio to the hand-written loop), peak MiB added, test accuracy",
        ]
        for run in epoch_runs:
            lines.append(f"  {_size(run['sizes'], run['batch'])}, {run['n_rows']} rows")
            for r in run["rows"]:
                lines.append(
                    f"    {r['key']:<12}{r['s_per_epoch']:>9.3f} s ({r['ratio']:.2f})"
                    f"{_f(r.get('peak_added_mib'), '.1f'):>10}{r['test_acc']:>8.4f}"
                )
    lines += ["", f"gpu_check summary ({'dry run: CPU, tiny sizes' if summary['dry_run'] else 'GPU'})"]
    lines.append(f"{'stage':<12}{'status':<9}{'seconds':>8}  result")
    for s in summary["stages"]:
        lines.append(f"{s['stage']:<12}{s['status']:<9}{s['seconds']:>8.1f}  {stage_line(s)}")
    lines.append(
        f"total {summary.get('wall_s', 0.0):.1f} s of a {summary['budget_s']:.0f} s budget; "
        f"files: {', '.join(summary['files'])}"
    )
    return "\n".join(lines)


def stage_line(s: dict) -> str:
    """One line per stage: its headline numbers, then the error if any."""
    r, name, text = s.get("result") or {}, s["stage"], ""
    with contextlib.suppress(KeyError, TypeError, IndexError, StopIteration):  # partial results
        if name == "env" and r:
            text = f"torch {r['torch']} (CUDA {r['torch_cuda']}), {r.get('gpu_name') or 'no GPU'}; "
            text += f"hydra {r['hydra']}"
        elif name == "cuda_tests" and r:
            text = f"{r['passed']} passed, {r['failed']} failed, {r['errors']} errors, {r['skipped']} skipped"
            if r.get("skipped_needing_hydra"):
                text += f" ({len(r['skipped_needing_hydra'])} modules need hydra)"
            text += "; failing: " + ", ".join(r["failing"][:5]) if r["failing"] else ""
        elif name == "step" and r.get("runs"):
            run = r["runs"][0]
            text = f"{_size(run['sizes'], run['batch'])}: manual {run['ratio']['lecturenn manual']:.2f}x, "
            text += f"autograd {run['ratio']['lecturenn autograd']:.2f}x nn.Linear"
        elif name == "kernels" and r.get("rows"):
            first = r["rows"][0]
            key = "kernels" if first.get("kernels") is not None else "ops"
            same = [x for x in r["rows"] if x["sizes"] == first["sizes"] and x["batch"] == first["batch"]]
            text = f"{_size(first['sizes'], first['batch'])} {key}/step: "
            text += ", ".join(f"{x['path'].replace(' + SGD', '')} {_f(x.get(key), '.0f')}" for x in same)
        elif name == "graph" and r.get("rows"):
            speed = {x["path"]: x.get("speedup") for x in r["rows"]}
            text = f"{_size(r['sizes'], r['batch'])}: captured {_f(speed['engine graph'], '.2f')}x, "
            text += f"compiled {_f(speed['manual compiled'], '.2f')}x nn.Linear; "
            text += f"bitwise = eager: {r.get('bitwise_equal')}"
        elif name == "precision" and r.get("by_precision"):
            text = ", ".join(f"{x['precision']} {_f(x.get('acc_mean'), '.4f')}" for x in r["by_precision"])
        elif name == "epoch" and r.get("runs"):
            run = r["runs"][0]
            app = next(x for x in run["rows"] if x["key"] == "ln-app")
            text = f"{_size(run['sizes'], run['batch'])}: the app's epoch {app['ratio']:.2f}x the hand loop's"
            graph = next((x for x in run["rows"] if x["key"] == "ln-app-graph"), None)
            if graph is not None:
                text += f" ({_f(graph.get('ratio'), '.2f')}x with model.cuda_graph=true)"
    return text + (f"  [{str(s['error'])[:200]}]" if s.get("error") else "")


# =============================================================================================
# the stages (in a worker process: python benchmarks/gpu_check.py OUT --worker a,b --results DIR)
# =============================================================================================
class Emitter:
    """The stage's result, rewritten after each measurement: a stage cut short keeps what it measured."""

    def __init__(self, path: str):
        self.path, self.result = Path(path), {}

    def __call__(self, **values) -> None:
        self.result.update(values)
        write_json(self.path, self.result)


def run_worker(args) -> int:
    """Run the stages in turn in this process; a stage that fails ends the process (a fresh worker
    takes the rest: a CUDA error can poison the process)."""
    results = Path(args.results)
    for name in args.worker.split(","):
        t0 = time.process_time()
        print(f"\n=== stage {name} ===", flush=True)
        ok = run_stage(name, Emitter(results / f"{name}.json"), args.dry_run)
        write_whole(results / f"{name}.done", f"{'ok' if ok else 'failed'} {time.process_time() - t0:.1f}")
        if not ok:
            return 1
    return 0


def run_stage(name: str, emit: Emitter, dry_run: bool) -> bool:
    try:
        import torch

        device = torch.device("cpu" if dry_run else "cuda")
        if device.type == "cuda" and name != "env" and not torch.cuda.is_available():
            raise RuntimeError("no CUDA device")
        if torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
        globals()["stage_" + name](emit, device, dry_run)
        if torch.cuda.is_initialized():
            emit(stage_peak_gpu_mib=torch.cuda.max_memory_allocated() / 2**20)
    except Exception as err:  # recorded; the orchestrator carries on with a fresh worker
        traceback.print_exc()
        emit(error=f"{type(err).__name__}: {err}"[:500])
        return False
    return True


def quiet():
    """Lightning's INFO banners and advice warnings stay out of the log (bench.quiet_lightning)."""
    import bench

    return bench.quiet_lightning()


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_matmul(precision: str) -> None:
    """float32 matmuls: "highest" (fp32) or "high" (TF32 on CUDA)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer torch prefers torch.backends.*.fp32_precision
        torch.set_float32_matmul_precision(precision)


# ---------------------------------------------------------------------------------------------
def stage_env(emit, device, dry_run):
    import importlib.metadata
    import importlib.util

    import torch

    import lecturenn

    versions = {}
    for name in (
        "numpy",
        "lightning",
        "torchmetrics",
        "scikit-learn",
        "pandas",
        "pyarrow",
        "pytest",
        "hypothesis",
    ):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    importable = {}
    for name in ("hydra", "omegaconf"):  # the GPU stages need neither
        try:
            importable[name] = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            importable[name] = False
    emit(
        python=platform.python_version(),
        platform=platform.platform(),
        cpus=os.cpu_count(),
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        versions=versions,
        hydra="present" if all(importable.values()) else "missing",
        lecturenn=str(Path(lecturenn.__file__).resolve().parent),
        threads=torch.get_num_threads(),
        cuda=torch.cuda.is_available(),
    )
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        a = torch.randn(1024, 1024, device="cuda")
        emit(
            gpu_name=torch.cuda.get_device_name(0),
            gpu_count=torch.cuda.device_count(),
            capability=list(torch.cuda.get_device_capability(0)),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            bf16_supported=torch.cuda.is_bf16_supported(),
            matmul_sum=float((a @ a).sum().item()),  # the GPU computes
        )
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            query = "--query-gpu=name,driver_version,memory.total,clocks.max.sm"
            smi = subprocess.run(
                ["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True, timeout=20
            )
            emit(nvidia_smi=smi.stdout.strip())
    print(json.dumps(emit.result, indent=1))


# ---------------------------------------------------------------------------------------------
def stage_step(emit, device, dry_run):
    import bench
    import torch

    from lecturenn.runtime import configure_malloc

    configure_malloc()  # as bench.py and the app run
    gemm = 64 if dry_run else 2048
    header = {"device": str(device), "torch": torch.__version__, "gemm_size": gemm}
    header["gemm_gflops"] = bench.gemm_gflops(gemm, device, torch.float32)
    emit(gemm_size=gemm, gemm_gflops=header["gemm_gflops"], runs=[])
    extra = ["--rounds", "2", "--steps", "3"] if dry_run else []  # else bench's 7 rounds of 50 steps
    plan = [(sizes, batch, "highest") for sizes, batch in STEP_SIZES[dry_run]]
    plan += [(sizes, batch, "high") for sizes, batch in STEP_SIZES[dry_run][1:]]  # TF32 where it matters
    runs = []
    for sizes, batch, matmul in plan:
        set_matmul(matmul)
        print(f"--- step: float32 matmul precision {matmul!r}", flush=True)
        argv = ["--mode", "step", "--device", device.type, "--batch", str(batch), "--sizes", *map(str, sizes)]
        report = bench.run_step_mode(bench.parse_args(argv + extra), device, torch.float32, header)
        runs.append(
            {
                "sizes": sizes,
                "batch": batch,
                "matmul": "tf32" if matmul == "high" else "fp32",
                "ms_per_step": {r["path"]: r["ms_per_step"] for r in report["rows"]},
                "ratio": {r["path"]: r["ratio"] for r in report["rows"]},
                "manual_vs_autograd": report["manual_vs_autograd"],
                "manual_vs_autograd_no_checks": report["manual_vs_autograd_no_checks"],
            }
        )
        emit(runs=runs)
    set_matmul("highest")


# ---------------------------------------------------------------------------------------------
def stage_graph(emit, device, dry_run):
    import bench_graph

    bench_graph.measure(device, dry_run, emit)


# ---------------------------------------------------------------------------------------------
NO_KERNEL_OPS = frozenset(  # aten ops that only allocate or make views: never a kernel of their own
    "aten::" + op
    for op in (
        "empty empty_strided empty_like as_strided resolve_conj resolve_neg detach detach_ alias view "
        "_reshape_alias reshape _unsafe_view t transpose permute expand unsqueeze squeeze select slice "
        "narrow lift_fresh result_type to item"
    ).split()
)
SYNC_CALLS = ("cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize")
LAUNCH_CALLS = ("cudaLaunchKernel", "cuLaunchKernel", "cudaGraphLaunch")


def count_events(events, steps: int, cuda: bool, own_syncs: int = 1) -> dict:
    """Per step, from torch.profiler's events: device kernels / memcpy / memset, host launch calls
    and syncs (CUDA; ``own_syncs``, the measuring window's own synchronize, not counted), and on both
    devices the aten ops that would launch a kernel (innermost non-view ops) and the .item() calls."""
    from torch.autograd import DeviceType

    kernels = memcpy = memset = launches = syncs = ops = items = 0
    memo: dict[int, bool] = {}

    def kernel_below(e) -> bool:  # an op under e launches a kernel
        if id(e) not in memo:
            memo[id(e)] = any(launches_kernel(c) or kernel_below(c) for c in e.cpu_children)
        return memo[id(e)]

    def launches_kernel(e) -> bool:  # an aten op that launches a kernel itself
        return e.name.startswith("aten::") and e.name not in NO_KERNEL_OPS and not kernel_below(e)

    for e in events:
        name = e.name
        if e.device_type == DeviceType.CUDA:
            if name.startswith("Memcpy"):
                memcpy += 1
            elif name.startswith("Memset"):
                memset += 1
            else:
                kernels += 1
        elif e.device_type == DeviceType.CPU:
            launches += name.startswith(LAUNCH_CALLS)
            syncs += name.startswith(SYNC_CALLS)
            items += name == "aten::_local_scalar_dense"
            ops += launches_kernel(e)
    result = {"ops": ops / steps, "items": items / steps}
    if cuda:
        result.update(
            kernels=kernels / steps,
            memcpy=memcpy / steps,
            memset=memset / steps,
            launches=launches / steps,
            syncs=max(0, syncs - own_syncs) / steps,
        )
    else:
        result["syncs"] = items / steps  # where a GPU would wait: every .item()
    return result


def profiler():
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        activities.append(ProfilerActivity.CUDA)
    return profile(activities=activities)


def stage_kernels(emit, device, dry_run):
    import bench
    import torch

    cuda = device.type == "cuda"
    if cuda:
        torch.zeros(1, device=device)  # CUDA initialised before the profiler picks its activities
    rows, steps = [], 5
    for sizes, batch in STEP_SIZES[dry_run]:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, sizes[0], generator=gen).to(device)
        y = torch.randint(0, sizes[-1], (batch,), generator=gen).to(device)
        paths = {
            "nn.Linear + SGD": bench.make_baseline(sizes, device, torch.float32, 0),
            "ThetaMLP autograd + SGD": bench.make_theta(sizes, "autograd", device, torch.float32, 0),
            "ThetaMLP manual + SGD": bench.make_theta(sizes, "manual", device, torch.float32, 0),
        }
        for name, step in paths.items():
            for _ in range(3):  # warm-up: cuBLAS handles, optimizer state, the caching allocator
                step(x, y)
            sync(device)
            row = {"path": name, "sizes": sizes, "batch": batch, "peak_mib": None, "peak_added_mib": None}
            if cuda:  # one step's peak, and what it adds to the memory in use before it
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
                step(x, y)
                sync(device)
                peak = torch.cuda.max_memory_allocated(device)
                row.update(peak_mib=peak / 2**20, peak_added_mib=(peak - base) / 2**20)
            with profiler() as prof:
                for _ in range(steps):
                    step(x, y)
                sync(device)
            row.update(count_events(prof.events(), steps, cuda))
            rows.append(row)
            emit(rows=rows)
            print(row, flush=True)
        del paths, x, y
    sizes, batch = STEP_SIZES[dry_run][0]
    for precision in APP_PRECISIONS:
        try:
            row = app_step_counts(device, sizes, batch, precision)
        except Exception as err:  # one precision refused is recorded; the others are still counted
            traceback.print_exc()
            row = {"path": f"app {precision}", "sizes": sizes, "batch": batch, "error": str(err)[:300]}
        rows.append(row)
        emit(rows=rows)
        print(row, flush=True)
    failed = [r for r in rows if r.get("error")]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(rows)} counts failed, e.g. {failed[0]['error']}")


def app_step_counts(device, sizes, batch, precision) -> dict:
    """The app's training step: ThetaMLPModule + Trainer over TensorBatches in batch groups (as
    bench.py's ln-app row); the second epoch's first group is profiled, divided by its steps."""
    import lightning as L
    import torch

    from lecturenn.data import TensorBatches
    from lecturenn.training import ThetaMLPModule

    module = ThetaMLPModule(
        n_features=sizes[0],
        n_outputs=sizes[-1],
        task="multiclass",
        hidden_sizes=list(sizes[1:-1]),
        activation="sigmoid",
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        init_seed=0,
    )
    n = batch * module.steps_per_execution * 2  # two full batch groups per epoch
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n, sizes[0], generator=gen).to(device)
    y = torch.randint(0, sizes[-1], (n,), generator=gen).to(device)
    cuda = device.type == "cuda"

    class Count(L.Callback):
        prof = result = None
        step0 = 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.current_epoch == 1 and batch_idx == 0:
                sync(device)
                self.step0 = trainer.global_step
                self.prof = profiler()
                self.prof.start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self.prof is not None and self.result is None:
                sync(device)
                self.prof.stop()
                steps = trainer.global_step - self.step0
                self.result = {"steps": steps, **count_events(self.prof.events(), steps, cuda)}

    counter = Count()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[counter],
    )
    loader = TensorBatches(X, y, batch_size=batch, shuffle=True, seed=0, group_size=module.batch_group_size)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with quiet():
        trainer.fit(module, train_dataloaders=loader)
    if counter.result is None:
        raise RuntimeError("the profiled batch group never ran")
    return {
        "path": f"app {precision}",
        "sizes": sizes,
        "batch": batch,
        "direct_steps": module.fast_path_in_use == "direct",
        **counter.result,
        "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,  # the whole fit
        "peak_added_mib": None,
    }


# ---------------------------------------------------------------------------------------------
def stage_precision(emit, device, dry_run):
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lecturenn.data import SklearnDataModule
    from lecturenn.training import ThetaMLPModule
    from lecturenn.training.guards import DivergenceGuard

    seeds, max_epochs = ((0,), 2) if dry_run else ((0, 1, 2), 60)
    no_bf16 = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    runs: list[dict] = []
    emit(seeds=list(seeds), max_epochs=max_epochs, runs=runs, by_precision=[])
    with tempfile.TemporaryDirectory(prefix="gpu_check_ckpt_") as tmp:
        for seed in seeds:  # seed-major: a stage cut short still compares every precision
            for name in PRECISIONS:
                run: dict = {"precision": name, "seed": seed}
                runs.append(run)
                if name == "bf16-mixed" and no_bf16:
                    run["skipped"] = "no bf16 on this GPU"
                    continue
                set_matmul("high" if name == "tf32" else "highest")
                t0 = time.perf_counter()
                try:
                    L.seed_everything(seed, workers=True, verbose=False)
                    dm = SklearnDataModule("digits", batch_size=64, seed=seed)  # conf/data/digits.yaml
                    dm.setup("fit")
                    info = dm.info
                    model = ThetaMLPModule(  # conf/model/mlp.yaml + conf/optimizer/adam.yaml
                        info.n_features,
                        info.n_outputs,
                        info.task,
                        hidden_sizes=[100],
                        activation="sigmoid",
                        lam=1.0,
                        init="glorot",
                        init_seed=seed,
                        data_info=info.to_dict(),
                        optimizer=functools.partial(torch.optim.Adam, lr=0.005),
                    )
                    best = ModelCheckpoint(dirpath=f"{tmp}/{name}_{seed}", monitor="val/loss", mode="min")
                    trainer = L.Trainer(
                        max_epochs=max_epochs,
                        accelerator="gpu" if device.type == "cuda" else "cpu",
                        devices=1,
                        precision="32-true" if name in ("fp32", "tf32") else name,
                        logger=False,
                        callbacks=[DivergenceGuard(), best],
                        enable_progress_bar=False,
                        enable_model_summary=False,
                        log_every_n_steps=1,
                    )
                    with quiet():
                        trainer.fit(model, datamodule=dm)
                        run["fit_s"] = time.perf_counter() - t0
                        (result,) = trainer.test(model, datamodule=dm, ckpt_path="best", verbose=False)
                    run.update(acc=float(result["test/acc"]), loss=float(result["test/loss"]))
                    run["epochs"] = trainer.current_epoch
                    # in effect at the end: shows it if the module or Lightning changed what was set
                    run["matmul_precision"] = torch.get_float32_matmul_precision()
                except Exception as err:
                    traceback.print_exc()
                    run["error"] = f"{type(err).__name__}: {err}"[:300]
                print(run, flush=True)
                emit(runs=runs, by_precision=summarize_precision(runs))
    set_matmul("highest")
    failed = [r for r in runs if r.get("error")]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(runs)} runs failed, e.g. {failed[0]['error']}")


def summarize_precision(runs: list[dict]) -> list[dict]:
    rows = []
    for name in PRECISIONS:
        done = [r for r in runs if r["precision"] == name and "acc" in r]
        row = {"precision": name, "seeds": len(done), "acc": [r["acc"] for r in done]}
        if done:
            row.update(
                acc_mean=statistics.fmean(row["acc"]),
                acc_std=statistics.stdev(row["acc"]) if len(done) > 1 else 0.0,
                acc_min=min(row["acc"]),
                fit_s_mean=statistics.fmean(r["fit_s"] for r in done),
            )
        problems = [r.get("error") or r.get("skipped") for r in runs if r["precision"] == name]
        if any(problems):
            row["error"] = next(p for p in problems if p)[:120]
        rows.append(row)
    fp32 = rows[0].get("acc_mean")
    for row in rows:
        if fp32 is not None and row.get("acc_mean") is not None:
            row["delta_vs_fp32"] = row["acc_mean"] - fp32
    return rows


# ---------------------------------------------------------------------------------------------
def stage_epoch(emit, device, dry_run):
    import bench

    if dry_run:
        extra = "--rows 512 --test-rows 128 --epochs 1 --gemm-size 64".split()
    else:
        extra = "--epochs 3".split()  # 50 000 rows, 10 000 test rows, 1 warm-up epoch (bench's defaults)
    keep = ("key", "path", "s_per_epoch", "ratio", "peak_mib", "peak_added_mib", "test_acc", "samples_per_s")
    runs = []
    for sizes, batch in EPOCH_SIZES[dry_run]:
        argv = [
            "--mode",
            "epoch",
            "--device",
            device.type,
            "--batch",
            str(batch),
            "--sizes",
            *map(str, sizes),
        ]
        report = bench.main(argv + ["--paths", EPOCH_PATHS, "--busy-retries", "0"] + extra)
        rows = [{k: r.get(k) for k in keep} for r in report["rows"]]
        runs.append({"sizes": sizes, "batch": batch, "n_rows": report["args"]["rows"], "rows": rows})
        emit(runs=runs)


# =============================================================================================
def main(argv=None) -> int:
    args = parse_args(argv)
    return run_worker(args) if args.worker else orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
