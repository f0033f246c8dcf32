"""LAMB, the layer-wise adaptive large-batch optimizer the lecture names beside Adagrad and Adam.

You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer, Hsieh (2019), "Large Batch
Optimization for Deep Learning: Training BERT in 76 minutes", arXiv:1904.00962, Algorithm 2.
For each layer x^(i) (here: each parameter tensor, i.e. each Θ^(l), bias column included) and step t:

    m_t = β1 m_{t-1} + (1 − β1) g_t                  v_t = β2 v_{t-1} + (1 − β2) g_t²
    m̂_t = m_t / (1 − β1^t)                           v̂_t = v_t / (1 − β2^t)
    r_t = m̂_t / (√v̂_t + ε)                          (Adam's direction)
    u_t = r_t + λ x_t                                (decoupled weight decay λ = ``weight_decay``)
    x_{t+1} = x_t − η φ(‖x_t‖) / ‖u_t‖ · u_t         (layer-wise trust ratio; ‖·‖ the Frobenius norm)

φ(z) = min(max(z, γ_l), γ_u) with ``norm_bounds = (γ_l, γ_u)``, the identity by default. The trust
ratio is 1 when ‖x_t‖ or ‖u_t‖ is 0 (a zero-initialised layer, or a zero update). torch.optim has no
LAMB, and the PyPI packages that do are unmaintained (torch-optimizer: last release 2021), hence
this one class.

Where it helps: large batches (thousands of rows). Each layer's step is η·‖x‖ in size whatever the
scale of its gradient, so one learning rate suits every layer, and the learning rate can grow with
the batch where Adam's would diverge. At the lecture's batch sizes (32–256) it behaves much like Adam.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .validation import check_number

__all__ = ["LAMB"]


class LAMB(torch.optim.Optimizer):
    """LAMB (see the module docstring for the update and its source).

    Args:
        params: the parameters (or parameter groups); each tensor is one layer of the trust ratio.
        lr: η > 0.
        betas: (β1, β2), each in [0, 1).
        eps: ε ≥ 0, added to √v̂ (default 1e-6, the paper's).
        weight_decay: λ ≥ 0, decoupled (added to the update direction, not to the gradient).
        bias_correction: divide the moments by (1 − β^t) as in Algorithm 2 (default True).
        norm_bounds: (γ_l, γ_u) clipping ‖x‖ in φ, with 0 ≤ γ_l ≤ γ_u, γ_u > 0; ``None``: φ is the identity.

    Raises ``ValueError`` naming the argument for a value out of range (also in every parameter group).
    Sparse gradients and complex parameters are refused.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        bias_correction: bool = True,
        norm_bounds: tuple[float, float] | None = None,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
            norm_bounds=norm_bounds,
        )
        _check(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """torch's, with the checks of ``__init__`` on the group's own hyperparameters first (a bad group
        is refused before it is added) and after (numbers stored as floats)."""
        _check({**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}})
        super().add_param_group(param_group)
        _check(self.param_groups[-1])

    @torch.no_grad()
    def step(self, closure=None):
        """One LAMB step for every parameter with a gradient; returns the closure's loss, if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse or p.is_complex():
                    raise RuntimeError("LAMB does not support sparse gradients or complex parameters")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(g, 1 - beta1)  # m = β1 m + (1 − β1) g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v = β2 v + (1 − β2) g²
                c1, c2 = (1 - beta1**t, 1 - beta2**t) if group["bias_correction"] else (1.0, 1.0)
                # r = m̂ / (√v̂ + ε) = (m / c1) / (√v / √c2 + ε)
                update = (m / c1).div_(v.sqrt().div_(math.sqrt(c2)).add_(group["eps"]))
                if not group["eps"]:  # v = 0 (no gradient yet, so m = 0): r = 0, not 0/0
                    update.masked_fill_(v == 0, 0.0)
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])  # u = r + λ x
                w_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                phi = w_norm if group["norm_bounds"] is None else w_norm.clamp(*group["norm_bounds"])
                # φ(‖x‖)/‖u‖, or 1 when either norm is 0 (no host sync: a 0-d tensor throughout)
                ratio = torch.where((w_norm > 0) & (u_norm > 0), phi / u_norm, torch.ones_like(w_norm))
                p.add_(update.mul_(ratio), alpha=-group["lr"])
        return loss


def _check(group: dict) -> None:
    """Check ``group``'s hyperparameters in place (numbers as floats, the pairs as tuples): a
    ``TypeError`` for something that is not a number (a bool, a string, a tensor) or not a pair, a
    ``ValueError`` for a number out of range — each naming the hyperparameter (``LAMB: lr`` ...)."""
    if isinstance(group["lr"], Tensor):  # as alpha= of the update: a Python number
        raise TypeError(f"LAMB: lr must be a Python number, not a tensor: got {group['lr']!r}")
    group["lr"] = check_number(group["lr"], "LAMB: lr", low=0, low_open=True)
    betas = _pair(group["betas"], "betas")
    group["betas"] = tuple(
        check_number(b, f"LAMB: betas[{i}]", low=0, high=1, high_open=True) for i, b in enumerate(betas)
    )
    group["eps"] = check_number(group["eps"], "LAMB: eps", low=0)
    group["weight_decay"] = check_number(group["weight_decay"], "LAMB: weight_decay", low=0)
    if not isinstance(group["bias_correction"], bool):
        raise TypeError(f"LAMB: bias_correction must be True or False, got {group['bias_correction']!r}")
    bounds = group["norm_bounds"]
    if bounds is not None:
        pair = _pair(bounds, "norm_bounds")
        lo, hi = (check_number(b, f"LAMB: norm_bounds[{i}]", low=0) for i, b in enumerate(pair))
        if not lo <= hi or hi <= 0:
            raise ValueError(f"LAMB: norm_bounds must be (lo, hi), 0 <= lo <= hi, hi > 0; got {bounds!r}")
        group["norm_bounds"] = (lo, hi)


def _pair(value, name: str) -> tuple:
    """``value`` as a 2-tuple, else a ``TypeError`` naming ``LAMB: name``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"LAMB: {name} must be a pair of numbers, got {value!r}")
    return tuple(value)
