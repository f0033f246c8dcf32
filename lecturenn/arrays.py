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

__all__ = ["as_array", "to_tensor"]


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
        A = np.asarray(A)
    except (TypeError, ValueError, RuntimeError):  # ragged lists, CUDA tensors in a list
        return A
    return A if A.flags.c_contiguous else np.ascontiguousarray(A)


def to_tensor(A, dtype: torch.dtype | None = None, device=None) -> Tensor:
    """:func:`as_array`, then ``torch.as_tensor(A, dtype, device)`` (a tensor is only moved/cast).

    A read-only array (pandas ≥ 3 hands out read-only views) is copied where the tensor would
    otherwise share its memory, so torch neither warns nor writes into the caller's data. Raises
    torch's ``TypeError``/``ValueError``/``RuntimeError`` for what is no array of numbers
    (``None``, strings, ragged lists, object columns); callers turn those into their own message.
    """
    A = as_array(A)
    if not (isinstance(A, np.ndarray) and not A.flags.writeable):
        return torch.as_tensor(A, dtype=dtype, device=device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        T = torch.as_tensor(A, dtype=dtype, device=device)
    shared = T.device.type == "cpu" and T.numel() > 0 and T.data_ptr() == A.ctypes.data
    return T.clone() if shared else T
