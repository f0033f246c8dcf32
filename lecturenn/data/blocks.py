"""``Blocks``: a streamed file cut into blocks of rows, their seeded split and each epoch's order.

* **blocks** — contiguous ranges of ``block_rows`` rows inside a read unit (.npy: any range;
  Parquet: a row group, so no block crosses one). The block is the granularity of the split.
* **split** — a seeded permutation of the B block ids: the first ``max(1, round(test_fraction·B))``
  blocks are test, the next ``max(1, round(val_fraction·B))`` validation, the rest train. Only
  per-block arrays are kept (a few bytes per block), never per-row indices.
* **epoch order** — a function of ``(seed, epoch)`` alone: the read units in a seeded order, the
  train blocks inside each in a seeded order; under DDP rank r takes every world_size-th block.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["SPLITS", "Blocks", "seeded_rng"]

SPLITS = ("train", "val", "test")  # split codes 0, 1, 2 of the blocks


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """A numpy Generator that is a function of ``(seed, *key)`` alone."""
    return np.random.default_rng(np.random.SeedSequence(int(seed) % 2**63, spawn_key=key))


class Blocks:
    """The blocks of ``n_rows`` rows read in ``units`` (U, 2) ``[start, stop)``, and their split.

    Attributes: ``starts``, ``stops`` (first row, one past the last) and ``unit`` (read unit), each
    int64 (B,); ``split``: int8 (B,) codes 0 train, 1 val, 2 test; ``key``: what fixes the split.
    ``DataError`` when the blocks are too few for three parts.
    """

    def __init__(
        self,
        units: np.ndarray,
        n_rows: int,
        block_rows: int,
        seed: int,
        val_fraction: float,
        test_fraction: float,
    ) -> None:
        self.block_rows, self.seed = block_rows, seed
        sizes = units[:, 1] - units[:, 0]
        counts = -(-sizes // block_rows)  # blocks per unit
        self.unit = np.repeat(np.arange(len(units)), counts)
        k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # index in its unit
        self.starts = units[self.unit, 0] + k * block_rows
        self.stops = np.minimum(self.starts + block_rows, units[self.unit, 1])
        B = len(self.starts)
        n_test, n_val = max(1, round(test_fraction * B)), max(1, round(val_fraction * B))
        if B - n_test - n_val < 1:
            raise DataError(
                f"{n_rows} rows make only {B} block(s) of block_rows={block_rows}: too few for a "
                f"train/val/test split of the blocks (lower block_rows)"
            )
        perm = seeded_rng(seed, 0).permutation(B)
        self.split = np.zeros(B, dtype=np.int8)
        self.split[perm[:n_test]], self.split[perm[n_test : n_test + n_val]] = 2, 1
        fractions = [float(val_fraction), float(test_fraction)]
        self.key: dict[str, Any] = {
            "n_rows": n_rows,
            "block_rows": block_rows,
            "seed": seed,
            "fractions": fractions,
        }

    def ranges(self, ids: np.ndarray | slice) -> Iterator[tuple[int, int]]:
        """The ``[start, stop)`` rows of blocks ``ids``, lazily (no Python list per block)."""
        return zip(map(int, self.starts[ids]), map(int, self.stops[ids]))

    def ids(self, split: str) -> np.ndarray:
        """The blocks of ``split`` ("train" | "val" | "test") in file order."""
        return np.flatnonzero(self.split == SPLITS.index(split))

    def rows_per_split(self) -> dict[str, int]:
        sizes = self.stops - self.starts
        return {name: int(sizes[self.split == code].sum()) for code, name in enumerate(SPLITS)}

    def n_batches(self, split: str, batch_size: int, world_size: int = 1) -> int:
        """Batches per epoch of ``split``; for train under DDP, what every rank is sure to have.

        With ``world_size`` ranks each takes every world_size-th block of the epoch's order, so
        a rank holds at least the ``T // world_size`` smallest of the T train blocks; every rank
        stops after that many rows' batches (the rest of its rows wait for another epoch).
        """
        if split != "train" or world_size == 1:
            return math.ceil(self.rows_per_split()[split] / batch_size)
        train = np.sort((self.stops - self.starts)[self.split == 0])
        if len(train) < world_size:
            raise DataError(
                f"{len(train)} train blocks cannot be shared by {world_size} processes (lower block_rows)"
            )
        return math.ceil(int(train[: len(train) // world_size].sum()) / batch_size)

    def order(self, split: str, epoch: int, rank: int, world_size: int):
        """``(rng, block ids)`` of one pass: train in the epoch's seeded order (this rank's share),
        val/test in file order with ``rng=None``."""
        ids = self.ids(split)
        if split != "train":
            return None, ids
        rng = seeded_rng(self.seed, 1, epoch)
        units, inv = np.unique(self.unit[ids], return_inverse=True)
        unit_pos = rng.permutation(len(units))  # the units' places in this epoch
        key = rng.random(len(ids))  # the blocks' order inside their unit
        order = ids[np.lexsort((key, unit_pos[inv]))]
        return rng, order[rank::world_size]
