"""Checkpoint files: written atomically, read without executing code.

* :class:`AtomicCheckpointIO` writes a temporary file next to the target, flushes it to disk and
  renames it over ``path`` (:func:`lecturenn.atomic.write_atomically`), so a crash or SIGKILL in the
  middle of a save never leaves a torn ``last.ckpt``: readers see the old file or the new one.
* :func:`load_checkpoint` checks the file before unpickling anything: it must be a zip archive as
  ``torch.save`` writes it (records stored, one ``data.pkl``) whose every record matches the CRC-32
  stored for it (torch itself never checks them, so flipped bits in Θ would load silently); then
  it reads it with ``torch.load(weights_only=True)``: a checkpoint is data (tensors, numbers,
  strings, dicts) and a pickle that tries to build arbitrary objects is refused. Every failure is a
  :class:`CheckpointError` naming the file and what is wrong with it.
* :func:`upgrade_data_info` / :func:`restore_data_info`: the data info (standardisation, features,
  classes) is stored once, as the model's ``data_info`` hyper-parameter; older files that also
  kept it as module buffers are read through :func:`upgrade_data_info` (in :func:`load_checkpoint`).
* :func:`rng_states` / :func:`restore_rng_states`: the process's RNG states as checkpoint data
  (tensors and plain numbers), so a resumed run draws the same numbers (dropout, shuffles);
  :func:`checkpoint_extras` adds them and the optimizer's class to every training checkpoint.
* :func:`load_module` builds a :class:`~lecturenn.training.ThetaMLPModule` from a checkpoint
  without letting Lightning interpret it (``LightningModule.load_from_checkpoint`` imports and
  calls a callable named by the checkpoint's ``hyper_parameters["_instantiator"]`` and restores
  RNG states): the hyper-parameters must be plain values naming arguments of the module.
"""

from __future__ import annotations

import inspect
import mmap
import random
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..atomic import write_atomically
from ..validation import why_not_a_file

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointError",
    "checkpoint_extras",
    "init_arguments",
    "load_checkpoint",
    "load_module",
    "upgrade_data_info",
    "plain_copy",
    "restore_data_info",
    "restore_rng_states",
    "rng_states",
    "verify_checkpoint_file",
]

_ZIP_MAGIC = b"PK\x03\x04"
_PLAIN_SCALARS = (str, int, float, bool, type(None))


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, truncated, corrupted or unsafe)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic (temporary file in the same directory + rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # to a file object: torch.save names the zip's top folder after a path's stem (here a random
        # temporary name), after nothing ("archive") for a file object
        write_atomically(path, lambda f: torch.save(checkpoint, f))

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location)


def verify_checkpoint_file(path) -> None:
    """Check that ``path`` is a whole, uncorrupted ``torch.save`` zip archive, reading every byte.

    Raises :class:`CheckpointError`: "does not exist", "is not a PyTorch checkpoint" (not a zip
    archive, or a zip archive that ``torch.save`` did not write), "is truncated or corrupted", or
    "is corrupted (CRC mismatch in <record>)". A file written with torch's
    ``compute_crc32=False`` (every CRC zero) has nothing to check against and passes. A leading
    ``~`` is the home directory.
    """
    path = Path(path).expanduser()
    where = f"checkpoint {str(path)!r}"
    reason = why_not_a_file(path)
    if reason:
        raise CheckpointError(f"{where} {reason}")
    with open(path, "rb") as f:
        head = f.read(len(_ZIP_MAGIC))
    if head != _ZIP_MAGIC:
        what = "the file is empty" if not head else "not a zip archive written by torch.save"
        raise CheckpointError(f"{where} is not a PyTorch checkpoint ({what})")
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
            pickles = [
                r.filename for r in records if r.filename.count("/") == 1 and r.filename.endswith("/data.pkl")
            ]
            if not pickles:
                raise CheckpointError(f"{where} is not a PyTorch checkpoint (a zip archive without data.pkl)")
            packed = [r.filename for r in records if r.compress_type != zipfile.ZIP_STORED]
            if packed:  # torch.save stores records uncompressed; refusing also avoids zip bombs
                raise CheckpointError(
                    f"{where} is not a PyTorch checkpoint (compressed record {packed[0]!r}; "
                    "torch.save stores records uncompressed)"
                )
            if not any(r.CRC for r in records if r.file_size):
                return  # written without CRCs (torch's compute_crc32=False): nothing to verify
            bad = _first_crc_mismatch(path, records)
            if bad is not None:
                raise CheckpointError(f"{where} is corrupted (CRC mismatch in {bad})")
    except CheckpointError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
    ) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if reason == "File is not a zip file":
            reason = "its zip directory is missing (the end of the file was cut off?)"
        raise CheckpointError(f"{where} is truncated or corrupted: {reason}") from None


