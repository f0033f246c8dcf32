"""Backpropagation exactly as in the lecture — as a fast ``torch.autograd.Function`` and as a
step-by-step teaching routine that returns every δ^(l), Δ^(l) and D^(l).

Notation (layers 1..L+1, Θ^(l) of shape (s_{l+1}, s_l + 1), column 0 multiplies a_0 = 1):

    forward    z^(l+1) = Θ^(l) [1; a^(l)],        a^(l+1) = g(z^(l+1))
    output     δ^(L+1) = a^(L+1) − y              (see :mod:`lecturenn.heads` for each head)
    recursion  δ^(l)   = (Θ^(l)_{:,1:})ᵀ δ^(l+1) .* g'(z^(l)),   l = L, …, 2
    gradient   Δ^(l)   = Σ_i δ^(l+1) [1; a^(l)]ᵀ
               D^(l)   = Δ^(l)/n + (λ/n) [0 | Θ^(l)_{:,1:}]        = ∂J/∂Θ^(l)

In code the examples are the rows of a batch, so every column vector above becomes a row and the
products become matrix products over the batch: δ is (n, s), Δ^(l) = δ^(l+1)ᵀ [1, a^(l)].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .activations import Activation
from .heads import Head

__all__ = [
    "ThetaForward",
    "HeadCost",
    "RidgePenalty",
    "theta_forward",
    "head_cost",
    "ridge_penalty",
    "Backprop",
    "backpropagate",
]


class ThetaForward(torch.autograd.Function):
    """z^(L+1) from x through Θ^(1..L); backward is the δ-recursion.

    Inputs: ``x`` (n, s_1), the hidden :class:`Activation`, ``keep`` (save activations for
    backward?), then Θ^(1), …, Θ^(L). Output: z^(L+1) (n, s_{L+1}), plus the hidden activations
    a^(2..L) as extra non-differentiable outputs (the ``setup_context`` idiom for saving
    intermediates); :func:`theta_forward` returns only z^(L+1).
    """

    @staticmethod
    def forward(x: Tensor, activation: Activation, keep: bool, *thetas: Tensor):
        a, hidden = x, []
        for theta in thetas[:-1]:
            z = torch.addmm(theta[:, 0], a, theta[:, 1:].t())  # (n, s_{l+1})
            a = activation.g(z)
            if keep:
                hidden.append(a)
        theta = thetas[-1]
        z_out = torch.addmm(theta[:, 0], a, theta[:, 1:].t())  # (n, s_{L+1})
        return (z_out, *hidden)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, activation, keep, *thetas = inputs
        ctx.activation = activation
        ctx.num_layers = len(thetas)
        if keep:
            hidden = output[1:]
            ctx.mark_non_differentiable(*hidden)
            ctx.save_for_backward(x, *hidden, *thetas)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z, *_unused_hidden_grads):
        L = ctx.num_layers
        saved = ctx.saved_tensors
        activations, thetas = saved[:L], saved[L:]  # a^(1..L) (n, s_l); Θ^(1..L)
        needs_x, needs_theta = ctx.needs_input_grad[0], ctx.needs_input_grad[3:]
        # The recursion stops at the lowest Θ that needs a gradient (or runs down to x).
        stop = -1 if needs_x else min((l for l in range(L) if needs_theta[l]), default=0)
        grads: list[Tensor | None] = [None] * L
        grad_x = None
        delta = grad_z.contiguous()  # δ^(L+1), already scaled by ∂J/∂z (e.g. 1/n from the cost)
        for l in reversed(range(L)):  # 0-based: thetas[l] is Θ^(l+1), activations[l] is a^(l+1)
            a, theta = activations[l], thetas[l]
            if needs_theta[l]:
                # Δ^(l) = δ^(l+1)ᵀ [1, a^(l)], written in one contiguous (s_{l+1}, s_l + 1) tensor.
                grad = torch.empty_like(theta, memory_format=torch.contiguous_format)
                torch.sum(delta, dim=0, out=grad[:, 0])  # bias column: Σ_i δ^(l+1)_i
                torch.mm(delta.t(), a, out=grad[:, 1:])  # (s_{l+1}, n) @ (n, s_l)
                grads[l] = grad
            if l == stop or (l == 0 and not needs_x):
                break
            delta = delta @ theta[:, 1:]  # (n, s_{l+1}) @ (s_{l+1}, s_l) -> (n, s_l)
            if l == 0:
                grad_x = delta  # the input layer has no g'
            else:
                delta = ctx.activation.backward(delta, a)  # δ^(l) = ... .* g'(z^(l)), from a^(l)
        return (grad_x, None, None, *grads)


def theta_forward(x: Tensor, thetas, activation: Activation) -> Tensor:
    """z^(L+1) through the manual Function; saves activations only when a gradient can flow."""
    keep = torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in thetas))
    return ThetaForward.apply(x, activation, keep, *thetas)[0]


class HeadCost(torch.autograd.Function):
    """n · J_data from z^(L+1), with the lecture's output error as its gradient.

    backward: ∂J/∂z^(L+1) = δ^(L+1) · (grad_out) with δ^(L+1) = h − y (or 2(h − y)); the caller
    divides by n, so the gradients reaching Θ are Δ^(l)/n.
    """

    @staticmethod
    def forward(z: Tensor, Y: Tensor, head: Head) -> Tensor:
        return head.cost_sum(z, Y)

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, Y, head = inputs
        ctx.head = head
        ctx.save_for_backward(z, Y)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        z, Y = ctx.saved_tensors
        grad_z = None
        if ctx.needs_input_grad[0]:
            grad_z = ctx.head.delta(ctx.head.h(z), Y).mul_(grad_out)  # δ^(L+1) (n, K)
        return grad_z, None, None


def head_cost(z: Tensor, Y: Tensor, head: Head) -> Tensor:
    """n · J_data through :class:`HeadCost` (the manual path's output error)."""
    return HeadCost.apply(z, Y, head)


class RidgePenalty(torch.autograd.Function):
    """R = c · Σ_l Σ_{i, j≥1} (Θ^(l)_ij)² with c = λ/(2n); backward: 2c [0 | Θ^(l)_{:,1:}] = (λ/n)[0 | Θ]."""

    @staticmethod
    def forward(scale: float, *thetas: Tensor) -> Tensor:
        return scale * sum(theta[:, 1:].pow(2).sum() for theta in thetas)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.scale = inputs[0]
        ctx.save_for_backward(*inputs[1:])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        grads = []
        for theta, needs in zip(ctx.saved_tensors, ctx.needs_input_grad[1:]):
            grad = None
            if needs:
                grad = theta * (2 * ctx.scale * grad_out)  # (λ/n) Θ
                grad[:, 0] = 0  # the bias column is not regularised
            grads.append(grad)
        return (None, *grads)


def ridge_penalty(thetas, scale: float) -> Tensor:
    """λ/(2n) Σ Θ² (bias column excluded) through :class:`RidgePenalty`; ``scale`` = λ/(2n)."""
    return RidgePenalty.apply(scale, *thetas)


@dataclass
class Backprop:
    """Everything the lecture's backpropagation computes, keyed by the lecture's layer numbers.

    ``a[l]``  a^(l) (n, s_l), l = 1..L+1 (no bias unit; a_0 = 1 is implicit)
    ``z[l]``  z^(l) (n, s_l), l = 2..L+1
    ``delta[l]``  δ^(l) (n, s_l), l = 2..L+1 (one row per example)
    ``Delta[l]``  Δ^(l) (s_{l+1}, s_l + 1), l = 1..L (summed over the batch)
    ``D[l]``      D^(l) = Δ^(l)/n + (λ/n)[0 | Θ^(l)_{:,1:}] = ∂J/∂Θ^(l)
    ``cost``      J(Θ) (0-d tensor)
    """

    a: dict[int, Tensor]
    z: dict[int, Tensor]
    delta: dict[int, Tensor]
    Delta: dict[int, Tensor]
    D: dict[int, Tensor]
    cost: Tensor


@torch.no_grad()
def backpropagate(net, X, Y, lam: float = 0.0) -> Backprop:
    """The teaching path: run backpropagation on a batch with the slides' formulas, step by step.

    Plain tensor algebra with the ones column written out — slower than ``net.cost(X, Y,
    lam).backward()`` but every intermediate is returned; the two agree to round-off.
    """
    X, Y = net.check_batch(X, Y, lam)
    n, L = X.shape[0], net.num_layers
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
        Delta[l] = delta[l + 1].T @ a_with_bias  # Δ^(l) = Σ_i δ^(l+1) [1; a^(l)]ᵀ
        reg = net.theta(l).clone()
        reg[:, 0] = 0  # the bias column is not regularised
        D[l] = Delta[l] / n + (lam / n) * reg
    cost = net.head.cost_sum(z[L + 1], Y) / n + net.penalty(lam, n)
    return Backprop(a=a, z=z, delta=delta, Delta=Delta, D=D, cost=cost)
