"""Θ^(1..L) in files: NumPy ``.npz`` and MATLAB/Octave ``.mat`` (the classic ex4 format).

Both formats hold one variable per layer, exactly the lecture's matrices (bias in column 0)::

    Theta1   (s_2, s_1 + 1)        Θ^(1)
    Theta2   (s_3, s_2 + 1)        Θ^(2)
    …
    ThetaL   (s_{L+1}, s_L + 1)    Θ^(L)

plus the architecture:

* ``.npz`` — ``architecture``: a JSON string (``{"format": "lecturenn.thetas", "version": 1,
  "sizes": [...], "hidden": "...", "output": "...", "dropout": p}``) stored as a NumPy unicode array.
  No pickled objects are written, and ``np.load(..., allow_pickle=False)`` reads it back; an archive
  holding an object array (pickled Python objects) is refused, never unpickled.
* ``.mat`` — ``scipy.io.savemat`` (MAT v5, readable by Octave's and MATLAB's ``load``): ``Theta1``,
  ``Theta2``, … plus ``sizes`` (row vector), ``hidden`` and ``output`` (strings), and ``dropout``
  when it is not 0. A file with only ``Theta1``, ``Theta2``, … (like the exercise's ``ex4weights.mat``)
  loads as the exercise's network: sigmoid hidden units, sigmoid outputs, sizes inferred from the
  shapes (s_1 = columns of Theta1 − 1, s_{l+1} = rows of Theta{l}).

Θ keeps its dtype (a float64 net saves doubles, as Octave expects; a float32 net saves singles).
``load_thetas`` checks that the Θ shapes chain (Theta{l+1} has s_{l+1} + 1 columns where Theta{l}
has s_{l+1} rows), that every Θ is a finite real 2-D array and that Theta1 … ThetaL have no gaps,
and raises ``ValueError`` saying which variable is wrong otherwise.

Batch normalisation has state beyond Θ (running means and variances): ``save_thetas`` refuses
such nets — save their ``state_dict`` with ``torch.save`` instead.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomically
from ..network import ThetaMLP
from ..validation import require_file

__all__ = ["save_thetas", "load_thetas"]  # npz_arrays, read_npz, net_from_arrays: for the estimators

_FORMAT = "lecturenn.thetas"
_THETA = re.compile(r"^Theta(\d+)$")
_DEFAULTS = {"hidden": "sigmoid", "output": "sigmoid", "dropout": 0.0}  # the ex4 network
# an entry inflating beyond 64 MiB at over 100:1 is refused unread (np.savez: 1:1; floats deflate ~1.1:1)
_BOMB_BYTES, _BOMB_RATIO = 1 << 26, 100


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".mat"):
        raise ValueError(
            f"unknown file extension {path.suffix or '(none)'!r} for {str(path)!r}; "
            "Θ files are .npz (NumPy) or .mat (MATLAB/Octave)"
        )
    return suffix


def save_thetas(net: ThetaMLP, path: str | os.PathLike) -> Path:
    """Write Θ^(1..L) of ``net`` as ``Theta1``, ``Theta2``, … to ``path`` (``.npz`` or ``.mat``).

    Returns the path written. See the module docstring for the layout.
    """
    if not isinstance(net, ThetaMLP):
        raise TypeError(f"save_thetas expects a ThetaMLP, got {type(net).__name__}")
    path = Path(path)
    suffix = _suffix(path)
    if net.norms is not None:
        raise ValueError(
            "save_thetas stores Θ only, but this net uses batch normalisation (running statistics "
            "and scale/shift parameters); use torch.save(net.state_dict(), ...) instead"
        )
    thetas = {f"Theta{l}": theta.detach().cpu().numpy().copy() for l, theta in enumerate(net.thetas, start=1)}
    if suffix == ".npz":  # to a file object: numpy would otherwise append ".npz" to ".NPZ"
        write_atomically(path, lambda f: np.savez(f, **npz_arrays(net)))
    else:
        from scipy.io import savemat

        variables = dict(thetas)
        variables["sizes"] = np.array(net.sizes, dtype=np.float64).reshape(1, -1)
        variables["hidden"] = net.activation.name
        variables["output"] = net.head.name
        if net.dropout:
            variables["dropout"] = float(net.dropout)
        write_atomically(path, lambda f: savemat(f, variables, format="5", oned_as="row"))
    return path


def npz_arrays(net: ThetaMLP) -> dict[str, np.ndarray]:
    """The ``.npz`` layout of ``net``: ``Theta1`` … ``ThetaL`` (CPU copies, Θ's dtype) and the
    ``architecture`` JSON string (also the start of an estimator file, ``lecturenn.estimators``)."""
    arrays = {f"Theta{l}": theta.detach().cpu().numpy().copy() for l, theta in enumerate(net.thetas, start=1)}
    arch = {
        "format": _FORMAT,
        "version": 1,
        "sizes": list(net.sizes),
        "hidden": net.activation.name,
        "output": net.head.name,
        "dropout": net.dropout,
    }
    return {**arrays, "architecture": np.array(json.dumps(arch))}


def _check_npz_magic(path: Path) -> None:
    """``ValueError`` naming what the file is when it is neither a zip (.npz) nor an .npy: numpy would
    try it as a pickle and say "contains pickled data ... allow_pickle", wrong for a text or .mat file."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return  # np.load reports it
    if head.startswith((b"PK", b"\x93NUMPY")):
        return
    if head.startswith(b"\x80"):
        what = "a Python pickle; lecturenn never unpickles data"
    elif head.startswith(b"MATLAB"):
        what = "a MATLAB .mat file; ln.load_thetas reads Θ from one"
    else:
        what = "not a zip file (an .npz archive is one)" if head else "empty"
    raise ValueError(f"{str(path)!r} is not an .npz archive: {what}")


def read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Every array of the ``.npz`` at ``path`` (read with ``allow_pickle=False``) but ``architecture``,
    and the ``architecture`` JSON object ({} when absent); ``ValueError`` for anything else (a
    pickle, an object array, a truncated or corrupt archive)."""
    _check_npz_magic(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as err:  # a pickle file, or an .npy holding objects
        raise ValueError(
            f"{str(path)!r} is not a plain .npz archive ({err}); lecturenn never unpickles data"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{str(path)!r} is not a readable .npz archive ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{str(path)!r} holds a single array (.npy), not an .npz archive of Theta1, Theta2, …"
        )
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for info in archive.zip.infolist():  # sizes from the zip directory, before inflating anything
            if info.file_size > _BOMB_BYTES and info.file_size > _BOMB_RATIO * info.compress_size:
                raise ValueError(
                    f"{str(path)!r}: entry {info.filename!r} would inflate {info.compress_size} bytes to "
                    f"{info.file_size} (a decompression bomb?); save weights with np.savez or save_thetas"
                )
        for key in archive.files:
            try:
                arrays[key] = archive[key]
                if not isinstance(arrays[key], np.ndarray):  # a zip entry that is no .npy: raw bytes
                    raise ValueError("not a NumPy .npy array")
            except ValueError as err:
                if "pickle" not in str(err):
                    raise ValueError(f"{str(path)!r}: array {key!r} is unreadable ({err})") from None
                raise ValueError(
                    f"{str(path)!r}: array {key!r} is an object array (pickled Python objects); "
                    "lecturenn never unpickles data — save plain numeric arrays"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error, MemoryError) as err:
                raise ValueError(f"{str(path)!r}: array {key!r} is unreadable ({err})") from None
    arch: dict = {}
    if "architecture" in arrays:
        raw = arrays.pop("architecture")
        try:
            arch = json.loads(str(raw[()]) if raw.ndim == 0 else str(raw.ravel()[0]))
        except (json.JSONDecodeError, IndexError, TypeError) as err:
            raise ValueError(f"{str(path)!r}: 'architecture' is not a JSON string ({err})") from None
        if not isinstance(arch, dict):
            raise ValueError(f"{str(path)!r}: 'architecture' must be a JSON object, got {arch!r}")
    return arrays, arch


def _mat_str(value) -> str:
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"expected a string, got an array of shape {value.shape}")
        value = value.ravel()[0]
    return str(value).strip()


def _read_mat(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except NotImplementedError as err:  # MAT v7.3 (HDF5)
        raise ValueError(
            f"{str(path)!r} is a MATLAB v7.3 (HDF5) file, which scipy cannot read ({err}); save it with "
            "save('-v7', ...) in MATLAB or save('-mat7-binary', ...) in Octave"
        ) from None
    except (ValueError, TypeError, OSError) as err:
        raise ValueError(f"{str(path)!r} is not a readable .mat file: {err}") from None
    variables = {k: v for k, v in data.items() if not k.startswith("__")}
    arch: dict = {}
    try:
        if "sizes" in variables:
            sizes = np.asarray(variables.pop("sizes"), dtype=np.float64).ravel()
            if not (np.all(np.isfinite(sizes)) and np.all(sizes == np.round(sizes))):
                raise ValueError(f"sizes must hold whole numbers, got {sizes.tolist()}")
            arch["sizes"] = [int(s) for s in sizes]
        for key in ("hidden", "output"):
            if key in variables:
                arch[key] = _mat_str(variables.pop(key))
        if "dropout" in variables:
            arch["dropout"] = float(np.asarray(variables.pop("dropout"), dtype=np.float64).ravel()[0])
    except (ValueError, TypeError, IndexError) as err:
        raise ValueError(f"{str(path)!r}: bad architecture variable: {err}") from None
    return variables, arch


def _collect_thetas(arrays: dict[str, np.ndarray], where: str) -> list[np.ndarray]:
    numbered = {int(m.group(1)): k for k in arrays if (m := _THETA.match(k))}
    if 1 not in numbered:
        found = sorted(arrays) or "nothing"
        raise ValueError(f"{where} has no Theta1 (found: {found}); expected variables Theta1, Theta2, …")
    L = max(numbered)
    missing = [f"Theta{l}" for l in range(1, L + 1) if l not in numbered]
    if missing:
        raise ValueError(f"{where} has Theta1 … Theta{L} but is missing {', '.join(missing)}")
    thetas = []
    for l in range(1, L + 1):
        name = numbered[l]
        theta = np.asarray(arrays[name])
        if theta.dtype == object or not (
            np.issubdtype(theta.dtype, np.floating) or np.issubdtype(theta.dtype, np.integer)
        ):
            raise ValueError(f"{where}: {name} must be a real numeric matrix, got dtype {theta.dtype}")
        if theta.ndim != 2 or theta.shape[0] < 1 or theta.shape[1] < 2:
            raise ValueError(
                f"{where}: {name} must be a 2-D matrix (s_{l + 1}, s_{l} + 1) with at least 2 columns "
                f"(bias column 0 plus weights), got shape {theta.shape}"
            )
        bad = ~np.isfinite(theta)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"{where}: {name} contains NaN or inf ({int(bad.sum())} entries; "
                f"first at row {i}, column {j})"
            )
        if l > 1:
            prev = thetas[-1]
            if theta.shape[1] - 1 != prev.shape[0]:
                raise ValueError(
                    f"{where}: Theta{l} has {theta.shape[1]} columns, so it expects s_{l} = "
                    f"{theta.shape[1] - 1} units, but Theta{l - 1} gives s_{l} = {prev.shape[0]} "
                    f"(shapes {tuple(prev.shape)} and {tuple(theta.shape)} do not chain)"
                )
        thetas.append(theta)
    return thetas


def load_thetas(
    path: str | os.PathLike,
    backprop: str = "manual",
    *,
    dtype: torch.dtype | None = None,
    device=None,
) -> ThetaMLP:
    """Read ``Theta1``, ``Theta2``, … (and the architecture, when stored) into a ThetaMLP.

    Args:
        path: a ``.npz`` written by :func:`save_thetas` or any ``.npz``/``.mat`` holding Theta1 … ThetaL.
        backprop: ``"manual"`` or ``"autograd"`` for the new net.
        dtype: Θ's dtype; default the file's floating dtype (integer matrices: torch's default dtype).
        device: where Θ lives (default CPU).

    Files without architecture information load as the ex4 network (sigmoid hidden, sigmoid output).
    """
    path = Path(path)
    suffix = _suffix(path)
    require_file(path)
    arrays, arch = read_npz(path) if suffix == ".npz" else _read_mat(path)
    return net_from_arrays(arrays, arch, repr(str(path)), backprop, dtype, device)


def net_from_arrays(
    arrays: dict, arch: dict, where: str, backprop="manual", dtype=None, device=None
) -> ThetaMLP:
    """The ThetaMLP of ``Theta1`` … ``ThetaL`` in ``arrays`` and the ``architecture`` ``arch``, every
    check of :func:`load_thetas` applied (``where`` names the file in the errors)."""
    thetas = _collect_thetas(arrays, where)
    sizes = [thetas[0].shape[1] - 1] + [t.shape[0] for t in thetas]
    stored = arch.get("sizes", sizes)
    if not (isinstance(stored, list) and all(isinstance(s, int) for s in stored)) or stored != sizes:
        raise ValueError(f"{where}: stored sizes {stored!r} do not match the Θ shapes, which give {sizes}")
    if dtype is None:
        floats = [t.dtype for t in thetas if np.issubdtype(t.dtype, np.floating)]
        dtype = torch.from_numpy(np.empty(0, np.result_type(*floats))).dtype if floats else None
        dtype = dtype or torch.get_default_dtype()
    tensors = [torch.from_numpy(np.ascontiguousarray(t)).to(dtype) for t in thetas]
    settings = {**_DEFAULTS, **{k: arch[k] for k in ("hidden", "output", "dropout") if k in arch}}
    try:
        return ThetaMLP.from_thetas(
            tensors,
            str(settings["hidden"]),
            str(settings["output"]),
            backprop,
            dropout=float(settings["dropout"]),
            dtype=dtype,
            device=device if device is not None else "cpu",
        )
    except (ValueError, TypeError, KeyError) as err:  # an unknown activation or head name, a bad dropout
        raise ValueError(f"{where}: {err}") from None
