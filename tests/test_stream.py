"""Streaming DataModules: .npy / Parquet files read in blocks, split, standardised and served in
bounded memory. Every DataError case matches its one-line message.
"""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("hydra")  # the Hydra app: skipped where hydra-core is missing (a bare GPU box)
pytest.importorskip("omegaconf")

from conftest import module_for
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from lecturenn.data import DataError, DataInfo, NpyStreamDataModule, ParquetStreamDataModule
from lecturenn.training.plots import PlotCallback

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["++trainer.enable_progress_bar=false", "callbacks.progress_bar=null"]


def linear_data(n=20_000, d=32, classes=3, seed=0):
    """X (n, d) float32 (not centred) and class ids from a fixed random linear rule."""
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * rng.uniform(0.5, 3, d) + rng.uniform(-2, 2, d)).astype(np.float32)
    y = (X @ rng.standard_normal((d, classes))).argmax(axis=1)
    return X, y


def save_npy(tmp_path, X, y, name="X.npy"):
    np.save(tmp_path / name, X)
    np.save(tmp_path / "y.npy", y)
    return str(tmp_path / name), str(tmp_path / "y.npy")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The 20k x 32 set as X.npy / y.npy."""
    path = tmp_path_factory.mktemp("stream")
    X, y = linear_data()
    return SimpleNamespace(X=X, y=y, dir=path, npy=save_npy(path, X, y))


@pytest.fixture(scope="module")
def parquet(files):
    """The same set as Parquet files with row groups of 256 and of 1024 rows (columns x0.., y)."""
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(files.X, columns=[f"x{j}" for j in range(files.X.shape[1])]).assign(y=files.y)
    for rows in (256, 1024):
        frame.to_parquet(files.dir / f"g{rows}.parquet", index=False, row_group_size=rows)
    return files


def npy_module(files, **kw):
    return NpyStreamDataModule(*files.npy, **{"block_rows": 256, "batch_size": 128, **kw})


def parquet_module(files, name, **kw):
    path = str(files.dir / name)
    return ParquetStreamDataModule(path, "y", **{"block_rows": 256, "batch_size": 128, **kw})


def rows_of(dm, split):
    return np.concatenate([np.arange(a, b) for a, b in dm.row_ranges(split)])


def fake_trainer(epoch=0, rank=0, world=1):
    return SimpleNamespace(
        current_epoch=epoch,
        global_rank=rank,
        world_size=world,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )


def epoch_batches(dm, epoch=0, split="train", rank=0, world=1):
    dm.trainer = fake_trainer(epoch, rank, world)
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
    return list(loader), len(loader)


# ---- (a) it trains -----------------------------------------------------------------------------
def test_trains_to_good_accuracy_through_lightning(files, tmp_path):
    dm = npy_module(files, batch_size=256)
    dm.setup("fit")
    info = dm.info
    model = module_for(
        info,
        hidden_sizes=[16],
        optimizer=partial(torch.optim.Adam, lr=0.01),
    )
    plots = PlotCallback(out_dir=str(tmp_path / "plots"))
    trainer = L.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[plots],
        default_root_dir=tmp_path,
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule=dm)
        (result,) = trainer.test(model, datamodule=dm, verbose=False)
    assert not [str(w.message) for w in seen if "could not write" in str(w.message)]  # no plot failed
    assert info.task == "multiclass" and info.classes == ["0", "1", "2"]
    assert model.n_train == info.n_train == dm.split_sizes()["train"]
    loader = dm.train_dataloader()  # batch groups, as the module asked for
    assert loader.group_size == model.batch_group_size == model.steps_per_execution == 32
    assert trainer.global_step == 4 * loader.num_batches
    assert result["test/acc"] > 0.93, result
    names = {p.name for p in plots.written}
    assert "confusion.png" in names and "boundary.png" not in names  # no raw_splits: boundary skipped


# ---- (b) standardisation and split -------------------------------------------------------------
def test_standardisation_equals_numpy_on_the_train_rows(files):
    dm = npy_module(files)
    train = files.X[rows_of(dm, "train")].astype(np.float64)
    np.testing.assert_allclose(dm.info.x_mean, train.mean(axis=0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(dm.info.x_std, train.std(axis=0), rtol=0, atol=1e-10)
    assert dm.info.n_train == len(train)


def test_regression_target_statistics_and_inverse_transform(tmp_path):
    X, _ = linear_data(4000, 5)
    y = X @ np.arange(5.0) + 100.0  # a regression target far from 0
    dm = NpyStreamDataModule(*save_npy(tmp_path, X, y), block_rows=100, batch_size=64, dtype="float64")
    assert dm.info.task == "regression" and dm.info.target_names == ["y"]
    train_y = y[rows_of(dm, "train")]
    np.testing.assert_allclose(dm.info.y_mean, [train_y.mean()], rtol=0, atol=1e-10)
    np.testing.assert_allclose(dm.info.y_std, [train_y.std()], rtol=0, atol=1e-10)
    (batches, _) = epoch_batches(dm, split="val")
    Y = torch.cat([b[1] for b in batches])
    np.testing.assert_allclose(dm.inverse_transform_y(Y)[:, 0].numpy(), y[rows_of(dm, "val")], atol=1e-9)


def test_split_is_disjoint_covering_and_seeded(files):
    a, b, other = npy_module(files), npy_module(files), npy_module(files, seed=1)
    parts = [rows_of(a, s) for s in ("train", "val", "test")]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(files.X)))  # disjoint, covering
    sizes = a.split_sizes()
    assert [len(p) for p in parts] == [sizes["train"], sizes["val"], sizes["test"]]
    assert abs(sizes["test"] / len(files.X) - 0.2) < 0.02 and abs(sizes["val"] / len(files.X) - 0.1) < 0.02
    for s in ("train", "val", "test"):
        assert a.row_ranges(s) == b.row_ranges(s)
    assert a.row_ranges("test") != other.row_ranges("test")
    assert all(start % 256 == 0 for start, _ in a.row_ranges("val"))


# ---- (c) bounded memory ------------------------------------------------------------------------
MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    from lecturenn.data import NpyStreamDataModule

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

    dm = NpyStreamDataModule(sys.argv[1], sys.argv[2], batch_size=1024)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        base, peak = status("VmRSS"), lambda: status("VmHWM")
    except OSError:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    dm.setup()
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    rows = sum(len(X) for X, _ in dm.train_dataloader())
    epoch_s = time.perf_counter() - start
    print(json.dumps({"rows": rows, "n_train": dm.info.n_train, "setup_s": setup_s, "epoch_s": epoch_s,
                      "peak_increase": peak() - base}))
    """
)