def _first_crc_mismatch(path: Path, records: list[zipfile.ZipInfo]) -> str | None:
    """The first record whose bytes do not match its stored CRC-32 (None: all match).

    Reads the file through a read-only memory map (about twice as fast as ``ZipFile.testzip``,
    which copies every chunk); raises ``zipfile.BadZipFile`` for a record that is not where the
    zip directory says it is.
    """
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        view = memoryview(data)
        try:
            for record in records:
                at = record.header_offset
                header = data[at : at + 30]  # bytes (a memoryview slice would pin the map)
                if len(header) < 30 or header[:4] != _ZIP_MAGIC:
                    raise zipfile.BadZipFile(f"record {record.filename!r} is missing its local header")
                name_len, extra_len = struct.unpack("<HH", header[26:30])
                start = at + 30 + name_len + extra_len
                if data[at + 30 : at + 30 + name_len].decode("utf-8", "replace") != record.filename:
                    raise zipfile.BadZipFile(f"record {record.filename!r} does not match the zip directory")
                end = start + record.compress_size
                if end > len(view):
                    raise zipfile.BadZipFile(f"record {record.filename!r} runs past the end of the file")
                crc = 0
                for chunk in range(start, end, 1 << 24):
                    crc = zlib.crc32(view[chunk : min(chunk + (1 << 24), end)], crc)
                if crc != record.CRC:
                    return record.filename
        finally:
            view.release()
    return None


def _unsafe_reason(message: str) -> str:
    """The offending global from torch's weights_only error, without its advice to disable the check."""
    found = re.search(r"GLOBAL\s+([\w.]+)", message)
    if found:
        return f"Unsupported global: GLOBAL {found.group(1)}"
    found = re.search(r"WeightsUnpickler error:\s*([^\n]*)", message)
    reason = found.group(1) if found else ""
    reason = re.split(r"(?<=\.)\s|Please use|weights_only", reason)[0].strip().rstrip(".")
    return reason or "content that is not tensors and plain data"


def load_checkpoint(path, map_location="cpu") -> dict[str, Any]:
    """Load a checkpoint as data only (``weights_only=True``), after :func:`verify_checkpoint_file`.

    Raises :class:`CheckpointError` (one line naming the file) for a missing, foreign, truncated,
    corrupted or unsafe file. No message suggests loading with ``weights_only=False``. A leading
    ``~`` is the home directory.
    """
    path = Path(path).expanduser()
    verify_checkpoint_file(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for bad files (UnpicklingError, RuntimeError, ...)
        message = str(err)
        if "weights_only" in message or "Unsupported global" in message or "GLOBAL" in message:
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds objects other than tensors and plain data; refusing to "
                f"unpickle it (it could run code): {_unsafe_reason(message)}"
            ) from None
        reason = message.strip().splitlines()[0] if message.strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupted: {reason}") from None
    return upgrade_data_info(checkpoint) if isinstance(checkpoint, dict) else checkpoint


