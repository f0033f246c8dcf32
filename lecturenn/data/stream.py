"""``StreamDataModule``: train on a file larger than RAM (``.npy`` or Parquet), in bounded memory.

The rows are never all in memory. How they are cut, split and served:

* **blocks** — contiguous ranges of ``block_rows`` rows (a Parquet row group is cut into blocks;
  no block crosses a row group). The block is the granularity of the split.
* **split** — a seeded permutation of the block ids: the first ``max(1, round(test_fraction·B))``
  blocks are test, the next ``max(1, round(val_fraction·B))`` validation, the rest train (B
  blocks). Split sizes in rows are therefore multiples of ``block_rows``, up to the short blocks.
  Only per-block arrays are kept (a few bytes per block), never per-row indices.
* **setup** — one streaming pass in file order: NaN/inf check (the file and first bad row named),
  target summary (task, classes), the train-split standardisation, merged chunk by chunk in
  float64 without overflow for any finite numbers (:class:`~lecturenn.data.scaling.Moments`),
  and every column's min and max (:class:`~lecturenn.data.chunks.Extremes`), from which a
  column that would not fit ``dtype`` after standardisation (or raw, with ``standardize=False``)
  is refused before training, naming the file, column and row.
* **standardisation** — in ``dtype`` itself (fast, in place) when every value and statistic is
  well inside its range (:func:`~lecturenn.data.scaling.fits`), else in float64 and then cast.
* **training epoch** — a function of ``(seed, epoch)`` alone: the read units (.npy: blocks;
  Parquet: row groups) in a seeded order, the train blocks inside each in a seeded order; rows
  are gathered into a buffer of ``shuffle_buffer_rows`` rows, shuffled within it and cut into
  batches, all full but the epoch's last. Validation/test/predict: in file order, not shuffled.
  Under DDP rank r takes every world_size-th block of that order, and every rank stops after
  the number of batches all ranks are sure to have (:meth:`StreamDataModule.n_batches`).

Memory: about two copies of the shuffle buffer (``shuffle_buffer_rows`` × d numbers, by default
about 64 MiB of features) plus one block (.npy) or one decoded row group (Parquet: write files
with row groups of at most ~100k rows) — independent of the file's size.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from .base import ArrayDataModule
from .batches import BatchGroup, grouped, loader_settings
from .checks import raw_rows, to_dtype
from .chunks import Extremes, Moments, NpySource, ParquetSource, TargetScan, check_finite
from .errors import DataError
from .info import TASKS, DataInfo
from .scaling import fits, network_inputs, standardise
from .split import R2_ROWS, check_fractions

__all__ = ["NpyStreamDataModule", "ParquetStreamDataModule", "StreamBatches", "StreamDataModule"]

SPLITS = ("train", "val", "test")  # split codes 0, 1, 2 of the blocks


def _rng(seed: int, *key: int) -> np.random.Generator:
    """A numpy Generator that is a function of ``(seed, *key)`` alone."""
    return np.random.default_rng(np.random.SeedSequence(int(seed) % 2**63, spawn_key=key))


class StreamBatches:
    """Batches ``(X, Y)`` of one split, streamed from the file; one pass = one epoch.

    The epoch is ``epoch_fn()`` (e.g. ``trainer.current_epoch``) if given, else the number of
    earlier passes. ``group_size > 1`` yields :class:`~lecturenn.data.batches.BatchGroup` lists of
    that many consecutive batches (see :class:`~lecturenn.data.TensorBatches`). ``len()`` is the
    number of batches (or groups) per epoch (this rank's, under DDP).
    """

    def __init__(
        self,
        datamodule: StreamDataModule,
        split: str,
        rank: int = 0,
        world_size: int = 1,
        epoch_fn=None,
        group_size: int = 1,
    ):
        self.datamodule, self.split, self.rank, self.world_size = datamodule, split, rank, world_size
        self.epoch_fn, self._passes, self.group_size = epoch_fn, 0, int(group_size)
        self.num_batches = datamodule.n_batches(split, world_size)

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.group_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor] | BatchGroup]:
        epoch = self.epoch_fn() if self.epoch_fn is not None else self._passes
        self._passes += 1
        batches = self.datamodule.stream(self.split, int(epoch), self.rank, self.world_size, self.num_batches)
        return grouped(batches, self.group_size)

    def __repr__(self) -> str:
        return (
            f"StreamBatches({self.split}, batches={self.num_batches}, group_size={self.group_size}, "
            f"rank={self.rank}/{self.world_size})"
        )


class StreamDataModule(L.LightningDataModule):
    """Base of the streaming DataModules: subclasses implement :meth:`open_source`.

    Args:
        task: ``"auto"`` (the rule of :func:`~lecturenn.data.tables.infer_task`, from the streaming
            pass) or one of ``binary | multiclass | multilabel | regression``.
        batch_size: rows per batch (a positive integer: a full batch would not fit in memory).
        val_fraction, test_fraction: shares of the blocks (each in (0, 1), sum < 1).
        seed: seeds the block split and every epoch's order.
        standardize: standardise features (and regression targets) with train-split statistics.
        dtype: torch floating dtype name of X (and of float targets), e.g. ``"float32"``; a column
            it cannot hold is refused at setup (see the module docstring).
        block_rows: rows per block, the split granularity (see the module docstring).
        shuffle_buffer_rows: rows shuffled together while training (memory ∝ this × features);
            ``None``: about 64 MiB of features (e.g. 21 400 rows of 784 float32 numbers).
        image_shape: e.g. ``[28, 28]`` to draw the rows of Θ^(1) as images; ``None`` otherwise.

    Batches as :class:`ArrayDataModule`'s: X (b, d) of ``dtype``, standardised, on the trainer's
    device; Y int64 class ids (b,) for multiclass, else (b, K) of ``dtype``. There is no
    ``raw_splits`` (the splits are not in memory), so the plotting callback skips the boundary.
    """

    def __init__(
        self,
        task: str = "auto",
        batch_size: int = 256,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        standardize: bool = True,
        dtype: str = "float32",
        block_rows: int = 1024,
        shuffle_buffer_rows: int | None = None,
        image_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if task != "auto" and task not in TASKS:
            raise ValueError(f"task must be 'auto' or one of {', '.join(TASKS)}; got {task!r}")
        for name, value in (("batch_size", batch_size), ("block_rows", block_rows)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer for streamed data; got {value!r}")
        rows = shuffle_buffer_rows
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, numbers.Integral)):
            raise ValueError(f"shuffle_buffer_rows must be an integer or None; got {rows!r}")
        check_fractions(val_fraction, test_fraction)
        torch_dtype = getattr(torch, str(dtype), None)
        if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
            raise ValueError(f"dtype must name a torch floating dtype such as 'float32'; got {dtype!r}")
        self.task, self.batch_size, self.block_rows = task, int(batch_size), int(block_rows)
        self.shuffle_buffer_rows = None if rows is None else max(int(rows), self.batch_size)
        self._x_stats: tuple[Tensor, Tensor] | None = None  # x_mean, x_std as tensors of dtype
        self._fast: bool | None = None  # standardise the file's rows in dtype (see fits)
        self._extremes: tuple[Extremes, Extremes] | None = None  # features, targets: all rows
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.seed, self.standardize, self.dtype = int(seed), bool(standardize), torch_dtype
        self.image_shape = None if image_shape is None else [int(s) for s in image_shape]
        self._source: NpySource | ParquetSource | None = None
        self._info: DataInfo | None = None
        self._restored_split: dict[str, Any] | None = None
        self._labels: np.ndarray | None = None  # sorted raw class labels (binary/multiclass)

    def open_source(self) -> NpySource | ParquetSource:
        """The file(s) to stream (headers read and checked; no rows yet)."""
        raise NotImplementedError(f"{type(self).__name__} must implement open_source()")

    # ---- setup: blocks, split, one streaming pass ----------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Cut blocks, split them, and make the one streaming pass (once; idempotent)."""
        if self._source is not None:
            return
        source = self.open_source()
        if self.image_shape is not None and math.prod(self.image_shape) != len(source.feature_names):
            raise ValueError(
                f"image_shape {self.image_shape} does not hold {len(source.feature_names)} features"
            )
        if source.n_rows == 0:
            raise DataError(f"{source.name} has no rows")
        self._starts, self._stops, self._units = self._blocks(source.units(self.block_rows))
        self._split = self._assign(len(self._starts), source.n_rows)
        info = self._scan(source)
        restored = self._info
        if restored is not None:  # restored from a checkpoint before setup: keep its statistics
            self._check_restored(restored, self._restored_split, info, source.n_rows)
        else:
            self._info = info
        try:
            self._check_range(source)
        except DataError:  # a column the dtype cannot hold: leave no half-set-up state behind
            self._info = restored
            raise
        self._source = source

    def _blocks(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Units (U, 2) of ``[start, stop)`` → blocks: first row, one past the last, unit id; each (B,)."""
        sizes = units[:, 1] - units[:, 0]
        counts = -(-sizes // self.block_rows)  # blocks per unit
        unit = np.repeat(np.arange(len(units)), counts)
        k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # index in its unit
        starts = units[unit, 0] + k * self.block_rows
        return starts, np.minimum(starts + self.block_rows, units[unit, 1]), unit

    def _ranges(self, ids: np.ndarray | slice) -> Iterator[tuple[int, int]]:
        """The ``[start, stop)`` rows of blocks ``ids``, lazily (no Python list per block)."""
        return zip(map(int, self._starts[ids]), map(int, self._stops[ids]))

    def _assign(self, B: int, n: int) -> np.ndarray:
        """Split code (0 train, 1 val, 2 test) of each of the B blocks: int8 (B,)."""
        n_test, n_val = max(1, round(self.test_fraction * B)), max(1, round(self.val_fraction * B))
        if B - n_test - n_val < 1:
            raise DataError(
                f"{n} rows make only {B} block(s) of block_rows={self.block_rows}: too few for a "
                f"train/val/test split of the blocks (lower block_rows)"
            )
        perm = _rng(self.seed, 0).permutation(B)
        split = np.zeros(B, dtype=np.int8)
        split[perm[:n_test]], split[perm[n_test : n_test + n_val]] = 2, 1
        return split

    def _scan(self, source: NpySource | ParquetSource) -> DataInfo:
        """The streaming pass: checks, target summary and train moments → :class:`DataInfo`."""
        names, targets = source.feature_names, source.target_names
        x_moments, y_moments = Moments(len(names)), Moments(len(targets))
        x_ext, y_ext = Extremes(len(names)), Extremes(len(targets))
        scan = TargetScan(self.task, targets)
        for b, (X, Y) in enumerate(source.read(self._ranges(slice(None)))):
            first, numeric = int(self._starts[b]), Y.dtype.kind in "biuf"
            x_range = x_ext.add(X, first)  # NaN/inf anywhere shows in a column's min or max
            if not np.isfinite(x_range).all():
                check_finite(X.astype(np.float64), names, "feature", source.name, first)
            if numeric:
                y_range = y_ext.add(Y, first)
                if not np.isfinite(y_range).all():
                    check_finite(Y.astype(np.float64), targets, "target", source.target_file, first)
            scan.add(Y, train=self._split[b] == 0)
            if self._split[b] == 0:
                x_moments.add(X, *x_range)
                if numeric:
                    y_moments.add(Y, *y_range)
        task = scan.decide(source.n_rows)
        self._check_parts(source, task, scan.untrained(task))
        classes = scan.classes() if task in ("binary", "multiclass") else None
        self._labels = scan.values if classes is not None else None
        self._extremes, self._fast = (x_ext, y_ext), None
        x_mean = x_std = y_mean = y_std = None
        if self.standardize:
            x_mean, x_std = x_moments.mean_std()
            if task == "regression":
                y_mean, y_std = y_moments.mean_std()
        return DataInfo(
            task=task,
            n_features=len(names),
            n_outputs={"binary": 1, "multiclass": len(classes or [])}.get(task, len(targets)),
            feature_names=names,
            target_names=targets,
            classes=classes,
            x_mean=x_mean,
            x_std=x_std,
            y_mean=y_mean,
            y_std=y_std,
            image_shape=self.image_shape,
            raw_features=len(names),
            n_train=x_moments.n,
        )

    def _check_parts(self, source: NpySource | ParquetSource, task: str, untrained: str | None) -> None:
        """``DataError`` when the block split starves a part: a class (or a multilabel label) with
        no row in the training blocks, or a regression's val or test with fewer than 2 rows."""
        split = f"the split takes whole blocks of block_rows={self.block_rows} rows"
        if untrained is not None:
            raise DataError(
                f"{source.target_file}: {untrained} in the training split ({split}, so a file sorted "
                "by label can leave all of a class in val/test blocks); shuffle the file's rows, or "
                "lower block_rows"
            )
        rows = self._rows_per_split()
        if task == "regression" and min(rows["val"], rows["test"]) < 2:
            raise DataError(
                f"{source.name}: the split gives val {rows['val']} and test {rows['test']} row(s) "
                f"({split}); {R2_ROWS}: add rows, or change block_rows or val_fraction/test_fraction"
            )

    def _rows_per_split(self) -> dict[str, int]:
        sizes = self._stops - self._starts
        return {name: int(sizes[self._split == code].sum()) for code, name in enumerate(SPLITS)}

    def _check_range(self, source: NpySource | ParquetSource) -> None:
        """``DataError`` unless every row's features (and regression targets) fit ``dtype`` after
        standardisation with ``info``'s statistics (or raw, without; targets raw in any case, see
        :func:`~lecturenn.data.checks.to_dtype`): checked on each column's min and max over the
        whole file (standardisation is monotone, so those are its extremes)."""
        assert self._extremes is not None
        info = self.info
        checks = [(self._extremes[0], info.x_mean, info.x_std, info.feature_names, "feature", source.name)]
        if info.task == "regression":
            names, file = info.target_names, source.target_file
            checks.append((self._extremes[1], None, None, names, "target", file))  # predictions' units
            checks.append((self._extremes[1], info.y_mean, info.y_std, names, "target", file))
        can_drop = isinstance(source, ParquetSource)  # a .npy has no features=[...] to leave one out
        for ext, mean, std, names, what, file in checks:
            values, rows = ext.values()
            Z = standardise(values, mean, std)
            scaled = mean is not None and std is not None
            to_dtype(Z, self.dtype, names, what, values, rows, scaled, file, can_drop)

    def _split_key(self, n_rows: int) -> dict[str, Any]:
        """What fixes the split: a resumed run must use the same, or it would train on old val rows."""
        fractions = [self.val_fraction, self.test_fraction]
        return {"n_rows": n_rows, "block_rows": self.block_rows, "seed": self.seed, "fractions": fractions}

    def _check_restored(self, saved: DataInfo, split: dict | None, current: DataInfo, n_rows: int) -> None:
        ArrayDataModule._check_compatible(saved, current)
        if split is not None and split != self._split_key(n_rows):
            now = self._split_key(n_rows)
            raise DataError(f"the checkpoint's data was split differently: {split} vs now {now}")

    # ---- results of setup -----------------------------------------------------------------------
    @property
    def info(self) -> DataInfo:
        """The :class:`DataInfo` (runs :meth:`setup` if neither it nor :meth:`load_state_dict` ran)."""
        if self._info is None:
            self.setup()
        assert self._info is not None
        return self._info

    def row_ranges(self, split: str) -> list[tuple[int, int]]:
        """The rows of ``split`` ("train" | "val" | "test") as ``[start, stop)`` blocks in file order."""
        self.setup()
        ids = np.flatnonzero(self._split == SPLITS.index(split))
        return list(self._ranges(ids))

    def split_sizes(self) -> dict[str, int]:
        """Rows per split: ``{"train": n, "val": n, "test": n}``."""
        self.setup()
        return self._rows_per_split()

    def n_batches(self, split: str, world_size: int = 1) -> int:
        """Batches per epoch of ``split``; for train under DDP, what every rank is sure to have.

        With ``world_size`` ranks each takes every world_size-th block of the epoch's order, so
        a rank holds at least the ``T // world_size`` smallest of the T train blocks; every rank
        stops after that many rows' batches (the rest of its rows wait for another epoch).
        """
        sizes = self.split_sizes()
        if split != "train" or world_size == 1:
            return math.ceil(sizes[split] / self.batch_size)
        train = np.sort((self._stops - self._starts)[self._split == 0])
        if len(train) < world_size:
            raise DataError(
                f"{len(train)} train blocks cannot be shared by {world_size} processes (lower block_rows)"
            )
        return math.ceil(int(train[: len(train) // world_size].sum()) / self.batch_size)

    # ---- streaming batches ----------------------------------------------------------------------
    def _order(self, split: str, epoch: int, rank: int, world_size: int):
        """``(rng, block ids)`` of one pass: train in the epoch's seeded order (this rank's share),
        val/test in file order with ``rng=None``."""
        self.setup()
        ids = np.flatnonzero(self._split == SPLITS.index(split))
        if split != "train":
            return None, ids
        rng = _rng(self.seed, 1, epoch)
        units, inv = np.unique(self._units[ids], return_inverse=True)
        unit_pos = rng.permutation(len(units))  # the units' places in this epoch
        key = rng.random(len(ids))  # the blocks' order inside their unit
        order = ids[np.lexsort((key, unit_pos[inv]))]
        return rng, order[rank::world_size]

    def _buffers(self, ids: np.ndarray, rng: np.random.Generator | None) -> Iterator[tuple]:
        """Raw rows of blocks ``ids`` regrouped into fresh buffers ``(X, Y, order)`` of at least
        ``shuffle_buffer_rows`` rows: ``order`` lists the rows to serve — whole batches but the
        epoch's last — in a permutation by ``rng`` (``None``: all rows in order). The rows a
        buffer leaves over (< one batch) open the next one."""
        assert self._source is not None
        xs, ys, rows = [], [], 0
        for X, Y in self._source.read(self._ranges(ids)):
            xs.append(X)
            ys.append(Y)
            rows += len(X)
            if rows >= self.buffer_rows:
                X, Y = np.concatenate(xs), np.concatenate(ys)
                order = rng.permutation(rows) if rng is not None else np.arange(rows)
                keep = rows - rows % self.batch_size
                rest = order[keep:]
                xs, ys, rows = [X[rest]], [Y[rest]], len(rest)  # copies of < one batch
                yield X, Y, order[:keep]
        if rows:
            X, Y = np.concatenate(xs), np.concatenate(ys)
            yield X, Y, rng.permutation(rows) if rng is not None else None

    @property
    def buffer_rows(self) -> int:
        """Rows per shuffle buffer: ``shuffle_buffer_rows``, or by default about 64 MiB of features."""
        if self.shuffle_buffer_rows is not None:
            return self.shuffle_buffer_rows
        d = self.info.raw_features
        return max(self.batch_size, (64 << 20) // (4 * max(d, 1)))

    def stream(
        self, split: str, epoch: int = 0, rank: int = 0, world_size: int = 1, limit: int | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Generator of ``(X, Y)`` batches of ``split`` on the trainer's device (at most ``limit``).

        Each buffer is converted and standardised in place once, moved to the device whole, and
        its batches gathered there with ``index_select`` along its shuffled order (no shuffled
        copy of the buffer)."""
        rng, ids = self._order(split, epoch, rank, world_size)
        device, done, b = self._device(), 0, self.batch_size
        for X_raw, Y_raw, order in self._buffers(ids, rng):
            X = self._features(X_raw, inplace=True).to(device)
            Y = self._targets(Y_raw).to(device)
            del X_raw, Y_raw
            n = len(X) if order is None else len(order)
            if order is not None:
                order = torch.from_numpy(order).to(device)
            for start in range(0, n, b):
                if limit is not None and done >= limit:
                    return
                if order is None:
                    yield X[start : start + b], Y[start : start + b]
                else:
                    idx = order[start : start + b]
                    yield X.index_select(0, idx), Y.index_select(0, idx)
                done += 1
            del X, Y  # before the next buffer is read

    def _features(self, X_raw: np.ndarray, inplace: bool = False, fast: bool | None = None) -> Tensor:
        """Raw (n, d) numbers → standardised tensor (n, d) of ``dtype`` (CPU).

        Standardised in ``dtype`` with the float64 statistics rounded to it when that is safe for
        the file's rows (``fast``, default: decided once from the setup pass, see
        :func:`~lecturenn.data.scaling.fits`), ``X_raw`` then possibly overwritten if ``inplace``;
        otherwise in float64 (:func:`~lecturenn.data.scaling.standardise`) and cast.
        """
        info = self.info
        if fast is None:
            fast = self._fast_for_file()
        if not fast:
            Z = standardise(X_raw, info.x_mean, info.x_std)
            return torch.from_numpy(np.ascontiguousarray(Z)).to(self.dtype)
        X = torch.from_numpy(np.ascontiguousarray(X_raw))
        X = X.to(self.dtype) if X.dtype != self.dtype else (X if inplace else X.clone())
        if info.x_mean is not None and info.x_std is not None:
            if self._x_stats is None or self._x_stats[0].dtype != self.dtype:
                self._x_stats = (
                    torch.tensor(info.x_mean, dtype=self.dtype),
                    torch.tensor(info.x_std, dtype=self.dtype),
                )
            X.sub_(self._x_stats[0]).div_(self._x_stats[1])
        return X

    def _fast_for_file(self) -> bool:
        """Whether the file's rows (all within the setup pass's min/max) standardise in ``dtype``."""
        if self._fast is None:
            self.setup()
            assert self._extremes is not None
            info = self.info
            self._fast = fits(self.dtype, self._extremes[0].absmax, info.x_mean, info.x_std)
        return self._fast

    def _targets(self, Y_raw: np.ndarray) -> Tensor:
        """Raw (n, k) → int64 class ids (n,) for multiclass, else (n, K) of ``dtype`` (CPU)."""
        info = self.info
        if info.task in ("binary", "multiclass"):
            assert self._labels is not None
            ids = torch.from_numpy(np.searchsorted(self._labels, Y_raw[:, 0]).astype(np.int64))
            return ids if info.task == "multiclass" else ids[:, None].to(self.dtype)
        Y = standardise(Y_raw, info.y_mean, info.y_std)
        return torch.from_numpy(np.ascontiguousarray(Y)).to(self.dtype)

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _loader(self, split: str) -> StreamBatches:
        return StreamBatches(self, split, **loader_settings(self.trainer, split == "train"))

    def train_dataloader(self) -> StreamBatches:
        """Shuffled by ``(seed, trainer.current_epoch)``; under DDP blocks are dealt round-robin."""
        return self._loader("train")

    def val_dataloader(self) -> StreamBatches:
        """In file order, not sharded: under DDP every rank sees the whole split."""
        return self._loader("val")

    def test_dataloader(self) -> StreamBatches:
        return self._loader("test")

    def predict_dataloader(self) -> StreamBatches:
        """The test split, in order, as ``(X, Y)`` batches."""
        return self._loader("test")

    # ---- raw rows ↔ what the net sees -----------------------------------------------------------
    def transform(self, X_raw: np.ndarray | Tensor) -> Tensor:
        """Raw rows (n, d) or one row (d,) → standardised (n, d) tensor, as in the served batches.

        A tensor keeps its device; numpy gives a CPU tensor. Needs only ``info``.
        """
        device = X_raw.device if isinstance(X_raw, Tensor) else torch.device("cpu")
        info = self.info
        A = raw_rows(X_raw, info.raw_features)
        if not fits(self.dtype, np.abs(A).max(axis=0, initial=0.0), info.x_mean, info.x_std):
            return network_inputs(A, info, self.dtype).to(device)  # the checked float64 route
        fast = self._fast_for_file() if self._source is not None else True  # as the batches are
        return self._features(A, inplace=True, fast=fast).to(device)

    def inverse_transform_y(self, Y: Tensor) -> Tensor:
        """Undo the regression target standardisation: Y (n, K) → original units (identity otherwise)."""
        info = self.info
        if info.task != "regression" or info.y_mean is None or info.y_std is None:
            return Y
        std = torch.tensor(info.y_std, dtype=Y.dtype, device=Y.device)
        return Y * std + torch.tensor(info.y_mean, dtype=Y.dtype, device=Y.device)

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"info": ..., "split": ...}`` (empty before setup), saved by Lightning in checkpoints."""
        if self._info is None:
            return {}
        split = self._restored_split if self._source is None else self._split_key(self._source.n_rows)
        return {"info": self._info.to_dict(), "split": split}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``info`` (its statistics then standardise the batches); checked against the data."""
        if "info" not in state_dict:
            return
        info, split = DataInfo.from_dict(state_dict["info"]), state_dict.get("split")
        if self._source is not None and self._info is not None:
            self._check_restored(info, split, self._info, self._source.n_rows)
        previous = self._info, self._restored_split
        self._info, self._restored_split = info, split
        self._x_stats = self._fast = None  # the standardisation follows the restored statistics
        if self._source is not None:
            try:
                self._check_range(self._source)
            except DataError:  # the restored statistics do not fit this file: keep the old state
                self._info, self._restored_split = previous
                raise


class NpyStreamDataModule(StreamDataModule):
    """Features (n, d) and targets (n,) or (n, k) in two ``.npy`` files, streamed (see the base).

    Args:
        features: ``.npy`` of numbers (n, d), C order (as ``np.save`` writes it).
        targets: ``.npy`` (n,) or (n, k) of numbers, bools or strings (class labels).
        **stream_kwargs: :class:`StreamDataModule` arguments.
    """

    def __init__(self, features: str, targets: str, **stream_kwargs) -> None:
        super().__init__(**stream_kwargs)
        self.features, self.targets = str(features), str(targets)

    def open_source(self) -> NpySource:
        return NpySource(self.features, self.targets)


class ParquetStreamDataModule(StreamDataModule):
    """A Parquet table streamed one row group at a time (see the base).

    Args:
        path: ``.parquet`` / ``.pq`` file.
        target: target column name, or several (multilabel / multi-output regression); a string
            target column is a class label.
        features: feature columns in order (default: every other numeric column).
        **stream_kwargs: :class:`StreamDataModule` arguments.
    """

    def __init__(
        self, path: str, target: str | Sequence[str], features: Sequence[str] | None = None, **stream_kwargs
    ) -> None:
        super().__init__(**stream_kwargs)
        self.path = str(path)
        self.target = str(target) if isinstance(target, str) else [str(t) for t in target]
        if not self.target:
            raise ValueError("target must name at least one column")
        self.features = None if features is None else [str(f) for f in features]

    def open_source(self) -> ParquetSource:
        return ParquetSource(self.path, self.target, self.features)
