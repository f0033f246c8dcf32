"""scripts/gpu_check.sh works the first time a GPU appears (issue 13 §1): its dry run runs every stage
on the CPU where hydra-core and omegaconf cannot be imported, as on the bare GPU machine; the parts
only a GPU reaches (CUDA kernel counts, the tables of GPU results) are fed CUDA-shaped data here."""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bench_graph  # benchmarks/bench_graph.py
import gpu_check  # benchmarks/gpu_check.py (tests/conftest.py puts benchmarks/ on sys.path)
import pytest
import torch
from torch.autograd import DeviceType

ROOT = Path(__file__).resolve().parents[1]

# On PYTHONPATH, this makes the packages unimportable in every process started with it, and invisible
# to importlib.util.find_spec (Lightning asks find_spec whether omegaconf is there): what the GPU
# machine has. The path finder itself does not find them, so find_spec returns None, as for a package
# that is not installed. It is patched on the class, not replaced in sys.meta_path: pytest's
# assertion-rewrite hook goes first for the packages of pytest plugins (hypothesis, hydra-core) and
# calls PathFinder.find_spec itself, so a replaced finder let the stage import a pure-Python
# hypothesis anyway (CI, hypothesis 6.155). A finder that raised broke torch 2.4's dynamo (it asks
# find_spec about omegaconf); a None in sys.modules breaks pytest's start (it reads every module's
# __loader__); a stub package that raised on import would still be found.
BLOCK_PACKAGES = """
from importlib.machinery import PathFinder

_find_spec = PathFinder.find_spec


def find_spec(cls, name, path=None, target=None):
    if name.partition(".")[0] in {blocked!r}:
        return None  # what the path finder says of a package that is not installed
    return _find_spec(name, path, target)


PathFinder.find_spec = classmethod(find_spec)
"""
BLOCK_PROBE = """
import importlib
import importlib.util
import os

import pytest


@pytest.mark.parametrize("name", os.environ["BLOCKED_NAMES"].split(","))
def test_the_package_cannot_be_imported(name):
    assert importlib.util.find_spec(name) is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(name)
"""
APP_PACKAGES = ("hydra", "omegaconf", "antlr4")


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory):
    """The environment of the GPU machine: no hydra-core, omegaconf or antlr4 (built and checked once)."""
    return blocking_env(tmp_path_factory.mktemp("bare"), APP_PACKAGES)


def blocking_env(tmp_path, blocked) -> dict:
    """os.environ with the packages ``blocked`` unimportable in every Python process started with it."""
    block = tmp_path / "blocked"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCK_PACKAGES.format(blocked=tuple(blocked)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(block), env.get("PYTHONPATH")]))
    # a package that is not installed brings no pytest plugin either (hypothesis's would import it)
    env["PYTEST_ADDOPTS"] = " ".join(f"-p no:{name}" for name in pytest_plugins_of(blocked))
    probe = block / "test_blocked.py"
    probe.write_text(BLOCK_PROBE)
    # checked under pytest, whose assertion-rewrite hook finds the plugins' packages itself
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
        cwd=block,
        env={**env, "BLOCKED_NAMES": ",".join(blocked)},
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    return env


def pytest_plugins_of(packages) -> list[str]:
    """Names of the pytest plugins (entry points) that the distributions holding ``packages`` bring."""
    names, wanted = [], set(packages)
    for entry in importlib.metadata.entry_points(group="pytest11"):
        # the distribution's own name and the plugin module's package count too: an install without a
        # RECORD file lists no files
        tops = {Path(str(f)).parts[0].removesuffix(".py") for f in entry.dist.files or ()}
        tops |= {entry.dist.name, entry.value.partition(".")[0]}
        if tops & wanted:
            names.append(entry.name)
    return names


