"""The data layer of the training app: data sets → device-resident tensors → batches.

* :class:`BaseDataModule` — what every data module shares: argument checks, ``info``, the
  device, the dataloaders, ``transform``, the checkpoint state.
* :class:`DataTransform` — the one raw → network transform (Playground features, standardisation,
  the inverse for regression targets), used by the data modules, the LightningModule and
  ``predict.py``; stored in checkpoints as part of :class:`DataInfo`.
* :class:`TensorBatches` — mini-batches sliced from tensors on the training device.
* :class:`ArrayDataModule` — split / standardise / serve; subclasses supply the arrays:
  :class:`PlaygroundDataModule` (TensorFlow Playground 2-D sets), :class:`SklearnDataModule`
  (sets bundled with scikit-learn), :class:`TableDataModule` (CSV/TSV, Parquet, NPZ files).
* :class:`StreamDataModule` — the same for files larger than RAM, streamed in blocks:
  :class:`NpyStreamDataModule` (two ``.npy`` files), :class:`ParquetStreamDataModule` (Parquet).
* :class:`DataInfo` — what a model must remember about its data (goes into checkpoints).
* :class:`DataError` — bad data, one clear line.
"""

from .arrays import ArrayDataModule
from .base import BaseDataModule
from .batches import TensorBatches
from .bundled import SKLEARN_SETS, SklearnDataModule
from .errors import DataError
from .info import DataInfo
from .playground import FEATURES, PLAYGROUND_SETS, PlaygroundDataModule, playground_arrays
from .stream import NpyStreamDataModule, ParquetStreamDataModule, StreamDataModule
from .tables import TableDataModule
from .transform import DataTransform

__all__ = [
    "FEATURES",
    "PLAYGROUND_SETS",
    "SKLEARN_SETS",
    "ArrayDataModule",
    "BaseDataModule",
    "DataError",
    "DataInfo",
    "DataTransform",
    "NpyStreamDataModule",
    "ParquetStreamDataModule",
    "PlaygroundDataModule",
    "SklearnDataModule",
    "StreamDataModule",
    "TableDataModule",
    "TensorBatches",
    "playground_arrays",
]
