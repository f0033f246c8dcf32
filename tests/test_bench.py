"""benchmarks/bench.py runs in-process with tiny settings: every row present, finite, JSON written."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
from conftest import load_script

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
TINY = [
    "--sizes",
    "20",
    "16",
    "3",
    "--batch",
    "64",
    "--threads",
    "1",
    "--gemm-size",
    "128",
    "--busy-retries",
    "0",
]


@pytest.fixture(scope="module")
def bench():
    return load_script(BENCH, "lecturenn_bench_script")


def _finite_positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_epoch_mode_tiny(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    report = bench.main([*TINY, "--rows", "600", "--test-rows", "300", "--epochs", "1", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "GEMM" in printed and "torch.set_num_threads(1)" in printed

    rows = {r["key"]: r for r in report["rows"]}
    skipped = {s["key"] for s in report["skipped"]}
    default = set(bench.PATHS) - {"ln-app-graph"}  # the CUDA-graph row only with --device cuda (or asked for)
    expected = default - ({"sklearn"} if importlib.util.find_spec("sklearn") is None else set())
    assert expected <= set(rows) and set(rows) | skipped == default
    assert rows["hand"]["ratio"] == pytest.approx(1.0)
    for key, r in rows.items():
        assert r["path"] == bench.PATHS[key] and r["path"] in printed
        for name in ("s_per_epoch", "samples_per_s", "gflops", "pct_gemm_peak", "ratio"):
            assert _finite_positive(r[name]), (key, name, r[name])
        assert 0.0 <= r["test_acc"] <= 1.0, (key, r["test_acc"])
        assert r["peak_added_mib"] is None or r["peak_added_mib"] >= 0
        assert r["others_cpu_pct"] is None or 0 <= r["others_cpu_pct"] <= 100
        assert r["attempts"] == 1
    for key in ("lightning", "ln-app"):
        assert rows[key]["epochs_run"] == 1
    if "sklearn" in rows:
        assert rows["sklearn"]["same_init"]
    # same initial Θ and the same batches: the randperm rows (and the two DataLoader rows) agree
    for key in ("theta-cat", "ln-manual", "ln-autograd"):
        assert rows[key]["test_acc"] == pytest.approx(rows["hand"]["test_acc"], abs=0.02), key
    assert rows["lightning"]["test_acc"] == pytest.approx(rows["dataloader"]["test_acc"], abs=0.02)

    saved = json.loads(out.read_text())
    assert saved["mode"] == "epoch" and saved["header"]["gemm_gflops"] > 0
    assert [r["key"] for r in saved["rows"]] == [r["key"] for r in report["rows"]]


def test_epoch_mode_paths_subset_keeps_baseline(bench):
    report = bench.main(
        [*TINY, "--rows", "200", "--test-rows", "50", "--epochs", "1", "--paths", "ln-manual"]
    )
    assert [r["key"] for r in report["rows"]] == ["hand", "ln-manual"]


def test_same_initial_weights_give_same_first_step(bench):
    """The hand-written, ones-column and lecturenn models start from the same Θ (same outputs)."""
    import torch

    sizes = [20, 16, 3]
    ref = bench.ln.ThetaMLP(sizes, "sigmoid", "softmax", generator=0)
    init = [t.detach().clone() for t in ref.thetas]
    X = torch.randn(5, 20)
    seq = bench.build_sequential(sizes, init, torch.device("cpu"), torch.float32)
    cat = bench.ThetaCat(init)
    with torch.no_grad():
        torch.testing.assert_close(seq(X).softmax(1), ref(X))
        torch.testing.assert_close(cat(X).softmax(1), ref(X))


def test_step_mode_tiny(bench, tmp_path):
    out = tmp_path / "step.json"
    report = bench.main([*TINY, "--mode", "step", "--steps", "3", "--rounds", "2", "--json", str(out)])
    names = [r["path"] for r in report["rows"]]
    assert names == [
        "torch nn.Linear",
        "lecturenn autograd",
        "lecturenn manual",
        "autograd, no checks",
        "manual, no checks",
    ]
    assert report["manual_vs_autograd_no_checks"] > 0
    for r in report["rows"]:
        assert _finite_positive(r["ms_per_step"]) and _finite_positive(r["ratio"])
    assert json.loads(out.read_text())["mode"] == "step"


def test_the_cuda_graph_app_row_trains_the_app_rows_network(bench):
    """ln-app-graph (model.cuda_graph=true; on the CPU the step graph's record stand-in) replays the
    app's step: the same batches, the same Θ, so the same test accuracy as ln-app."""
    report = bench.main(
        [*TINY, "--rows", "300", "--test-rows", "200", "--epochs", "1", "--paths", "ln-app,ln-app-graph"]
    )
    rows = {r["key"]: r for r in report["rows"]}
    assert set(rows) == {"hand", "ln-app", "ln-app-graph"}
    assert rows["ln-app-graph"]["test_acc"] == rows["ln-app"]["test_acc"]
    assert _finite_positive(rows["ln-app-graph"]["ratio"])


def test_bad_paths_rejected(bench):
    with pytest.raises(SystemExit):
        bench.main(["--paths", "hand,nope"])


def test_epoch_mode_rounds_report_medians(bench):
    report = bench.main(
        [*TINY, "--rows", "200", "--test-rows", "50", "--epochs", "1", "--rounds", "3", "--paths", "ln-app"]
    )
    rows = {r["key"]: r for r in report["rows"]}
    app = rows["ln-app"]
    assert len(app["s_per_epoch_rounds"]) == 3 and len(app["ratio_rounds"]) == 3
    assert app["s_per_epoch"] == sorted(app["s_per_epoch_rounds"])[1]
    assert app["ratio"] == sorted(app["ratio_rounds"])[1]
    assert rows["hand"]["ratio_rounds"] == [1.0, 1.0, 1.0]


SCALING = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scaling.py"


def test_scaling_script_fits_a_line_through_every_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SCALING.parent))  # it imports benchmarks/bench.py, as a script would
    scaling = load_script(SCALING, "lecturenn_bench_scaling")
    out = tmp_path / "scaling.json"
    report = scaling.main(
        [
            "--rows",
            "2000",
            "4000",
            "--sizes",
            "12",
            "8",
            "3",
            "--batch",
            "64",
            "--dir",
            str(tmp_path),
            "--json",
            str(out),
        ]
    )
    assert {r["path"] for r in report["results"]} == set(scaling.PATHS)
    for r in report["results"]:
        assert _finite_positive(r["s_per_epoch"]) and _finite_positive(r["us_per_row"])
    stream_rows = [r["rows"] for r in report["results"] if r["path"] == "stream"]
    assert all(0 < n <= m for n, m in zip(stream_rows, [2000, 4000]))  # the train split of the file
    for fit in report["fits"].values():
        assert math.isfinite(fit["exponent"]) and _finite_positive(fit["us_per_row_marginal"] + 1e9)
    assert not list(tmp_path.glob("**/*.npy"))  # the streamed files are removed
    assert json.loads(out.read_text())["fits"].keys() == report["fits"].keys()
