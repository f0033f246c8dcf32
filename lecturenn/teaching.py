"""The teaching path: the lecture's backpropagation on a batch, step by step, every δ^(l), Δ^(l) and
D^(l) returned by layer number (plain tensor algebra with the ones column written out). The fast
path, :class:`lecturenn.backprop.ThetaCost`, is tested equal to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Backprop", "Propagation", "backpropagate"]


@dataclass
class Propagation:
    """Forward propagation by layer number: ``a[l]`` for l = 1..L+1, ``z[l]`` for l = 2..L+1."""

    a: dict[int, Tensor]
    z: dict[int, Tensor]

    @property
    def h(self) -> Tensor:
        """h_Θ(x) = a^(L+1)."""
        return self.a[max(self.a)]


@dataclass
class Backprop:
    """Everything the lecture's backpropagation computes, keyed by the lecture's layer numbers.

    ``a[l]``  a^(l) (n, s_l), l = 1..L+1 (no bias unit; a_0 = 1 is implicit)
    ``z[l]``  z^(l) (n, s_l), l = 2..L+1
    ``delta[l]``  δ^(l) (n, s_l), l = 2..L+1 (one row per example)
    ``Delta[l]``  Δ^(l) (s_{l+1}, s_l + 1), l = 1..L (summed over the batch)
    ``D[l]``      D^(l) = Δ^(l)/W + (λ/W)[0 | Θ^(l)_{:,1:}] = ∂J/∂Θ^(l)  (W = Σ_i w_i, or n)
    ``cost``      J(Θ) (0-d tensor)
    """

    a: dict[int, Tensor]
    z: dict[int, Tensor]
    delta: dict[int, Tensor]
    Delta: dict[int, Tensor]
    D: dict[int, Tensor]
    cost: Tensor


@torch.no_grad()
def backpropagate(net, X, Y, lam: float = 0.0, sample_weight=None) -> Backprop:
    """The teaching path: run backpropagation on a batch with the slides' formulas, step by step.

    Plain tensor algebra with the ones column written out — slower than ``net.cost(X, Y,
    lam).backward()`` but every intermediate is returned; the two agree to round-off. With
    ``sample_weight`` w (n,), each example's term of Δ^(l) is weighted: Δ^(l) = Σ_i w_i δ_i^(l+1)
    [1; a_i^(l)]ᵀ and W = Σ_i w_i replaces n (the δ^(l) stay the per-example errors).
    """
    if not net.plain:
        raise ValueError(
            "backpropagate() follows the lecture's plain network; this one has batchnorm/dropout"
        )
    X, Y = net.check_batch(X, Y, lam)
    w = net.check_sample_weight(sample_weight, X)
    n, L = X.shape[0], net.num_layers
    W = n if w is None else w.sum()
    fp = net.propagate(X)
    a, z = fp.a, fp.z
    ones = torch.ones(n, 1, dtype=X.dtype, device=X.device)
    delta = {L + 1: net.head.delta(a[L + 1], Y)}  # δ^(L+1) = a^(L+1) − y
    for l in range(L, 1, -1):  # δ^(l) = (Θ^(l)_{:,1:})ᵀ δ^(l+1) .* g'(z^(l))
        theta = net.theta(l)
        delta[l] = (delta[l + 1] @ theta[:, 1:]) * net.activation.gprime(a[l])  # (n, s_l)
    Delta, D = {}, {}
    for l in range(1, L + 1):
        a_with_bias = torch.cat([ones, a[l]], dim=1)  # [1, a^(l)]  (n, s_l + 1)
        weighted = delta[l + 1] if w is None else delta[l + 1] * w[:, None]  # w_i δ_i^(l+1)
        Delta[l] = weighted.T @ a_with_bias  # Δ^(l) = Σ_i w_i δ^(l+1) [1; a^(l)]ᵀ
        reg = net.theta(l).clone()
        reg[:, 0] = 0  # the bias column is not regularised
        D[l] = Delta[l] / W + (lam / W) * reg
    cost = net.head.cost_sum(z[L + 1], Y, w) / W + net.penalty(lam, W)
    return Backprop(a=a, z=z, delta=delta, Delta=Delta, D=D, cost=cost)