# ---- the data info: stored once, as ThetaMLPModule's ``data_info`` hyper-parameter -------------------
#: module buffers that older checkpoints held beside ``data_info`` (copies of its statistics)
LEGACY_DATA_BUFFERS = ("x_mean", "x_std", "y_mean", "y_std")


def upgrade_data_info(checkpoint: dict) -> dict:
    """Read a checkpoint written before the data info was stored once: its ``state_dict`` also holds
    the standardisation as module buffers (:data:`LEGACY_DATA_BUFFERS`, copies of the
    ``data_info`` hyper-parameter), which are dropped — in place — so that it loads, resumes and
    predicts as before. Returns ``checkpoint``."""
    state, hparams = checkpoint.get("state_dict"), checkpoint.get("hyper_parameters")
    if isinstance(state, dict) and isinstance(hparams, dict) and "data_info" in hparams:
        for name in LEGACY_DATA_BUFFERS:
            state.pop(name, None)
    return checkpoint


def restore_data_info(module, checkpoint: dict, trainer=None) -> None:
    """On a Lightning resume (``module.on_load_checkpoint``): :func:`upgrade_data_info`, then the
    module takes the checkpoint's ``data_info`` — the statistics Θ was trained with — and hands it
    to the trainer's lecturenn data module, which checks it against its data and serves its
    batches with it (``DataError`` when the data is of another kind)."""
    from ..data import BaseDataModule, DataInfo

    upgrade_data_info(checkpoint)
    info = (checkpoint.get("hyper_parameters") or {}).get("data_info")
    if not isinstance(info, dict) or not info:
        return
    module.hparams["data_info"] = info
    module.data_transform = DataInfo.from_dict(info).transform
    datamodule = getattr(trainer, "datamodule", None)
    if isinstance(datamodule, BaseDataModule):
        datamodule.load_state_dict({"info": info})


