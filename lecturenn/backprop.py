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
    "ThetaCost",
    "theta_forward",
    "theta_cost",
    "ridge_penalty",
    "Backprop",
    "backpropagate",
]


def ridge_penalty(thetas, lam: float, n: int, dtype: torch.dtype | None = None) -> Tensor:
    """R = λ/(2n) Σ_l Σ_{i, j≥1} (Θ^(l)_ij)²; the bias column j = 0 is never regularised.
    ``dtype`` widens the sum (the manual path evaluates the cost in at least float32)."""
    return (lam / (2 * n)) * sum(theta[:, 1:].to(dtype or theta.dtype).pow(2).sum() for theta in thetas)


def _forward_layers(x: Tensor, thetas, activation: Activation, keep: bool):
    """Forward propagation; returns z^(L+1) and, if ``keep``, the hidden activations a^(2..L)."""
    a, hidden = x, []
    for theta in thetas[:-1]:
        z = torch.addmm(theta[:, 0], a, theta[:, 1:].t())  # (n, s_l) @ (s_l, s_{l+1}) -> (n, s_{l+1})
        a = activation.g(z)
        if keep:
            hidden.append(a)
    theta = thetas[-1]
    return torch.addmm(theta[:, 0], a, theta[:, 1:].t()), hidden  # z^(L+1) (n, s_{L+1})


def _backward_layers(delta: Tensor, activations, thetas, activation: Activation, needs_x, needs_theta):
    """The δ-recursion from δ^(L+1) (already scaled by ∂J/∂z^(L+1)) down to the lowest layer that
    needs a gradient. ``activations`` are a^(1..L) (a^(1) = x). Returns (∂J/∂x, [Δ^(1..L)])."""
    L = len(thetas)
    needing = [l for l in range(L) if needs_theta[l]]
    stop = -1 if needs_x else (needing[0] if needing else 0)
    grads: list[Tensor | None] = [None] * L
    grad_x = None
    delta = delta.contiguous()
    for l in reversed(range(L)):  # 0-based: thetas[l] is Θ^(l+1), activations[l] is a^(l+1)
        a, theta = activations[l], thetas[l]
        if needs_theta[l]:
            # Δ^(l) = δ^(l+1)ᵀ [1, a^(l)], written in one contiguous (s_{l+1}, s_l + 1) tensor
            grad = torch.empty_like(theta, memory_format=torch.contiguous_format)
            torch.mm(delta.t(), a, out=grad[:, 1:])  # (s_{l+1}, n) @ (n, s_l)
            # bias column Σ_i δ^(l+1)_i, written after the mm: its strided writes touch every
            # row, which would page-fault a fresh buffer one page at a time if it came first
            torch.sum(delta, dim=0, out=grad[:, 0])
            grads[l] = grad
        if l == stop or (l == 0 and not needs_x):
            break
        delta = delta @ theta[:, 1:]  # (n, s_{l+1}) @ (s_{l+1}, s_l) -> (n, s_l)
        if l == 0:
            grad_x = delta  # the input layer has no g'
        else:
            delta = activation.backward(delta, a)  # δ^(l) = (Θ_{:,1:})ᵀ δ^(l+1) .* g'(z^(l))
    return grad_x, grads


def _keep(x: Tensor, thetas) -> bool:
    """Save activations only when a gradient can flow (nothing is saved under ``no_grad``)."""
    return torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in thetas))


def _apply(function: type[torch.autograd.Function], *args):
    """``function.apply(*args)`` without torch's per-call ``inspect.signature`` binding.

    ``Function.apply`` binds the arguments to fill in defaults whenever ``setup_context`` is
    defined (about 50 µs a call, a quarter of a tiny net's training step). Our forwards take
    positional arguments only, so in eager mode we call the C++ apply directly; under
    ``torch.compile`` and functorch transforms torch's own ``apply`` is used unchanged.
    """
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return function.apply(*args)
    return super(torch.autograd.Function, function).apply(*args)


class ThetaForward(torch.autograd.Function):
    """z^(L+1) from x through Θ^(1..L); backward is the δ-recursion.

    Inputs: ``x`` (n, s_1), the hidden :class:`Activation`, ``keep`` (save activations for
    backward?), then Θ^(1), …, Θ^(L). Outputs: z^(L+1) (n, s_{L+1}) and the hidden activations
    a^(2..L) as non-differentiable extras (the ``setup_context`` idiom for saving intermediates);
    :func:`theta_forward` returns only z^(L+1).
    """

    @staticmethod
    def forward(x: Tensor, activation: Activation, keep: bool, *thetas: Tensor):
        z_out, hidden = _forward_layers(x, thetas, activation, keep)
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
        L, saved = ctx.num_layers, ctx.saved_tensors
        grad_x, grads = _backward_layers(
            grad_z,
            saved[:L],
            saved[L:],
            ctx.activation,
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[3:],
        )
        return (grad_x, None, None, *grads)