def write_big_npy(path, n, d, chunk=100_000):
    """X (n, d) float32 written chunk by chunk (the test itself stays small) and int8 labels."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal(d)
    y = np.empty(n, dtype=np.int8)
    with open(path / "X.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, d)})
        for start in range(0, n, chunk):
            X = rng.standard_normal((min(chunk, n - start), d), dtype=np.float32)
            y[start : start + len(X)] = X @ w > 0
            f.write(X.tobytes())
    np.save(path / "y.npy", y)
    return path / "X.npy", path / "y.npy"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_one_epoch_over_a_400_mb_file_stays_in_bounded_memory(tmp_path):
    X_path, y_path = write_big_npy(tmp_path, n=3_200_000, d=32)
    size = X_path.stat().st_size
    assert size > 400e6
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(X_path), str(y_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rows"] == out["n_train"] > 2_000_000
    assert out["peak_increase"] < 150e6, out  # the file is 410 MB (its float64 copy 820 MB)
    print(f"\n400 MB .npy: {out}")


# ---- (d) Parquet = the same data as .npy -------------------------------------------------------
def test_parquet_gives_the_same_statistics_and_batches_as_npy(parquet):
    npy, pqt = npy_module(parquet), parquet_module(parquet, "g256.parquet")
    assert pqt.info == npy.info
    for s in ("train", "val", "test"):
        assert pqt.row_ranges(s) == npy.row_ranges(s)
    for epoch, split in [(0, "train"), (1, "train"), (0, "val")]:
        (a, _), (b, _) = epoch_batches(npy, epoch, split), epoch_batches(pqt, epoch, split)
        assert len(a) == len(b)
        assert all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))


def test_parquet_with_larger_row_groups_same_split_and_rows(parquet):
    npy, pqt = npy_module(parquet), parquet_module(parquet, "g1024.parquet")
    np.testing.assert_allclose(pqt.info.x_mean, npy.info.x_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pqt.info.x_std, npy.info.x_std, rtol=0, atol=1e-12)
    assert pqt.row_ranges("train") == npy.row_ranges("train")  # 1024-row groups hold four 256-row blocks
    (a, _), (b, _) = epoch_batches(npy), epoch_batches(pqt)
    rows = [np.unique(torch.cat([x for x, _ in bs]).numpy(), axis=0) for bs in (a, b)]
    assert len(rows[0]) == npy.info.n_train and np.array_equal(*rows)  # the same rows, in another order


def test_parquet_string_labels_and_default_features(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(
        {
            "a": np.arange(600.0),
            "note": ["n"] * 600,  # not numeric: left out by default
            "b": np.arange(600) % 7,
            "label": np.where(np.arange(600) % 3, "yes", "no"),
        }
    )
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=100)
    dm = ParquetStreamDataModule(str(tmp_path / "t.parquet"), "label", block_rows=50, batch_size=32)
    assert dm.info.task == "binary" and dm.info.classes == ["no", "yes"]
    assert dm.info.feature_names == ["a", "b"]
    (batches, n) = epoch_batches(dm, split="test")
    assert n == len(batches) and batches[0][1].shape == (32, 1) and batches[0][1].dtype == torch.float32


# ---- (e) bad input: one clear line each ----------------------------------------------------------
def _bad_npy(tmp_path, case):
    X, y = linear_data(1000, 4)
    if case == "1-d":
        X = X[:, 0]
    elif case == "strings":
        X = X.astype(str)
    elif case == "mismatch":
        y = y[:-1]
    elif case == "nan":
        X[713, 2] = np.nan
    elif case == "inf-target":
        y = y.astype(float)
        y[5] = np.inf
    elif case == "fortran":
        X = np.asfortranarray(X)
    paths = save_npy(tmp_path, X, y)
    if case == "not-npy":
        Path(paths[0]).write_text("a,b\n1,2\n")
    return paths


@pytest.mark.parametrize(
    "case,message",
    [
        ("1-d", r"X\.npy: features must have shape \(n, d\); got \(1000,\)"),
        ("strings", r"X\.npy: features must be numeric; got dtype <U"),
        ("mismatch", r"X\.npy has 1000 rows but y\.npy has 999"),
        ("nan", r"X\.npy: feature column 'x2' has NaN/inf in row 713"),
        ("inf-target", r"y\.npy: target column 'y' has NaN/inf in row 5"),
        ("fortran", r"Fortran \(column\) order"),
        ("not-npy", r"cannot read X\.npy as \.npy"),
    ],
)
def test_bad_npy_files(tmp_path, case, message):
    dm = NpyStreamDataModule(*_bad_npy(tmp_path, case), block_rows=50)
    with pytest.raises(DataError, match=message) as err:
        dm.setup()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"features": "missing.npy"}, DataError, "features file not found: .*missing.npy"),
        ({"val_fraction": 0.0}, ValueError, "val_fraction must be in"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, ValueError, "val_fraction \\+ test_fraction"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
        ({"batch_size": None}, ValueError, "batch_size must be a positive integer"),
        ({"block_rows": 500}, DataError, "only 2 block\\(s\\) of block_rows=500"),
        ({"task": "binary"}, DataError, "task 'binary' needs exactly 2 classes; target 'y' has 3"),
        ({"task": "multilabel"}, DataError, "multilabel targets must be 0/1"),
        ({"task": "clustering"}, ValueError, "task must be 'auto' or one of"),
        ({"dtype": "int32"}, ValueError, "dtype must name a torch floating dtype"),
        ({"image_shape": [3, 3]}, ValueError, "image_shape \\[3, 3\\] does not hold 4 features"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, message):
    features, targets = save_npy(tmp_path, *linear_data(1000, 4))
    args = {"features": features, "targets": targets, "block_rows": 50, **kwargs}
    with pytest.raises(error, match=message) as err:
        NpyStreamDataModule(**args).setup()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "target,features,message",
    [
        ("lable", None, "target column 'lable' not found in t.parquet; did you mean 'label'"),
        ("label", ["a", "nope"], "feature column 'nope' not found"),
        ("label", ["a", "note"], "feature column 'note' of t.parquet is not numeric"),
        ("label", ["a", "label"], "column 'label' is both a feature and a target"),
        ("gap", None, "t.parquet: target column 'gap' has a missing value in row 150"),
    ],
)
def test_bad_parquet(tmp_path, target, features, message):
    pytest.importorskip("pyarrow")
    gap = np.where(np.arange(300) == 150, None, "v")
    frame = pd.DataFrame(
        {"a": np.arange(300.0), "note": ["x"] * 300, "label": np.arange(300) % 2, "gap": gap}
    )
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=100)
    with pytest.raises(DataError, match=message) as err:
        ParquetStreamDataModule(str(tmp_path / "t.parquet"), target, features, block_rows=25).setup()
    assert "\n" not in str(err.value)


def test_string_labels_cannot_be_regressed(tmp_path):
    X, y = linear_data(1000, 4)
    paths = save_npy(tmp_path, X, np.array(["a", "b", "c"])[y])
    assert NpyStreamDataModule(*paths, block_rows=50).info.classes == ["a", "b", "c"]
    with pytest.raises(DataError, match="holds labels, not numbers, but task is 'regression'"):
        NpyStreamDataModule(*paths, block_rows=50, task="regression").setup()


# ---- (f) the Hydra app -----------------------------------------------------------------------------
def make_cfg(tmp_path, overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    return cfg


@pytest.mark.parametrize("kind", ["npy", "parquet"])
def test_app_trains_on_streamed_data(tmp_path, kind):
    sys.path.insert(0, str(ROOT / "scripts"))
    from train import train

    X, y = linear_data(3000, 6)
    if kind == "npy":
        features, targets = save_npy(tmp_path, X, y)
        data = [f"data.features={features}", f"data.targets={targets}"]
    else:
        pytest.importorskip("pyarrow")
        pd.DataFrame(X, columns=list("abcdef")).assign(label=y).to_parquet(
            tmp_path / "t.pq", row_group_size=500
        )
        data = [f"data.path={tmp_path / 't.pq'}", "data.target=label"]
    overrides = [f"data=stream/{kind}", *data, "data.block_rows=100", "trainer.max_epochs=2", *QUIET]
    metrics = train(make_cfg(tmp_path, overrides))
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)
    assert metrics["test/acc"] > 0.6 and metrics["epochs"] == 2


def test_cli_trains_on_npy_files(tmp_path, capsys):
    """The app's run on data=stream/npy in-process (train.train on the composed config: the CLI's code;
    test_app.py runs train.py as a process): its summary line and metrics.json."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from train import train

    features, targets = save_npy(tmp_path, *linear_data(2000, 4))
    overrides = [
        "data=stream/npy",
        f"data.features={features}",
        f"data.targets={targets}",
        "data.block_rows=100",
        "trainer.max_epochs=1",
        *QUIET,
    ]
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    try:
        train(make_cfg(tmp_path / "run", overrides))
    finally:  # threads: auto and matmul_precision are set for the process
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)
    assert (
        "data: multiclass, 4 features -> 3 outputs; train/val/test rows 1400/200/400"
        in capsys.readouterr().out
    )
    assert "test/acc" in json.loads((tmp_path / "run" / "metrics.json").read_text())


