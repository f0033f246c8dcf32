"""Sample weights w_i ≥ 0 for the cost J (defined in :mod:`lecturenn.regularization`):

    J(Θ) = (1/W) Σ_i w_i cost_i + λ/(2W) Σ_l Σ_{i, j≥1} (Θ^(l)_ij)²,     W = Σ_i w_i

``None`` means every w_i = 1 (W = n): the lecture's J, computed exactly as without weights.
Integer weights are the same as repeating rows. Checks: the shape here (no pass over the data);
the values (finite, ≥ 0, Σw > 0) as one 0-d bool for the network's single host sync, and the
message naming what is wrong.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .arrays import to_tensor

__all__ = ["prepare_sample_weight", "check_weight_shape", "weights_valid", "check_weight_values"]


def prepare_sample_weight(weight, n: int, dtype: torch.dtype, device) -> Tensor | None:
    """``weight`` as a (n,) tensor of ``dtype`` on ``device`` (None stays None).

    Raises ``TypeError`` for something that is not real numbers, ``ValueError`` for a wrong shape."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        if isinstance(weight, (str, bytes)):
            raise TypeError(f"sample_weight must be an array of n = {n} numbers, got {type(weight).__name__}")
        try:
            weight = to_tensor(weight)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"sample_weight must be an array of numbers: {err}") from None
    if weight.is_complex() or weight.dtype == torch.bool:
        raise TypeError(f"sample_weight must be real numbers, got dtype {weight.dtype}")
    check_weight_shape(weight, n)
    return weight.to(device=device, dtype=dtype)


def check_weight_shape(weight: Tensor, n: int) -> None:
    """``ValueError`` unless ``weight`` has shape (n,): one weight per row (no pass over the data)."""
    if tuple(weight.shape) != (n,):
        raise ValueError(
            f"sample_weight has shape {tuple(weight.shape)}; expected ({n},), one weight per row"
        )


def weights_valid(weight: Tensor) -> Tensor:
    """A 0-d bool tensor: all w_i finite and ≥ 0, and Σ w_i > 0 (no host sync)."""
    total = weight.sum()
    return torch.isfinite(total) & (weight >= 0).all() & (total > 0)


def check_weight_values(weight: Tensor | None) -> None:
    """``ValueError`` naming the first problem of the weights' values (a host sync)."""
    if weight is None:
        return
    if not torch.isfinite(weight).all():
        raise ValueError(
            f"sample_weight contains NaN or inf in the network's dtype {weight.dtype} (finite weights "
            "beyond its range overflow; scale all weights by one factor: that keeps the data term of J)"
        )
    if (weight < 0).any():
        i = int((weight < 0).nonzero()[0])
        raise ValueError(f"sample_weight must be >= 0, got {weight[i].item()} at row {i}")
    if not weight.sum() > 0:
        raise ValueError(
            f"sample_weight sums to zero in {weight.dtype}: J = (1/Σw) Σ w_i cost_i needs Σw > 0 (weights "
            "below the dtype's range underflow to 0; scale all weights by one factor: that keeps the data "
            "term of J)"
        )
