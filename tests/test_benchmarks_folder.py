"""Issue 12 §7: scripts/ holds the user's entry points only; the benchmarks live in benchmarks/, and
nothing in the repository still names their old paths."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {
    "train.py",
    "eval.py",
    "predict.py",
    "app.py",
    "runs.py",
    "schema.py",
    "tuning.py",
    "gpu_check.sh",
}
BENCHMARKS = {"bench.py", "bench_estimator.py", "bench_scaling.py", "gpu_check.py"}
OLD = ("scripts/" + "bench", "scripts/" + "gpu_check.py")  # split: this file must not match itself
TEXT = {".py", ".md", ".sh", ".yaml", ".toml", ".txt", ".cfg", ".ini"}


def test_scripts_holds_the_entry_points_and_benchmarks_the_benchmarks():
    scripts = {p.name for p in (ROOT / "scripts").iterdir() if p.is_file()}
    assert scripts == ENTRY_POINTS
    assert BENCHMARKS <= {p.name for p in (ROOT / "benchmarks").iterdir()}


def test_gpu_check_sh_runs_the_benchmarks_copy():
    script = (ROOT / "scripts" / "gpu_check.sh").read_text()
    assert '"$ROOT/benchmarks/gpu_check.py"' in script


def test_no_file_names_an_old_path():
    skip = {".git", "outputs", "multirun", "lightning_logs", ".pytest_cache", ".ruff_cache", "__pycache__"}
    stale = []
    for path in ROOT.rglob("*"):
        if skip & set(path.relative_to(ROOT).parts) or not path.is_file() or path.suffix not in TEXT:
            continue
        text = path.read_text(errors="replace")
        stale += [f"{path.relative_to(ROOT)}: {old}" for old in OLD if old in text]
    assert not stale
