"""The one conversion of user inputs: array-likes by position → C-order numpy (→ a tensor).

:func:`as_array` takes whatever scikit-learn would accept (pandas objects, lists, numpy arrays in
any memory order) and :func:`to_tensor` finishes the job for code that wants a tensor. Everything
that takes raw X or Y from a user — :class:`~lecturenn.ThetaMLP`, :class:`~lecturenn.ThetaLinear`,
the heads' targets, the perceptrons, the gradient check, the estimators, the data modules and the
LightningModule's inference helpers — goes through these two, so a pandas Series indexed 10..19
or a Fortran-order array means the same thing everywhere.

This module imports nothing of lecturenn's, so the lowest layers (:mod:`lecturenn.theta`,
:mod:`lecturenn.heads`) can use it; :mod:`lecturenn.network` re-exports :func:`as_array`.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
from torch import Tensor

from .autograd_support import transforms_active

__all__ = ["as_array", "to_class_indices", "to_tensor"]

_INT64 = 2**63  # int64 holds [-2**63, 2**63), uint64 [0, 2**64)


def as_array(A):
    """Numbers in any form scikit-learn accepts, by position, as a C-contiguous numpy array.

    A pandas DataFrame or Series (whatever its index: rows are taken by position, not by label),
    a list, a numpy array in any memory order (Fortran, strided views) → ``np.ndarray`` in C
    order; a tensor is returned as it is. What numpy cannot turn into an array (a ragged list,
    ``None``, a string) is returned as given, for the caller's checks to name. The one conversion
    of inputs: the network's X and Y, the estimators' arrays and the data modules' raw rows.
    """
    if isinstance(A, Tensor) or A is None or isinstance(A, (str, bytes)):
        return A
    to_numpy = getattr(A, "to_numpy", None)  # pandas (and polars) objects: by position
    if callable(to_numpy) and not isinstance(A, np.ndarray):
        with contextlib.suppress(TypeError, ValueError):
            A = to_numpy()
    try:
        A = _exact_ints(A, np.asarray(A)) if isinstance(A, (list, tuple)) else np.asarray(A)
    except (TypeError, ValueError, RuntimeError):  # ragged lists, CUDA tensors in a list
        return A
    if A.dtype.char == "Q":  # numpy's ulonglong (Python ints ≥ 2**63 all alone, dtype="Q"): the
        A = A.view(np.uint64)  # same 8 bytes, but torch converts only its uint64 twin ("L")
    return A if A.flags.c_contiguous else np.ascontiguousarray(A)


def _python_ints(A) -> list[int] | None:
    """The leaves of the nested list ``A`` if every one is a Python int (no bool), else None."""
    leaves, stack = [], [A]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            leaves.append(item)
        else:
            return None
    return leaves


def _exact_ints(A, array: np.ndarray) -> np.ndarray:
    """numpy's array of the list ``A``, but Python ints stay exact integers: ints in [0, 2**64) with
    some ≥ 2**63 (numpy mixes int64 and uint64 into rounded float64) become uint64, as numpy makes
    them when no smaller int is present. Only a float64 or object result whose first entry is a
    Python int and with a value beyond int64 is looked at twice, so lists of ordinary numbers cost
    nothing more (a list of floats stops at its first entry: the ufuncs below cost ~6 µs)."""
    kind = array.dtype.char
    if kind != "d" and kind != "O":
        return array
    first = A
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if not isinstance(first, int) or isinstance(first, bool):  # all must be Python ints (no bool)
        return array
    if kind == "d":
        with np.errstate(invalid="ignore"):
            if (np.abs(array) < _INT64).all():
                return array
    ints = _python_ints(A)
    if ints and 0 <= min(ints) and max(ints) < 2 * _INT64:
        return np.array(A, dtype=np.uint64)
    return array


def to_class_indices(Y: Tensor, K: int, head: str, device=None) -> Tensor:
    """Integer class indices ``Y`` (n,) as int64 on ``device``. A uint64 index ≥ 2**63 would wrap to a
    negative number in the cast, and the range check would then report a label nobody passed: it
    is refused here, as given — ``ValueError`` in the words of the heads' range check, for K outputs.
    Not under torch.func transforms, which skip the value checks (``vmap`` cannot read a value)."""
    if Y.dtype == torch.uint64 and Y.numel() and not transforms_active():
        signed = Y.view(torch.int64)  # the same bits: an index ≥ 2**63 reads negative
        big = signed < 0
        if bool(big.any()):
            small = signed[~big]
            lo = int(small.min()) if small.numel() else int(signed[big].min()) + 2 * _INT64
            hi = int(signed[big].max()) + 2 * _INT64
            raise ValueError(
                f"class index out of range: Y has labels in [{lo}, {hi}] (dtype uint64) but the {head} "
                f"head has K = {K} outputs, so labels must lie in [0, {K - 1}]"
            )
    return Y.to(device=device, dtype=torch.long)


def to_tensor(A, dtype: torch.dtype | None = None, device=None) -> Tensor:
    """:func:`as_array`, then ``torch.as_tensor(A, dtype, device)`` (a tensor is only moved/cast).

    A read-only array (pandas ≥ 3 hands out read-only views) is copied where the tensor would
    otherwise share its memory, so torch neither warns nor writes into the caller's data. Raises
    torch's ``TypeError``/``ValueError``/``RuntimeError`` for what is no array of numbers
    (``None``, strings, ragged lists, object columns); callers turn those into their own message.
    """
    A = as_array(A)
    if isinstance(A, np.ndarray) and A.dtype == object:
        ints = _python_ints(A.tolist())
        big = next((v for v in ints or () if not -_INT64 <= v < 2 * _INT64), None)
        if big is not None:  # a Python int beyond every integer dtype: name it, not numpy's object array
            raise TypeError(
                f"it holds the integer {big}, beyond int64 and uint64 ([-2**63, 2**64)); pass numbers "
                "that fit a tensor (for class labels: 0 .. K-1)"
            )
    if not (isinstance(A, np.ndarray) and not A.flags.writeable):
        return torch.as_tensor(A, dtype=dtype, device=device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        T = torch.as_tensor(A, dtype=dtype, device=device)
    shared = T.device.type == "cpu" and T.numel() > 0 and T.data_ptr() == A.ctypes.data
    return T.clone() if shared else T
