"""``StreamDataModule``: train on a file larger than RAM (``.npy`` or Parquet), in bounded memory.

The rows are never all in memory. How they are cut, split and served:

* **blocks** — contiguous ranges of ``block_rows`` rows (a Parquet row group is cut into blocks;
  no block crosses a row group). The block is the granularity of the split
  (:class:`~lecturenn.data.blocks.Blocks`: the blocks, the split and each epoch's order).
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
  well inside its range (:func:`~lecturenn.data.scaling.fits`), else in float64 and then cast;
  the choice is recorded in ``info.arithmetic``, so the :class:`~lecturenn.data.DataTransform`
  of a checkpoint computes the same numbers in ``predict.py``.
* **training epoch** — a function of ``(seed, epoch)`` alone: the read units (.npy: blocks;
  Parquet: row groups) in a seeded order, the train blocks inside each in a seeded order; rows
  are gathered into a buffer of ``shuffle_buffer_rows`` rows, shuffled within it and cut into
  batches, all full but the epoch's last. Validation/test/predict: in file order, not shuffled.
  Under DDP rank r takes every world_size-th block of that order, and every rank stops after
  the number of batches all ranks are sure to have (:meth:`StreamDataModule.n_batches`).

Memory: about two copies of the shuffle buffer (``shuffle_buffer_rows`` × d numbers, by default
about 64 MiB of features) plus one block (.npy) or one decoded row group (Parquet: write files
with row groups of at most ~100k rows) — independent of the file's size. With ``prefetch`` (by
default on a CUDA device) the next buffer is made while the current one trains: one buffer more.

To a CUDA device each buffer is copied whole from pinned memory, without blocking the host.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..validation import check_integer
from .base import BaseDataModule
from .batches import StreamBatches, loader_settings
from .blocks import Blocks
from .checks import to_dtype
from .chunks import Extremes, Moments, NpySource, ParquetSource, TargetScan, check_finite
from .errors import DataError
from .info import DataInfo
from .prefetch import Prefetched
from .scaling import fits, standardise
from .split import R2_ROWS
from .tasks import check_task
from .transform import dtype_name

__all__ = ["NpyStreamDataModule", "ParquetStreamDataModule", "StreamBatches", "StreamDataModule"]


class StreamDataModule(BaseDataModule):
    """Base of the streaming DataModules: subclasses implement :meth:`open_source`.

    Args:
        task: ``"auto"`` (the rule of :func:`~lecturenn.data.tasks.auto_task`, from the streaming
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
        prefetch: read the next shuffle buffer in a background thread while the current one
            trains (one more buffer in memory); ``None``: on a CUDA device only.

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
        prefetch: bool | None = None,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, seed, standardize, dtype, full_batch=False)
        if prefetch is not None and not isinstance(prefetch, bool):
            raise TypeError(f"prefetch must be true, false or null; got {prefetch!r}")
        self.prefetch = prefetch
        self.task, self.block_rows = check_task(task), check_integer(block_rows, "block_rows", low=1)
        rows = shuffle_buffer_rows
        self.shuffle_buffer_rows = (
            None if rows is None else max(check_integer(rows, "shuffle_buffer_rows"), self.batch_size)
        )
        self.image_shape = None if image_shape is None else [int(s) for s in image_shape]
        self._fast: tuple[DataInfo, bool] | None = None  # standardise the file's rows in dtype?
        self._extremes: tuple[Extremes, Extremes] | None = None  # features, targets: all rows
        self._source: NpySource | ParquetSource | None = None
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
        fractions = (self.val_fraction, self.test_fraction)
        self._blocks = Blocks(
            source.units(self.block_rows), source.n_rows, self.block_rows, self.seed, *fractions
        )
        fitted = self._scan(source)

        def serve() -> None:
            self._check_split(self._restored_split)
            self._check_range(source)

        self._adopt(fitted, serve)
        self._source = source

    def _scan(self, source: NpySource | ParquetSource) -> DataInfo:
        """The streaming pass: checks, target summary and train moments → :class:`DataInfo`."""
        names, targets = source.feature_names, source.target_names
        x_moments, y_moments = Moments(len(names)), Moments(len(targets))
        x_ext, y_ext = Extremes(len(names)), Extremes(len(targets))
        scan = TargetScan(self.task, targets)
        blocks = self._blocks
        for b, (X, Y) in enumerate(source.read(blocks.ranges(slice(None)))):
            first, numeric = int(blocks.starts[b]), Y.dtype.kind in "biuf"
            x_range = x_ext.add(X, first)  # NaN/inf anywhere shows in a column's min or max
            if not np.isfinite(x_range).all():
                check_finite(X.astype(np.float64), names, "feature", source.name, first)
            if numeric:
                y_range = y_ext.add(Y, first)
                if not np.isfinite(y_range).all():
                    check_finite(Y.astype(np.float64), targets, "target", source.target_file, first)
            scan.add(Y, train=blocks.split[b] == 0)
            if blocks.split[b] == 0:
                x_moments.add(X, *x_range)
                if numeric:
                    y_moments.add(Y, *y_range)
        task = scan.decide(source.n_rows)
        self._check_parts(source, task, scan.untrained(task))
        classes = scan.classes() if task in ("binary", "multiclass") else None
        self._labels = scan.values if classes is not None else None
        self._extremes = (x_ext, y_ext)
        x_mean = x_std = y_mean = y_std = None
        if self.standardize:
            x_mean, x_std = x_moments.mean_std()
            if task == "regression":
                y_mean, y_std = y_moments.mean_std()
        in_dtype = fits(self.dtype, x_ext.absmax, x_mean, x_std)  # the fast path, for every row
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
            raw_names=names,
            arithmetic=dtype_name(self.dtype) if in_dtype else "float64",
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
        rows = self._blocks.rows_per_split()
        if task == "regression" and min(rows["val"], rows["test"]) < 2:
            raise DataError(
                f"{source.name}: the split gives val {rows['val']} and test {rows['test']} row(s) "
                f"({split}); {R2_ROWS}: add rows, or change block_rows or val_fraction/test_fraction"
            )

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

    def _check_split(self, split: dict[str, Any] | None) -> None:
        """``DataError`` unless a restored split (None: none) is this data's: a resumed run must use
        the same, or it would train on old val rows."""
        if split is not None and split != self._blocks.key:
            raise DataError(f"the checkpoint's data was split differently: {split} vs now {self._blocks.key}")

    def _loaded(self) -> bool:
        return self._source is not None

    def _serve(self) -> None:
        assert self._source is not None
        self._check_range(self._source)

    # ---- results of setup -----------------------------------------------------------------------
    def row_ranges(self, split: str) -> list[tuple[int, int]]:
        """The rows of ``split`` ("train" | "val" | "test") as ``[start, stop)`` blocks in file order."""
        self.setup()
        return list(self._blocks.ranges(self._blocks.ids(split)))

    def split_sizes(self) -> dict[str, int]:
        """Rows per split: ``{"train": n, "val": n, "test": n}``."""
        self.setup()
        return self._blocks.rows_per_split()

    def n_batches(self, split: str, world_size: int = 1) -> int:
        """Batches per epoch of ``split``; for train under DDP, what every rank is sure to have
        (:meth:`~lecturenn.data.blocks.Blocks.n_batches`)."""
        self.setup()
        return self._blocks.n_batches(split, self.batch_size, world_size)

    # ---- streaming batches ----------------------------------------------------------------------
    def _buffers(self, ids: np.ndarray, rng: np.random.Generator | None) -> Iterator[tuple]:
        """Raw rows of blocks ``ids`` regrouped into fresh buffers ``(X, Y, order)`` of at least
        ``shuffle_buffer_rows`` rows: ``order`` lists the rows to serve — whole batches but the
        epoch's last — in a permutation by ``rng`` (``None``: all rows in order). The rows a
        buffer leaves over (< one batch) open the next one."""
        assert self._source is not None
        xs, ys, rows = [], [], 0
        for X, Y in self._source.read(self._blocks.ranges(ids)):
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

    def _host_buffers(
        self, ids: np.ndarray, rng: np.random.Generator | None, pin: bool
    ) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        """:meth:`_buffers` converted for the network: ``(X, Y, order)`` CPU tensors (X standardised,
        in place where it can), in page-locked memory when ``pin`` (the source of an asynchronous
        copy to a CUDA device; torch's caching host allocator reuses the pinned blocks once the
        copies that read them have finished)."""
        for X_raw, Y_raw, order in self._buffers(ids, rng):
            X, Y = self._features(X_raw), self._targets(Y_raw)
            del X_raw, Y_raw
            index = None if order is None else torch.from_numpy(order)
            if pin:
                X, Y = X.pin_memory(), Y.pin_memory()
                index = None if index is None else index.pin_memory()
            yield X, Y, index
            del X, Y, index  # the consumer has let go of this buffer: do not hold it while reading the next

    def prefetching(self, device: torch.device | None = None) -> bool:
        """Whether :meth:`stream` reads the next buffer in a background thread: ``prefetch``, or
        when it is None, on a CUDA device (the host reads while the GPU trains)."""
        device = self._device() if device is None else device
        return self.prefetch if self.prefetch is not None else device.type == "cuda"

    def stream(
        self, split: str, epoch: int = 0, rank: int = 0, world_size: int = 1, limit: int | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Generator of ``(X, Y)`` batches of ``split`` on the trainer's device (at most ``limit``).

        Each buffer is converted and standardised in place once, moved to the device whole, and
        its batches gathered there with ``index_select`` along its shuffled order (no shuffled
        copy of the buffer). On a CUDA device the buffer is copied from pinned memory without
        blocking the host, and with :meth:`prefetching` the next buffer is read, regrouped and
        standardised in a background thread (:class:`~lecturenn.data.prefetch.Prefetched`) while
        this one trains — the same batches, bitwise, in the same order."""
        self.setup()
        rng, ids = self._blocks.order(split, epoch, rank, world_size)
        device, done, b = self._device(), 0, self.batch_size
        cuda = device.type == "cuda"
        buffers = self._host_buffers(ids, rng, pin=cuda and torch.cuda.is_available())
        if self.prefetching(device):
            buffers = Prefetched(buffers)
        try:
            for X, Y, order in buffers:
                X, Y = X.to(device, non_blocking=cuda), Y.to(device, non_blocking=cuda)
                n = len(X) if order is None else len(order)
                if order is not None:
                    order = order.to(device, non_blocking=cuda)
                for start in range(0, n, b):
                    if limit is not None and done >= limit:
                        return
                    if order is None:
                        yield X[start : start + b], Y[start : start + b]
                    else:
                        idx = order[start : start + b]
                        yield X.index_select(0, idx), Y.index_select(0, idx)
                    done += 1
                del X, Y  # before the next buffer is taken
        finally:
            buffers.close()  # stops a prefetching thread (an epoch cut short by limit or by the caller)

    def _features(self, X_raw: np.ndarray) -> Tensor:
        """Raw (n, d) numbers → standardised tensor (n, d) of ``dtype`` (CPU), possibly in place: in
        ``dtype`` itself when the whole file fits it (:meth:`_fast_for_file`), else in float64."""
        return self.data_transform.features(X_raw, self.dtype, fast=self._fast_for_file(), inplace=True)

    def _fast_for_file(self) -> bool:
        """Whether the file's rows (all within the setup pass's min/max) standardise in ``dtype``:
        ``info.arithmetic`` names it and every value fits (:func:`~lecturenn.data.scaling.fits`)."""
        self.setup()
        info = self.info
        if self._fast is None or self._fast[0] is not info:
            assert self._extremes is not None
            fast = info.arithmetic == dtype_name(self.dtype)
            fast = fast and fits(self.dtype, self._extremes[0].absmax, info.x_mean, info.x_std)
            self._fast = (info, fast)
        return self._fast[1]

    def _targets(self, Y_raw: np.ndarray) -> Tensor:
        """Raw (n, k) → int64 class ids (n,) for multiclass, else (n, K) of ``dtype`` (CPU)."""
        info = self.info
        if info.task in ("binary", "multiclass"):
            assert self._labels is not None
            ids = torch.from_numpy(np.searchsorted(self._labels, Y_raw[:, 0]).astype(np.int64))
            return ids if info.task == "multiclass" else ids[:, None].to(self.dtype)
        return self.data_transform.targets(Y_raw, self.dtype, info.target_names)

    def _loader(self, split: str) -> StreamBatches:
        """Train: shuffled by ``(seed, trainer.current_epoch)``, blocks dealt round-robin under DDP;
        val/test/predict: in file order, not sharded."""
        return StreamBatches(self, split, **loader_settings(self.trainer, split == "train"))

    # ---- checkpoints ----------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        """What fixes the split (a resumed run must use the same, or it would train on old val rows)."""
        return {"split": self._restored_split if self._source is None else self._blocks.key}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        split = state.get("split")
        if self._source is not None:
            self._check_split(split)
        self._restored_split = split


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