def plain_copy(value):
    """Deep copy into plain dicts/lists (config objects such as OmegaConf's would make the
    checkpoint unloadable with ``weights_only=True``)."""
    if isinstance(value, Mapping):
        return {str(k): plain_copy(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain_copy(v) for v in value]
    return value


def rng_states() -> dict:
    """torch (CPU, and CUDA once initialised: one state per visible GPU), numpy and Python RNG
    states as tensors and plain numbers — loadable with ``weights_only=True``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global RNG is the point)
    version, internal, gauss = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    """Set the RNGs to ``states`` (from :func:`rng_states`). CUDA: the states of the GPUs this
    machine has — a run saved on 4 GPUs resumes on 1 (restoring all of them raised IndexError);
    GPUs beyond those saved keep their seed."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached"]))  # noqa: NPY002
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        for device, state in enumerate(list(states["cuda"])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


def checkpoint_extras(trainer) -> dict:
    """What ``ThetaMLPModule.on_save_checkpoint`` adds: ``rng_states`` and, when the Trainer has an
    optimizer, ``optimizer_class`` (its qualified name, so a resume can refuse another optimizer)."""
    extras = {"rng_states": rng_states()}
    if trainer is not None and trainer.optimizers:
        kind = type(trainer.optimizers[0])
        extras["optimizer_class"] = f"{kind.__module__}.{kind.__qualname__}"
    return extras


def _plain(value, depth: int = 0) -> bool:
    """str/int/float/bool/None, or lists/dicts (str keys) of them."""
    if depth > 8:
        return False
    if type(value) in _PLAIN_SCALARS:
        return True
    if type(value) in (list, tuple):
        return all(_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def init_arguments(cls, exclude=()) -> tuple[list[str], list[str]]:
    """(every, required) keyword argument of ``cls(...)``, following ``**kwargs`` up the MRO to the
    base classes' ``__init__`` — what a file may name when it describes an object of ``cls``."""
    names, required = [], []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        forwards = False
        for p in list(inspect.signature(klass.__init__).parameters.values())[1:]:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                forwards = True
            elif p.kind in kinds and p.name not in names and p.name not in exclude:
                names.append(p.name)
                if p.default is inspect.Parameter.empty:
                    required.append(p.name)
        if not forwards:
            break
    return names, required


def load_module(path, map_location="cpu"):
    """A :class:`~lecturenn.training.ThetaMLPModule` with the checkpoint's weights, in eval mode.

    Unlike ``ThetaMLPModule.load_from_checkpoint`` this never lets the file choose code: the
    ``hyper_parameters`` must be plain values whose keys are arguments of ``ThetaMLPModule``
    (not ``optimizer``/``scheduler``; e.g. Lightning's ``_instantiator`` is refused), the Θ shapes
    must match them, and ``state_dict`` must fit the module exactly. RNG states in the checkpoint
    are not restored and the process's RNGs are left as they were (the CUDA ones are never touched).
    """
    from .module import ThetaMLPModule

    where = f"checkpoint {str(Path(path))!r}"
    ckpt = load_checkpoint(path, map_location=map_location)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{where} has no state_dict; it is not a lecturenn training checkpoint")
    hparams = ckpt.get("hyper_parameters")
    if not isinstance(hparams, dict):
        raise CheckpointError(
            f"{where} has no hyper_parameters; it is not a lecturenn training checkpoint (ThetaMLPModule)"
        )
    # the optimizer/scheduler factories are code: never in a checkpoint (save_hyperparameters ignores them)
    names, required = init_arguments(ThetaMLPModule, exclude=("optimizer", "scheduler"))
    unknown = [k for k in hparams if k not in names]
    if unknown:
        raise CheckpointError(
            f"{where}: hyper-parameter {str(unknown[0])!r} is not an argument of ThetaMLPModule "
            f"(expected some of {names}); refusing to load it"
        )
    missing = [k for k in required if k not in hparams]
    if missing:
        raise CheckpointError(
            f"{where}: hyper-parameters lack {missing}; it is not a ThetaMLPModule checkpoint"
        )
    bad = [k for k, v in hparams.items() if not _plain(v)]
    if bad:
        raise CheckpointError(
            f"{where}: hyper-parameter {bad[0]!r} is a {type(hparams[bad[0]]).__name__}, not a plain value "
            "(str, int, float, bool, None or lists/dicts of them); refusing to load it"
        )
    state = ckpt["state_dict"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{where}: state_dict holds something other than named tensors")
    # Θ shapes from the hyper-parameters, checked before building (a file claiming a huge network
    # must not make us allocate it)
    try:
        sizes = [int(hparams["n_features"]), *[int(s) for s in hparams.get("hidden_sizes", [25])]]
        sizes.append(int(hparams["n_outputs"]))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: bad layer sizes in hyper_parameters ({err})") from None
    expected = {f"net.thetas.{l}": (sizes[l + 1], sizes[l] + 1) for l in range(len(sizes) - 1)}
    found = {k: tuple(v.shape) for k, v in state.items() if k.startswith("net.thetas.")}
    if found != expected:
        raise CheckpointError(
            f"{where}: its Θ shapes {found} do not match the network its hyper-parameters describe "
            f"(layer sizes {sizes}: {expected})"
        )
    try:
        with torch.random.fork_rng(devices=[]):  # Θ's throwaway initialisation draws on a copy (CPU only)
            module = ThetaMLPModule(**hparams)
        dtype = state["net.thetas.0"].dtype  # e.g. float64 from a trainer.precision=64-true run
        if dtype.is_floating_point and dtype != module.net.thetas[0].dtype:
            module = module.to(dtype)
        module.load_state_dict(state, strict=True)
    except Exception as err:  # bad values (ValueError/TypeError), missing/unexpected keys (RuntimeError)
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise CheckpointError(f"{where} cannot be loaded into a ThetaMLPModule: {reason}") from None
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        module = module.to(map_location)
    return module.eval()