def theta_forward(x: Tensor, thetas, activation: Activation) -> Tensor:
    """z^(L+1) through :class:`ThetaForward`."""
    return _apply(ThetaForward, x, activation, _keep(x, thetas), *thetas)[0]


class ThetaCost(torch.autograd.Function):
    """J(Θ) on a batch, with the whole of the lecture's backpropagation as its backward:

        δ^(L+1) = a^(L+1) − y,   δ^(l) = (Θ^(l)_{:,1:})ᵀ δ^(l+1) .* g'(z^(l)),
        D^(l) = Δ^(l)/n + (λ/n) [0 | Θ^(l)_{:,1:}]

    Inputs: X (n, s_1), prepared targets Y, the :class:`Activation`, the :class:`Head`, λ,
    ``keep``, then Θ^(1..L). Outputs: J (0-d), then z^(L+1) and a^(2..L) as saved extras.
    """

    @staticmethod
    def forward(X, Y, activation: Activation, head: Head, lam: float, keep: bool, *thetas):
        n = X.shape[0]
        z_out, hidden = _forward_layers(X, thetas, activation, keep)
        # the cost is always evaluated in at least float32 (the layers may run in bf16/fp16)
        z_wide, Y_wide = _widened(z_out, Y)
        J = head.cost_sum(z_wide, Y_wide) / n
        if lam > 0:
            J = J + ridge_penalty(thetas, lam, n, z_wide.dtype)
        return (J, z_out, *hidden)

    @staticmethod
    def setup_context(ctx, inputs, output):
        X, Y, activation, head, lam, keep, *thetas = inputs
        ctx.activation, ctx.head, ctx.lam, ctx.num_layers = activation, head, lam, len(thetas)
        if keep:
            z_out, *hidden = output[1:]
            ctx.mark_non_differentiable(z_out, *hidden)
            ctx.save_for_backward(X, *hidden, *thetas, z_out, Y)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_J, *_unused):
        L, saved = ctx.num_layers, ctx.saved_tensors
        activations, thetas, (z_out, Y) = saved[:L], saved[L : 2 * L], saved[2 * L :]
        n = z_out.shape[0]
        scale = grad_J / n  # 0-d tensor: no host sync
        z_wide, Y_wide = _widened(z_out, Y)
        # δ^(L+1) = (a − y)/n (n, s_{L+1}), in place when h is a fresh tensor (not the identity's z)
        h = ctx.head.h(z_wide)
        delta = ctx.head.delta(h, Y_wide, inplace=h is not z_wide).mul_(scale)
        if delta.dtype != z_out.dtype:
            delta = delta.to(z_out.dtype)
        needs_theta = ctx.needs_input_grad[6:]
        grad_x, grads = _backward_layers(
            delta, activations, thetas, ctx.activation, ctx.needs_input_grad[0], needs_theta
        )
        if ctx.lam > 0:
            for theta, grad in zip(thetas, grads):
                if grad is not None:  # + (λ/n) Θ, the bias column j = 0 excluded
                    grad[:, 1:].addcmul_(theta[:, 1:], scale * ctx.lam)
        return (grad_x, None, None, None, None, None, *grads)


def _widened(z: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
    """z and floating Y in at least float32 (no copies when they already are)."""
    if z.dtype in (torch.float32, torch.float64):
        return z, Y
    wide = torch.promote_types(z.dtype, torch.float32)
    return z.to(wide), Y.to(wide) if Y.is_floating_point() else Y


def theta_cost(X: Tensor, Y: Tensor, thetas, activation: Activation, head: Head, lam: float):
    """(J(Θ), z^(L+1)) through :class:`ThetaCost` (the manual path); z is non-differentiable."""
    out = _apply(ThetaCost, X, Y, activation, head, lam, _keep(X, thetas), *thetas)
    return out[0], out[1]


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
    if not net.plain:
        raise ValueError(
            "backpropagate() follows the lecture's plain network; this one has batchnorm/dropout"
        )
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