# ---- (g) determinism and resuming ----------------------------------------------------------------
def test_same_seed_same_batches_every_epoch_has_every_train_row_once(tmp_path):
    X, _ = linear_data(5000, 3)
    paths = save_npy(tmp_path, X, np.arange(5000.0))  # the target is the row number
    make = partial(NpyStreamDataModule, *paths, block_rows=64, batch_size=100, shuffle_buffer_rows=500)
    a, b = make(dtype="float64"), make(dtype="float64")
    orders = []
    for epoch in (0, 1):
        (ba, n), (bb, _) = epoch_batches(a, epoch), epoch_batches(b, epoch)
        assert n == len(ba) == len(bb) and all(len(x) == 100 for x, _ in ba[:-1])
        assert all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(ba, bb))
        rows = a.inverse_transform_y(torch.cat([y for _, y in ba]))[:, 0].round().long().numpy()
        assert np.array_equal(np.sort(rows), rows_of(a, "train"))  # each train row exactly once
        orders.append(rows)
    assert not np.array_equal(orders[0], orders[1])  # reshuffled every epoch
    (other, _) = epoch_batches(make(dtype="float64", seed=7))
    assert not torch.equal(other[0][0], epoch_batches(a)[0][0][0])


def test_val_batches_in_order_and_transform_matches_them(files):
    dm = npy_module(files)
    (batches, n) = epoch_batches(dm, split="val")
    assert n == len(batches)
    X = torch.cat([x for x, _ in batches])
    rows = rows_of(dm, "val")
    assert torch.allclose(dm.transform(files.X[rows]), X)
    assert torch.equal(torch.cat([y for _, y in batches]), torch.from_numpy(files.y[rows]))


