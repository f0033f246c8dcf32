"""Output heads: the hypothesis h = a^(L+1) from z^(L+1), the cost J, and the output error δ^(L+1).

n rows, K outputs; the data term of J(Θ) (the penalty R lives in :mod:`lecturenn.network`):

=========  ===============  ===================================================  ===============
head       h(z)             n · J_data                                           δ^(L+1)
=========  ===============  ===================================================  ===============
sigmoid    σ(z)             −Σ_i Σ_k [y log h + (1 − y) log(1 − h)]               h − y
softmax    e^z / Σ_k e^z_k  −Σ_i Σ_k y_ik log h_ik                               h − y
identity   z                Σ_i ‖y_i − h_i‖²                                     2 (h − y)
=========  ===============  ===================================================  ===============

δ^(L+1) is ∂(n · J_data)/∂z^(L+1): the lecture's "a − y" for the two canonical (head, cost)
pairs (sigmoid + cross-entropy, softmax + cross-entropy). The squared error is written without
the ½, as in the lecture's J, so its output error carries a factor 2.

J is evaluated from z with the log-sigmoid / log-sum-exp identities (``binary_cross_entropy_with_logits``,
``log_softmax``), so it stays finite in float32 where h rounds to exactly 0 or 1.

Targets Y: sigmoid — 0/1 floats of shape (n, K) (or (n,) when K = 1); softmax — class indices
of shape (n,) in [0, K), or one-hot rows of shape (n, K); identity — reals, (n, K) or (n,) when K = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .arrays import to_tensor

__all__ = ["Head", "HEADS", "get_head"]


def _is_index_target(Y: Tensor) -> bool:
    return Y.ndim == 1 and not (Y.is_floating_point() or Y.dtype == torch.bool)


@dataclass(frozen=True)
class Head:
    """An output unit type and the cost it is paired with (see the module docstring)."""

    name: str
    task: str  # "binary/multilabel", "multiclass" or "regression"

    # -- hypothesis ---------------------------------------------------------------------------
    def h(self, z: Tensor) -> Tensor:
        """h_Θ(x) from z^(L+1): (n, K) -> (n, K)."""
        if self.name == "sigmoid":
            return torch.sigmoid(z)
        if self.name == "softmax":
            return torch.softmax(z, dim=1)
        return z

    # -- targets ------------------------------------------------------------------------------
    def prepare_targets(self, Y, n: int, K: int, dtype: torch.dtype, device) -> Tensor:
        """Shape/dtype checks (no data pass); returns Y on ``device``, as (n, K) floats or (n,) indices.

        Y: a tensor, or numbers in any form :func:`~lecturenn.arrays.to_tensor` takes (numpy in
        any memory order, lists, a pandas Series or DataFrame by position whatever its index)."""
        if not isinstance(Y, Tensor):
            if Y is None or isinstance(Y, (str, bytes)):
                raise TypeError(f"Y must be a tensor or array of targets, got {type(Y).__name__}")
            try:
                Y = to_tensor(Y)
            except (TypeError, ValueError, RuntimeError) as err:
                raise TypeError(f"Y must be a tensor or array of numbers: {err}") from None
        if Y.is_complex():
            raise TypeError(f"Y must be real, got dtype {Y.dtype}")
        if self.name == "softmax" and _is_index_target(Y):
            if Y.shape[0] != n:
                raise ValueError(f"Y has {Y.shape[0]} class indices but X has {n} rows")
            ready = Y.dtype == torch.long and Y.device == device
            return Y if ready else Y.to(device=device, dtype=torch.long)
        if Y.ndim == 1 and K == 1:
            Y = Y.unsqueeze(1)
        if Y.ndim != 2 or tuple(Y.shape) != (n, K):
            hint = " or class indices of shape (n,)" if self.name == "softmax" else ""
            hint += " or (n,) since K = 1" if K == 1 else ""
            raise ValueError(
                f"Y has shape {tuple(Y.shape)}; the {self.name} head expects (n, K) = ({n}, {K})" + hint
            )
        return Y if Y.dtype == dtype and Y.device == device else Y.to(device=device, dtype=dtype)

    def check_index_range(self, Y: Tensor, K: int) -> None:
        """Class indices must lie in [0, K) — checked before any gather (one small reduction)."""
        if _is_index_target(Y) and Y.numel():
            lo, hi = torch.aminmax(Y)
            lo, hi = int(lo), int(hi)
            if lo < 0 or hi >= K:
                raise ValueError(
                    f"class index out of range: Y has labels in [{lo}, {hi}] but the softmax "
                    f"head has K = {K} outputs, so labels must lie in [0, {K - 1}]"
                )

    def targets_valid(self, Y: Tensor, K: int) -> Tensor:
        """A 0-d bool tensor: are the target *values* legal for this head? (No host sync.)"""
        if _is_index_target(Y):
            return ((Y >= 0) & (Y < K)).all()
        if self.name == "identity":
            return torch.isfinite(Y.sum())
        binary = ((Y == 0) | (Y == 1)).all()
        if self.name == "softmax":  # one-hot rows
            binary = binary & (Y.sum(dim=1) == 1).all()
        return binary

    def safe_targets(self, Y: Tensor, K: int) -> tuple[Tensor, Tensor]:
        """(Y safe to compute with, 0-d bool "Y was valid"): class indices are clamped to [0, K)."""
        if _is_index_target(Y):
            safe = Y.clamp(0, K - 1)
            return safe, (safe == Y).all()
        return Y, self.targets_valid(Y, K)

    def describe_bad_targets(self, Y: Tensor) -> str:
        """Human-readable reason why :meth:`targets_valid` failed."""
        if not torch.isfinite(Y).all():
            return "Y contains NaN or inf"
        found = torch.unique(Y)[:6].tolist()
        if self.name == "sigmoid":
            return (
                f"the sigmoid head needs 0/1 targets, but Y contains other values "
                f"(e.g. {found}); encode labels as 0/1 (one column per label)"
            )
        return (
            f"the softmax head needs one-hot rows (0/1, one 1 per row) or class indices of "
            f"shape (n,); Y holds values {found} or rows that do not sum to 1"
        )

    # -- cost and output error ----------------------------------------------------------------
    def cost_sum(self, z: Tensor, Y: Tensor, weight: Tensor | None = None) -> Tensor:
        """Σ_i w_i cost_i (n · J_data when ``weight`` is None), computed stably from z^(L+1) (n, K),
        prepared targets Y and optional row weights ``weight`` (n,)."""
        if weight is not None:  # per-row costs (n,), then Σ_i w_i cost_i
            if self.name == "sigmoid":
                rows = F.binary_cross_entropy_with_logits(z, Y, reduction="none").sum(dim=1)
            elif self.name == "softmax":
                log_h = torch.log_softmax(z, dim=1)
                rows = -(log_h.gather(1, Y.unsqueeze(1))[:, 0] if _is_index_target(Y) else (Y * log_h).sum(1))
            else:
                rows = (z - Y).pow(2).sum(dim=1)
            return rows @ weight.to(rows.dtype)
        if self.name == "sigmoid":
            return F.binary_cross_entropy_with_logits(z, Y, reduction="sum")
        if self.name == "softmax":
            if _is_index_target(Y):
                return F.cross_entropy(z, Y, reduction="sum")
            return -(Y * torch.log_softmax(z, dim=1)).sum()
        return F.mse_loss(z, Y, reduction="sum")

    def delta(self, h: Tensor, Y: Tensor, inplace: bool = False) -> Tensor:
        """δ^(L+1) = ∂(n·J_data)/∂z^(L+1): h − y (sigmoid, softmax) or 2(h − y) (identity).

        ``inplace``: ``h`` is a temporary of the caller's and may be overwritten.
        """
        if self.name == "identity":
            return h.sub_(Y).mul_(2) if inplace else 2 * (h - Y)
        if _is_index_target(Y):  # h − onehot(y) without building the one-hot matrix
            delta = h if inplace else h.clone()
            return delta.scatter_add_(1, Y.unsqueeze(1), delta.new_full((delta.shape[0], 1), -1.0))
        return h.sub_(Y) if inplace else h - Y


HEADS: dict[str, Head] = {
    "sigmoid": Head("sigmoid", "binary/multilabel"),
    "softmax": Head("softmax", "multiclass"),
    "identity": Head("identity", "regression"),
}


def get_head(name: str | Head) -> Head:
    """Look up an output head by name; ``ValueError`` listing the known names otherwise."""
    if isinstance(name, Head):
        return name
    if not isinstance(name, str):
        raise TypeError(f"output head must be a name (str), got {type(name).__name__}")
    try:
        return HEADS[name]
    except KeyError:
        raise ValueError(f"unknown output head {name!r}; choose one of {sorted(HEADS)}") from None
