"""The data layer of the training app: data sets → device-resident tensors → batches.

* :class:`TensorBatches` — mini-batches sliced from tensors on the training device.
* :class:`ArrayDataModule` — split / standardise / serve; subclasses supply the arrays:
  :class:`PlaygroundDataModule` (TensorFlow Playground 2-D sets), :class:`SklearnDataModule`
  (sets bundled with scikit-learn), :class:`TableDataModule` (CSV/TSV, Parquet, NPZ files).
* :class:`StreamDataModule` — the same for files larger than RAM, streamed in blocks:
  :class:`NpyStreamDataModule` (two ``.npy`` files), :class:`ParquetStreamDataModule` (Parquet).
* :class:`DataInfo` — what a model must remember about its data (goes into checkpoints).
* :class:`DataError` — bad data, one clear line.
"""

from .base import ArrayDataModule
from .batches import TensorBatches
from .bundled import SKLEARN_SETS, SklearnDataModule
from .errors import DataError
from .info import DataInfo
from .playground import FEATURES, PLAYGROUND_SETS, PlaygroundDataModule, playground_arrays
from .stream import NpyStreamDataModule, ParquetStreamDataModule, StreamDataModule
from .tables import TableDataModule

__all__ = [
    "FEATURES",
    "PLAYGROUND_SETS",
    "SKLEARN_SETS",
    "ArrayDataModule",
    "DataError",
    "DataInfo",
    "NpyStreamDataModule",
    "ParquetStreamDataModule",
    "PlaygroundDataModule",
    "SklearnDataModule",
    "StreamDataModule",
    "TableDataModule",
    "TensorBatches",
    "playground_arrays",
]