def test_ddp_ranks_get_disjoint_blocks_and_equal_batch_counts(files):
    dm = npy_module(files)
    shards = [epoch_batches(dm, 3, rank=r, world=2) for r in (0, 1)]
    assert len(shards[0][0]) == len(shards[1][0]) == shards[0][1]
    seen = [{tuple(row) for b, _ in bs for row in b[:, :3].tolist()} for bs, _ in shards]
    assert not seen[0] & seen[1]
    assert len(seen[0]) + len(seen[1]) > 0.95 * dm.info.n_train


def test_resume_from_state_gives_the_same_info(files, tmp_path):
    first = npy_module(files)
    assert first.state_dict() == {}  # nothing to save before setup
    first.setup()
    state = first.state_dict()
    torch.save(state, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)  # plain types only (checkpoint-safe)
    restored = npy_module(files)
    restored.load_state_dict(state)
    assert restored.info == first.info and restored._source is None  # no data read for that
    rows = files.X[:5]
    assert torch.equal(restored.transform(rows), first.transform(rows))
    restored.setup()
    assert restored.info == first.info and DataInfo.from_dict(state["info"]) == first.info
    other = npy_module(files, seed=3)
    other.load_state_dict(state)
    with pytest.raises(DataError, match="split differently"):
        other.setup()
