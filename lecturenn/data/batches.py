"""Mini-batches: :class:`TensorBatches` sliced from tensors that already live on the training
device, :class:`StreamBatches` streamed from a file larger than RAM.

Not a ``DataLoader``: there is no per-sample ``__getitem__`` and no collate step, only one
``index_select`` per batch (faster for the lecture's small MLPs: BENCHMARKS.md, "Behind the code").

With ``group_size=k`` an iteration yields :class:`BatchGroup` lists of k consecutive
mini-batches, which :class:`~lecturenn.training.ThetaMLPModule` trains with one optimizer step
each inside a single ``training_step`` — Lightning's per-batch overhead is then paid once per k
steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..validation import check_integer, is_integer

__all__ = [
    "BatchGroup",
    "StreamBatches",
    "check_batch_size",
    "TensorBatches",
    "epoch_permutation",
    "grouped",
    "loader_settings",
]


def check_batch_size(batch_size, full_batch: bool) -> int | None:
    """A positive integer, or — where ``full_batch`` — ``None`` / ``-1`` for one batch of all rows."""
    if batch_size is None or (is_integer(batch_size) and batch_size == -1):
        if full_batch:
            return None
        raise ValueError(
            f"batch_size must be a positive integer for streamed data (a full batch would not fit in "
            f"memory); got {batch_size!r}"
        )
    return check_integer(batch_size, "batch_size", low=1)


class BatchGroup(list):
    """Consecutive ``(X, Y)`` mini-batches handed to one ``training_step`` (a plain list otherwise)."""


def loader_settings(trainer, train: bool) -> dict:
    """What a data module's loader takes from the Trainer: ``rank`` and ``world_size`` (training
    only: evaluation is not sharded), ``epoch_fn`` (the trainer's current epoch) and ``group_size``
    (the mini-batches per ``training_step`` the LightningModule asks for, 1 otherwise)."""
    if trainer is None:
        return {"rank": 0, "world_size": 1, "epoch_fn": None, "group_size": 1}
    module = getattr(trainer, "lightning_module", None) if train else None
    return {
        "rank": trainer.global_rank if train else 0,
        "world_size": trainer.world_size if train else 1,
        "epoch_fn": lambda: trainer.current_epoch,
        "group_size": getattr(module, "batch_group_size", 1),
    }


def grouped(batches: Iterable, group_size: int) -> Iterator:
    """``batches`` unchanged (``group_size`` 1) or as :class:`BatchGroup` lists of up to
    ``group_size`` consecutive batches (the last group may be shorter)."""
    if group_size == 1:
        yield from batches
        return
    group = BatchGroup()
    for batch in batches:
        group.append(batch)
        if len(group) == group_size:
            yield group
            group = BatchGroup()
    if group:
        yield group


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The shuffled order of ``n`` rows for ``epoch``: int64 (n,) on CPU.

    A function of ``(seed, epoch)`` alone (a fresh CPU ``torch.Generator`` whose seed mixes the
    two through ``numpy.random.SeedSequence``), so a run resumed from a checkpoint at epoch e
    sees the same order as the uninterrupted run.
    """
    state = np.random.SeedSequence([int(seed) % 2**63, int(epoch) % 2**63]).generate_state(1, np.uint64)
    g = torch.Generator(device="cpu")
    g.manual_seed(int(state[0]) % 2**63)
    return torch.randperm(n, generator=g)


class TensorBatches:
    """Iterable of ``(X[idx], Y[idx])`` batches; one pass = one epoch.

    Args:
        X: (n, d) features, already on the training device.
        Y: (n,) or (n, k) targets on the same device.
        batch_size: rows per batch; ``None`` or ``-1`` → one full batch per epoch (the lecture's
            "epoch = one gradient-descent step").
        shuffle: reshuffle every epoch with :func:`epoch_permutation` ``(seed, epoch)``; ``epoch``
            is ``epoch_fn()`` if given (e.g. ``lambda: trainer.current_epoch``), else the number
            of earlier ``__iter__`` calls.
        seed: base seed of the shuffle.
        epoch_fn: where the epoch number comes from (see ``shuffle``).
        drop_last: drop this rank's last incomplete batch (``DataLoader`` semantics).
        group_size: ``1`` yields ``(X, Y)`` batches; ``k > 1`` yields :class:`BatchGroup` lists of
            up to k consecutive batches (the last group may be shorter).
        rank, world_size: DDP sharding like ``DistributedSampler``: the (shuffled) order is
            padded by wrapping around to a multiple of ``world_size`` and rank r takes positions
            r, r + world_size, ...; every rank gets ``ceil(n / world_size)`` rows and the same
            number of batches, and the shards are disjoint apart from the wrapped padding.

    ``len()`` is the number of batches (or groups) per epoch for this rank.
    """

    def __init__(
        self,
        X: Tensor,
        Y: Tensor,
        batch_size: int | None,
        shuffle: bool,
        seed: int = 0,
        epoch_fn: Callable[[], int] | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        group_size: int = 1,
    ) -> None:
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"TensorBatches: X has {X.shape[0]} rows but Y has {Y.shape[0]}")
        if X.device != Y.device:
            raise ValueError(f"TensorBatches: X is on {X.device} but Y is on {Y.device}")
        batch_size = check_batch_size(batch_size, full_batch=True)
        group_size = check_integer(group_size, "group_size", low=1)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need world_size >= 1 and 0 <= rank < world_size; got rank={rank}, {world_size=}"
            )
        self.X, self.Y = X, Y
        self.batch_size = batch_size
        self.shuffle, self.seed, self.epoch_fn, self.drop_last = bool(shuffle), int(seed), epoch_fn, drop_last
        self.rank, self.world_size = int(rank), int(world_size)
        self.group_size = group_size
        self._iterations = 0

    @property
    def n_rows(self) -> int:
        """Rows this rank sees per epoch (including wrap-around padding under DDP)."""
        n = self.X.shape[0]
        return n if self.world_size == 1 else math.ceil(n / self.world_size)

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.group_size)

    @property
    def num_batches(self) -> int:
        """Mini-batches (optimizer steps) per epoch for this rank."""
        rows = self.n_rows
        if rows == 0:
            return 0
        if self.batch_size is None:
            return 1
        return rows // self.batch_size if self.drop_last else math.ceil(rows / self.batch_size)

    def _order(self, epoch: int) -> Tensor | None:
        """This rank's row indices for ``epoch`` (CPU int64), or ``None`` for "all rows in order"."""
        n = self.X.shape[0]
        if not self.shuffle and self.world_size == 1:
            return None
        order = epoch_permutation(n, self.seed, epoch) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            total = self.n_rows * self.world_size
            if total > n:  # pad by wrapping around (repeating if n < world_size)
                order = order.repeat(math.ceil(total / n))[:total]
            order = order[self.rank : total : self.world_size]
        return order

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor] | BatchGroup]:
        return grouped(self._batches(), self.group_size)

    def _batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.epoch_fn() if self.epoch_fn is not None else self._iterations
        self._iterations += 1
        order = self._order(int(epoch))
        rows = self.n_rows
        if rows == 0:
            return
        size = rows if self.batch_size is None else self.batch_size
        if order is not None:
            order = order.to(self.X.device)
        for b in range(self.num_batches):
            start, stop = b * size, min((b + 1) * size, rows)
            if order is None:  # in order, one rank: views, no copy
                yield self.X[start:stop], self.Y[start:stop]
            else:
                idx = order[start:stop]
                yield self.X.index_select(0, idx), self.Y.index_select(0, idx)

    def __repr__(self) -> str:
        return (
            f"TensorBatches(rows={self.X.shape[0]}, batch_size={self.batch_size}, "
            f"batches={self.num_batches}, group_size={self.group_size}, "
            f"shuffle={self.shuffle}, rank={self.rank}/{self.world_size}, device={self.X.device})"
        )


class StreamBatches:
    """Batches ``(X, Y)`` of one split of a :class:`~lecturenn.data.StreamDataModule`, streamed
    from its file (``datamodule.stream``); one pass = one epoch.

    The epoch is ``epoch_fn()`` (e.g. ``trainer.current_epoch``) if given, else the number of
    earlier passes. ``group_size > 1`` yields :class:`~lecturenn.data.batches.BatchGroup` lists of
    that many consecutive batches (see :class:`~lecturenn.data.TensorBatches`). ``len()`` is the
    number of batches (or groups) per epoch (this rank's, under DDP).
    """

    def __init__(
        self,
        datamodule,
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
