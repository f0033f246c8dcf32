"""Float32 matmul precision (TF32 on CUDA): the app's ``matmul_precision`` key, as plain Python.

``torch.set_float32_matmul_precision`` takes ``highest`` (full float32, torch's default), ``high``
(TF32 Tensor Cores on CUDA: inputs rounded to a 10-bit mantissa, float32 accumulation — about
1e-3 relative error per product, many times the float32 matmul throughput) or ``medium`` (bfloat16
internals where the backend has them). ``auto`` picks ``high`` when training runs on a CUDA GPU and
``highest`` elsewhere: the CPU's matmuls stay full float32 and a CPU run's numbers do not change.
On CUDA, ``high`` or ``medium`` also silences Lightning's "Tensor Cores ... set
torch.set_float32_matmul_precision" hint.
"""

from __future__ import annotations

import torch

__all__ = ["MATMUL_PRECISIONS", "matmul_precision_for", "set_matmul_precision"]

MATMUL_PRECISIONS = ("auto", "highest", "high", "medium")


def matmul_precision_for(value: str, cuda: bool) -> str:
    """The precision ``value`` means on a CUDA (``cuda=True``) or other device: ``auto`` → ``high``
    on CUDA, ``highest`` elsewhere; any other value is itself.

    Raises:
        ValueError: ``value`` is not one of :data:`MATMUL_PRECISIONS`.
    """
    if value not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}; got {value!r}")
    if value == "auto":
        return "high" if cuda else "highest"
    return value


def set_matmul_precision(value: str = "auto", cuda: bool | None = None) -> str:
    """Apply :func:`matmul_precision_for` with ``torch.set_float32_matmul_precision`` (process-wide:
    call it before building the model) and return the precision now in effect.

    Args:
        value: ``auto`` | ``highest`` | ``high`` | ``medium``.
        cuda: whether training runs on a CUDA GPU; None: whether one is visible.
    """
    precision = matmul_precision_for(value, torch.cuda.is_available() if cuda is None else bool(cuda))
    torch.set_float32_matmul_precision(precision)
    return precision
