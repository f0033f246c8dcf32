"""Streaming for the GPU (issue 13 §3): the next shuffle buffer prefetched in a background thread,
pinned buffers and non-blocking copies on CUDA — the same batches, bitwise, in the same order."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lecturenn.data import DataError, NpyStreamDataModule, ParquetStreamDataModule
from lecturenn.data.prefetch import Prefetched


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """6000 × 5 float32 rows as .npy (class labels) and Parquet (row groups of 700 rows)."""
    path = tmp_path_factory.mktemp("prefetch")
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((6000, 5)) * 3 + 1).astype(np.float32)
    y = (X @ rng.standard_normal((5, 3))).argmax(axis=1)
    np.save(path / "X.npy", X)
    np.save(path / "y.npy", y)
    np.save(path / "r.npy", X @ rng.standard_normal(5))  # a regression target
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(5)]).assign(y=y)
    frame.to_parquet(path / "t.parquet", index=False, row_group_size=700)
    return path


def module(files, kind="npy", **kw):
    kw = {"block_rows": 128, "batch_size": 100, "shuffle_buffer_rows": 500, **kw}
    if kind == "parquet":
        pytest.importorskip("pyarrow")
        dm = ParquetStreamDataModule(str(files / "t.parquet"), "y", **kw)
    else:
        dm = NpyStreamDataModule(
            str(files / "X.npy"), str(files / ("r.npy" if kind == "reg" else "y.npy")), **kw
        )
    dm.setup()
    return dm


def on(dm, device="cpu"):
    dm.trainer = SimpleNamespace(
        current_epoch=0,
        global_rank=0,
        world_size=1,
        strategy=SimpleNamespace(root_device=torch.device(device)),
    )
    return dm


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lecturenn-prefetch"]


def assert_same(a, b):
    assert len(a) == len(b) > 0
    for (x, y), (u, v) in zip(a, b):
        assert x.dtype == u.dtype and y.dtype == v.dtype and x.device == u.device
        assert torch.equal(x, u) and torch.equal(y, v)


@pytest.mark.parametrize("kind", ["npy", "parquet", "reg"])
@pytest.mark.parametrize(
    ("split", "epoch", "rank", "world"),
    [("train", 0, 0, 1), ("train", 3, 1, 2), ("val", 0, 0, 1), ("test", 0, 0, 1)],
)
def test_prefetch_gives_the_same_batches_in_the_same_order(files, kind, split, epoch, rank, world):
    plain, ahead = on(module(files, kind, prefetch=False)), on(module(files, kind, prefetch=True))
    assert not plain.prefetching() and ahead.prefetching()
    a = list(plain.stream(split, epoch, rank, world))
    b = list(ahead.stream(split, epoch, rank, world))
    assert_same(a, b)
    assert not prefetch_threads()  # the thread ended with the epoch


def test_prefetch_in_float64_and_through_the_dataloader(files):
    plain = on(module(files, dtype="float64", prefetch=False))
    ahead = on(module(files, dtype="float64", prefetch=True))
    assert_same(list(plain.train_dataloader()), list(ahead.train_dataloader()))
    assert_same(list(plain.val_dataloader()), list(ahead.val_dataloader()))


def test_an_epoch_cut_short_stops_the_reading_thread(files):
    dm = on(module(files, prefetch=True))
    full = list(on(module(files, prefetch=False)).stream("train", 0))
    assert_same(list(dm.stream("train", 0, limit=7)), full[:7])
    batches = dm.stream("train", 0)
    first = [next(batches) for _ in range(3)]  # the consumer stops (an exception, a break, ...)
    assert_same(first, full[:3])
    assert len(prefetch_threads()) == 1
    batches.close()
    assert not prefetch_threads()


def test_a_read_error_in_the_thread_reaches_the_consumer(files, tmp_path):
    X = np.load(files / "X.npy")
    np.save(tmp_path / "X.npy", X)
    dm = NpyStreamDataModule(
        str(tmp_path / "X.npy"), str(files / "y.npy"), block_rows=128, batch_size=100, prefetch=True
    )
    dm.setup()
    with open(tmp_path / "X.npy", "r+b") as f:  # the file shrinks after setup
        f.truncate(1000)
    with pytest.raises(DataError, match="could not read rows"):
        list(on(dm).stream("train", 0))
    assert not prefetch_threads()


def test_prefetch_is_on_for_cuda_only_unless_chosen(files):
    dm = module(files)
    assert dm.prefetch is None
    assert not dm.prefetching(torch.device("cpu")) and dm.prefetching(torch.device("cuda"))
    assert not module(files, prefetch=False).prefetching(torch.device("cuda"))
    assert module(files, prefetch=True).prefetching(torch.device("cpu"))
    with pytest.raises(TypeError, match="prefetch must be true, false or null"):
        NpyStreamDataModule(str(files / "X.npy"), str(files / "y.npy"), prefetch="yes")


# -- Prefetched itself -----------------------------------------------------------------------------
def test_prefetched_reads_at_most_one_item_ahead_and_passes_errors_on():
    made = []

    def source():
        for k in range(5):
            made.append(k)
            yield k
        raise ValueError("bad row 5")

    items = Prefetched(source())
    assert next(items) == 0
    time.sleep(0.3)
    assert made == [0, 1]  # item 1 is ready; item 2 waits until the consumer lets go of item 0
    assert next(items) == 1
    time.sleep(0.3)
    assert made == [0, 1, 2]
    assert [next(items) for _ in range(3)] == [2, 3, 4]
    with pytest.raises(ValueError, match="bad row 5"):
        next(items)
    with pytest.raises(StopIteration):
        next(items)
    assert not prefetch_threads()


def test_closing_prefetched_closes_the_source():
    closed = []

    def source():
        try:
            yield from range(100)
        finally:
            closed.append(True)

    items = Prefetched(source())
    assert next(items) == 0
    items.close()
    assert closed == [True] and not prefetch_threads()


# -- CUDA --------------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("prefetch", [None, False])
def test_cuda_batches_come_from_pinned_buffers_without_host_syncs_and_equal_the_cpus(files, prefetch):
    cpu = list(on(module(files, prefetch=False)).stream("train", 2))
    dm = on(module(files, prefetch=prefetch), "cuda")
    pinned = []
    make = dm._host_buffers

    def spy(*args, **kwargs):
        for X, Y, order in make(*args, **kwargs):
            pinned.append(X.is_pinned() and Y.is_pinned() and order.is_pinned())
            yield X, Y, order

    dm._host_buffers = spy
    batches = dm.stream("train", 2)
    first = next(batches)  # pinned blocks and the CUDA context are set up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # a blocking (pageable) copy would raise here
    try:
        gpu = [first, *batches]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert pinned and all(pinned) and dm.prefetching() is (prefetch is None)
    assert all(x.is_cuda and y.is_cuda for x, y in gpu)
    assert_same(cpu, [(x.cpu(), y.cpu()) for x, y in gpu])
