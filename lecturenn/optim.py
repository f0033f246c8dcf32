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
        if norm_bounds is not None:
            norm_bounds = tuple(float(b) for b in norm_bounds)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bool(bias_correction),
            norm_bounds=norm_bounds,
        )
        _check(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """torch's, then the checks of ``__init__`` on the group's own hyperparameters."""
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
    """``ValueError`` naming the hyperparameter of ``group`` that is out of range."""
    lr, betas, eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    if isinstance(lr, Tensor) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"LAMB: lr must be a finite number > 0, got {lr!r}")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"LAMB: betas must be two numbers in [0, 1), got {betas!r}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"LAMB: eps must be a finite number >= 0, got {eps!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"LAMB: weight_decay must be a finite number >= 0, got {weight_decay!r}")
    bounds = group["norm_bounds"]
    if bounds is not None and (len(bounds) != 2 or not 0 <= bounds[0] <= bounds[1] or bounds[1] <= 0):
        raise ValueError(f"LAMB: norm_bounds must be (lo, hi), 0 <= lo <= hi, hi > 0; got {bounds}")