def run_check(args, env, timeout=900):
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def stages(out: Path, proc=None) -> dict:
    if proc is not None and not (out / "summary.json").is_file():  # a crash also exits 1: show it
        raise AssertionError(
            f"no summary.json (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    summary = json.loads((out / "summary.json").read_text())
    return {s["stage"]: s for s in summary["stages"]}


@pytest.mark.slow
def test_dry_run_runs_every_stage_without_hydra(bare_env, tmp_path):
    out = tmp_path / "out"
    # the interpreter running these tests, not whichever python3 is first on PATH (a venv's python run
    # without activating the venv found the system's, which has no torch)
    env = {**bare_env, "PYTHON": sys.executable}
    proc = run_check(["bash", "scripts/gpu_check.sh", "--dry-run", str(out)], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(gpu_check.OUT_FILES)  # the device returns 8
    assert len(gpu_check.OUT_FILES) <= 6
    # the summary table is printed last
    last = proc.stdout.rstrip().splitlines()
    assert last[-1].startswith("total ") and "budget" in last[-1], last[-10:]
    assert any(line.startswith("gpu_check summary (dry run") for line in last[-10:])
    assert (out / "summary.txt").read_text().strip().splitlines()[-1] == last[-1]

    assert json.loads((out / "summary.json").read_text())["python"] == sys.executable  # $PYTHON honoured
    s = stages(out, proc)
    assert list(s) == list(gpu_check.STAGES)
    assert {name: st["status"] for name, st in s.items()} == dict.fromkeys(gpu_check.STAGES, "ok")
    assert s["env"]["result"]["hydra"] == "missing"  # the stages ran without hydra
    tests = s["cuda_tests"]["result"]
    assert tests["failed"] == tests["errors"] == 0 and tests["skipped"] > 0
    assert {"tests.test_app", "tests.test_runs"} <= set(tests["skipped_needing_hydra"])  # skipped, no error
    runs = s["step"]["result"]["runs"]
    assert [r["matmul"] for r in runs] == ["fp32"] * 3 + ["tf32"] * 2
    paths = {
        "torch nn.Linear",
        "lecturenn autograd",
        "lecturenn manual",
        "autograd, no checks",
        "manual, no checks",
    }
    assert all(set(r["ratio"]) == paths and r["manual_vs_autograd_no_checks"] > 0 for r in runs)
    rows = s["kernels"]["result"]["rows"]
    assert len(rows) == 3 * 3 + 3 and all(r["ops"] > 0 for r in rows)
    assert [r["path"] for r in rows[-3:]] == [f"app {p}" for p in gpu_check.APP_PRECISIONS]
    assert all(r["steps"] == 32 for r in rows[-3:])  # one batch group of steps_per_execution steps
    by_precision = s["precision"]["result"]["by_precision"]
    assert [r["precision"] for r in by_precision] == list(gpu_check.PRECISIONS)
    assert all(r["seeds"] == 1 and 0 < r["acc_mean"] <= 1 for r in by_precision)
    graph = s["graph"]["result"]  # the captured step with the CPU "record" backend (issue 13 §4)
    assert graph["bitwise_equal"] is True and graph["graph_backend"] == "record"
    assert [r["path"] for r in graph["rows"]] == list(bench_graph.PATHS)
    (epoch,) = s["epoch"]["result"]["runs"]
    assert [r["key"] for r in epoch["rows"]] == gpu_check.EPOCH_PATHS.split(",")


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the run on a machine without CUDA")
def test_without_cuda_the_gpu_stages_are_skipped_with_the_reason(bare_env, tmp_path):
    out = tmp_path / "out"
    proc = run_check([sys.executable, "benchmarks/gpu_check.py", str(out), "--only", "env,step"], bare_env)
    assert proc.returncode == 1
    s = stages(out, proc)
    assert s["env"]["status"] == "ok" and s["env"]["result"]["cuda"] is False
    assert s["step"]["status"] == "skipped" and "no CUDA device" in s["step"]["error"]
    assert "use --dry-run" in proc.stdout.splitlines()[-2]


def test_the_script_runs_python_from_pythonenv_or_path_or_says_there_is_none(tmp_path):
    """$PYTHON, else python3 on PATH, else python on PATH; with none, one line and exit 2."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHON", "PYTHONPATH")}
    env["PATH"] = str(bin_dir)

    def script(**extra):
        return subprocess.run(
            [shutil.which("bash"), str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", "x"],
            env={**env, **extra},
            capture_output=True,
            text=True,
        )

    def stand_in(path):  # stands in for an interpreter: shows what it was run with
        path.write_text(f'#!/bin/sh\necho {path.name} "$PYTHONPATH" "$@"\n')
        path.chmod(0o755)

    proc = script()
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "gpu_check: no python3 or python on PATH (set PYTHON=...)\n"
    run_with = [str(ROOT), str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "x"]
    stand_in(bin_dir / "python")
    assert script().stdout.split() == ["python", *run_with]
    stand_in(bin_dir / "python3")
    assert script().stdout.split() == ["python3", *run_with]
    stand_in(tmp_path / "chosen")
    assert script(PYTHON=str(tmp_path / "chosen")).stdout.split() == ["chosen", *run_with]


@pytest.mark.parametrize(
    "outdir, why",
    [
        ("a_file", "File exists"),
        ("a_file/sub", "Not a directory"),
        ("results", "Is a directory"),  # its summary.json is a folder
        ("", "OUTDIR is empty"),  # "$OUT" with OUT unset: it wrote into the current folder
    ],
)
def test_an_outdir_that_cannot_hold_the_results_is_one_line_before_any_stage(tmp_path, outdir, why):
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "results" / "summary.json").mkdir(parents=True)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", outdir],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert why in proc.stderr.splitlines()[-1] and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    assert (tmp_path / "a_file").read_text() == "mine"


@pytest.mark.slow
def test_a_test_module_that_cannot_be_imported_does_not_stop_the_other_cuda_tests(tmp_path):
    # found with the GPU image's torch 2.11 / Python 3.12 on the CPU, hypothesis left out: pytest
    # stopped at test_backprop's import error and no cuda test of any module was collected
    env = blocking_env(tmp_path, (*APP_PACKAGES, "hypothesis"))
    out = tmp_path / "out"
    proc = run_check(
        [sys.executable, "benchmarks/gpu_check.py", str(out), "--dry-run", "--only", "cuda_tests"], env
    )
    assert proc.returncode == 1  # the import error is a failure of the stage ...
    tests = stages(out, proc)["cuda_tests"]["result"]
    assert "tests.test_backprop" in tests["failing"] and tests["errors"] >= 1
    # ... and the other modules' cuda tests were collected and run (skipped here: no GPU)
    assert tests["skipped"] > len(tests["skipped_needing_hydra"]) + 5, tests


def test_a_stage_past_its_timeout_is_killed_and_the_budget_is_kept(tmp_path):
    out = tmp_path / "out"
    args = ["--dry-run", "--only", "epoch,step", "--timeout", "step=0.5", "--budget", "10.3"]
    proc = run_check(
        [sys.executable, "benchmarks/gpu_check.py", str(out), *args], dict(os.environ), timeout=120
    )
    assert proc.returncode == 1
    s = stages(out, proc)
    assert list(s) == ["step", "epoch"]  # priority order, whatever the order asked
    assert s["step"]["status"] == "timeout" and s["step"]["timeout_s"] == 0.5
    assert s["epoch"]["status"] == "skipped" and "time budget" in s["epoch"]["error"]
    assert "killed" in (out / "gpu_check.log").read_text()
    assert proc.stdout.rstrip().splitlines()[-1].startswith("total ")


def event(name, device=DeviceType.CPU, children=()):
    return SimpleNamespace(name=name, device_type=device, cpu_children=list(children))


def test_kernel_counts_from_cuda_profiler_events():
    """What torch.profiler reports for CUDA steps: device kernels, copies, fills; host launches and
    syncs; aten ops counted once at the innermost op that computes (views and allocations never)."""
    cuda = DeviceType.CUDA
    addmm = event("aten::addmm", children=[event("aten::as_strided"), event("aten::resolve_conj")])
    linear = event("aten::linear", children=[event("aten::t"), addmm])
    zero_ = event("aten::zero_", children=[event("aten::fill_")])
    zeros = event("aten::zeros", children=[event("aten::empty"), zero_])
    item = event("aten::item", children=[event("aten::_local_scalar_dense")])

    def flat(e):
        return [e] + [d for c in e.cpu_children for d in flat(c)]

    events = flat(linear) + flat(zeros) + flat(item)  # the profiler lists every op, nested ones too
    events += [event("sm90_xmma_gemm_f32f32", cuda), event("Memcpy DtoH (Device -> Pageable)", cuda)]
    events += [event("void at::native::vectorized_elementwise_kernel", cuda), event("Memset (Device)", cuda)]
    events += [event("cudaLaunchKernel"), event("cuLaunchKernel"), event("cudaMemcpyAsync")]
    events += [event("cudaStreamSynchronize"), event("cudaDeviceSynchronize")]
    counts = gpu_check.count_events(events, steps=1, cuda=True)
    assert counts == {
        "ops": 3.0,  # addmm, fill_, _local_scalar_dense
        "items": 1.0,
        "kernels": 2.0,  # the gemm and the elementwise kernel
        "memcpy": 1.0,
        "memset": 1.0,
        "launches": 2.0,
        "syncs": 1.0,  # the window's own cudaDeviceSynchronize is not the step's
    }
    assert gpu_check.count_events(events, steps=2, cuda=False) == {"ops": 1.5, "items": 0.5, "syncs": 0.5}


def test_the_tables_of_a_gpu_run(tmp_path):
    """GPU-shaped results (as the stages emit them on CUDA), a failed stage, a timed-out stage with
    partial results and a skipped one: the tables come out, the stage table last."""
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite><testcase classname="tests.test_cuda" name="test_ok"/>'
        '<testcase classname="tests.test_cuda" name="test_bad"><failure message="boom"/></testcase>'
        '<testcase classname="" name="tests.test_app"><skipped message="collection skipped">'
        "('tests/test_app.py', 14, \"Skipped: could not import 'hydra'\")</skipped></testcase>"
        "</testsuite></testsuites>"
    )
    tests = gpu_check.read_junit(junit, tmp_path / "missing.log")
    assert tests == {
        "passed": 1,
        "failed": 1,
        "errors": 0,
        "skipped": 1,
        "failing": ["tests.test_cuda::test_bad"],
        "skipped_needing_hydra": ["tests.test_app"],
    }
    paths = ("torch nn.Linear", "lecturenn autograd", "lecturenn manual")
    step = {
        "sizes": [64, 100, 10],
        "batch": 64,
        "matmul": "fp32",
        "ms_per_step": dict(zip(paths, (0.1, 0.3, 0.35))),
        "ratio": dict(zip(paths, (1.0, 3.0, 3.5))),
        "manual_vs_autograd": 1.17,
    }
    kernel_row = {
        "sizes": [64, 100, 10],
        "batch": 64,
        "ops": 40.0,
        "items": 1.0,
        "kernels": 44.0,
        "memcpy": 1.0,
    }
    kernel_row.update(memset=4.0, launches=44.0, syncs=1.0, peak_mib=12.5, peak_added_mib=0.3)
    summary = {
        "dry_run": False,
        "budget_s": 400.0,
        "wall_s": 401.2,
        "files": list(gpu_check.OUT_FILES),
        "stages": [
            {
                "stage": "env",
                "status": "ok",
                "seconds": 4.0,
                "result": {
                    "torch": "2.11.0",
                    "torch_cuda": "13.0",
                    "gpu_name": "NVIDIA H200",
                    "hydra": "missing",
                },
            },
            {
                "stage": "cuda_tests",
                "status": "failed",
                "seconds": 50.0,
                "result": tests,
                "error": "pytest exit 1",
            },
            {"stage": "step", "status": "ok", "seconds": 20.0, "result": {"runs": [step]}},
            {
                "stage": "kernels",
                "status": "ok",
                "seconds": 9.0,
                "result": {
                    "rows": [
                        {"path": "nn.Linear + SGD", **kernel_row, "kernels": 15.0},
                        {"path": "app bf16-mixed", **kernel_row, "steps": 32},
                        {"path": "app 16-mixed", "sizes": [64, 100, 10], "batch": 64, "error": "refused"},
                    ]
                },
            },
            {
                "stage": "precision",
                "status": "timeout",
                "seconds": 150.0,
                "error": "timed out",
                "result": {
                    "by_precision": gpu_check.summarize_precision(
                        [
                            {"precision": "fp32", "seed": 0, "acc": 0.97, "fit_s": 5.0},
                            {"precision": "tf32", "seed": 0, "acc": 0.96, "fit_s": 4.0},
                            {"precision": "bf16-mixed", "seed": 0, "skipped": "no bf16 on this GPU"},
                        ]
                    )
                },
            },
            {"stage": "epoch", "status": "skipped", "seconds": 0.0, "error": "time budget spent (0 s left)"},
        ],
    }
    text = gpu_check.format_summary(summary)
    lines = text.splitlines()
    assert lines[-1] == f"total 401.2 s of a 400 s budget; files: {', '.join(gpu_check.OUT_FILES)}"
    table = lines[lines.index("gpu_check summary (GPU)") :]
    assert [line.split()[:2] for line in table[2:-1]] == [
        ["env", "ok"],
        ["cuda_tests", "failed"],
        ["step", "ok"],
        ["kernels", "ok"],
        ["precision", "timeout"],
        ["epoch", "skipped"],
    ]
    assert "NVIDIA H200" in table[2] and "failing: tests.test_cuda::test_bad" in table[3]
    assert "manual 3.50x" in table[4] and "nn.Linear 15, app bf16-mixed 44, app 16-mixed -" in table[5]
    assert "fp32 0.9700, tf32 0.9600, bf16-mixed -" in table[6] and "[time budget spent" in table[7]
    assert any(line.startswith("app bf16-mixed") and " 44.0 " in line for line in lines)
    assert any(line.startswith("tf32 ") and "-0.0100" in line for line in lines)
    assert any(line.startswith("bf16-mixed ") and "no bf16 on this GPU" in line for line in lines)


def test_the_graph_table_of_a_gpu_run_with_a_failed_compile():
    """The graph stage's GPU-shaped result (issue 13 §4): speed-ups over nn.Linear per path, the
    compile error as text, the headline in the stage table."""
    paths = bench_graph.PATHS
    rows = [
        {"path": p, "us_per_step": us, "steps_per_s": 1e6 / us, "speedup": 300 / us}
        for p, us in zip(paths[:4], (300.0, 900.0, 400.0, 80.0))
    ]
    rows.append({"path": paths[4], "error": "BackendCompilerFailed: ThetaCost is not traceable"})
    result = {"sizes": [64, 100, 10], "batch": 64, "rows": rows, "bitwise_equal": True}
    result.update(bitwise_steps=100, graph_vs_engine_eager=5.0)
    summary = {"dry_run": False, "budget_s": 400, "files": ["summary.json"], "wall_s": 30.0}
    summary["stages"] = [{"stage": "graph", "status": "ok", "seconds": 20.0, "result": result}]
    text = gpu_check.format_summary(summary)
    assert "engine graph            80.0     12500      3.75" in text
    assert "manual compiled            -         -         -  BackendCompilerFailed: ThetaCost" in text
    assert "64-100-10 b64: captured 3.75x, compiled -x nn.Linear; bitwise = eager: True" in text
    assert text.splitlines()[-1].startswith("total ")


def test_a_stage_mark_read_before_it_is_whole_is_waited_for(tmp_path):
    # a newcomer's dry run once crashed with IndexError: the orchestrator read a worker's .done mark
    # while it was still empty; marks are now written whole (rename) and an empty one is waited for
    import threading

    done = tmp_path / "step.done"
    done.write_text("")  # what a reader could see in the middle of a plain write_text
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        threading.Timer(0.3, gpu_check.write_whole, (done, "ok 0.1")).start()
        assert gpu_check.Run.wait_for(worker, done, time.perf_counter() + 20) == "ok"
    finally:
        worker.kill()
        worker.wait()
    done.write_text("")
    crashed = subprocess.Popen([sys.executable, "-c", "pass"])  # exits without a whole mark
    crashed.wait()
    assert gpu_check.Run.wait_for(crashed, done, time.perf_counter() + 20) == "failed"
