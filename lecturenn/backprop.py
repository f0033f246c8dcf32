"""Backpropagation exactly as in the lecture: the one δ-recursion every caller uses.

Notation (layers 1..L+1, Θ^(l) of shape (s_{l+1}, s_l + 1), column 0 multiplies a_0 = 1; sample
weights w_i with W = Σ_i w_i, or w_i = 1 and W = n without them):

    forward    z^(l+1) = Θ^(l) [1; a^(l)],        a^(l+1) = g(z^(l+1))
    output     δ^(L+1) = a^(L+1) − y              (see :mod:`lecturenn.heads` for each head)
    recursion  δ^(l)   = (Θ^(l)_{:,1:})ᵀ δ^(l+1) .* g'(z^(l)),   l = L, …, 2
    gradient   Δ^(l)   = Σ_i w_i δ_i^(l+1) [1; a_i^(l)]ᵀ
               D^(l)   = Δ^(l)/W + (λ/W) [0 | Θ^(l)_{:,1:}]        = ∂J/∂Θ^(l)

In code the examples are the rows of a batch, so every column vector above becomes a row and the
products become matrix products over the batch: δ is (n, s), Δ^(l) = δ^(l+1)ᵀ [1, a^(l)].

The pieces — :func:`forward_layers`, :func:`output_error`, :func:`backward_layers` — are used by
:class:`ThetaCost` / :class:`ThetaForward` (``net.cost(...).backward()``, the LightningModule) and,
back to back without autograd, by :func:`cost_and_gradient` (the scikit-learn estimators). Speed
tricks are options of these functions (``out=`` gradient tensors, the bias-augmented ``buffers``
with g written straight into them by :meth:`Activation.into`, the ``flat`` ridge term, 1/n as the
Δ matmul's ``alpha``) and of the registry entries (a head's fused ``cost_and_delta``), not copies.
The step-by-step teaching routine that returns every δ^(l), Δ^(l) and D^(l) is
:func:`lecturenn.teaching.backpropagate` (re-exported here).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .activations import Activation, get_activation
from .autograd_support import (
    NO_FORWARD_AD,
    apply_function,
    graph_gradient,
    keep_saved,
    transforms_active,
    twin,
)
from .heads import Head, get_head
from .regularization import check_lam
from .sample_weight import check_weight_shape
from .theta import with_bias_unit

_CONTIGUOUS = torch.contiguous_format

__all__ = [
    "ThetaForward",
    "ThetaCost",
    "theta_forward",
    "theta_cost",
    "ridge_penalty",
    "forward_layers",
    "output_error",
    "backward_layers",
    "cost_and_gradient",
    "Workspace",
    "differentiable_cost",
    "Backprop",
    "backpropagate",
]


def ridge_penalty(thetas, lam: float, n, dtype: torch.dtype | None = None) -> Tensor:
    """R = λ/(2n) Σ_l Σ_{i, j≥1} (Θ^(l)_ij)²; the bias column j = 0 is never regularised. ``n`` is
    the batch's weight W (its row count, or Σ w_i, a 0-d tensor). ``dtype`` widens the sum (the
    manual path evaluates the cost in at least float32)."""
    return (lam / (2 * n)) * _sum_of_squares(thetas, dtype)


def _sum_of_squares(thetas, dtype: torch.dtype | None = None) -> Tensor:
    """Σ_l Σ_{i, j≥1} (Θ^(l)_ij)², in ``dtype`` (default: Θ's)."""
    return sum(theta[:, 1:].to(dtype or theta.dtype).pow(2).sum() for theta in thetas)


def forward_layers(x: Tensor, thetas, activation: Activation, keep: bool, workspace=None):
    """Forward propagation; returns z^(L+1) and, if ``keep``, the activations a^(1..L) the
    δ-recursion reads (:func:`backward_layers` takes them as they are). Plain torch ops:
    differentiable by autograd when called with grad enabled.

    One computation, z^(l+1) = Θ^(l) [1; a^(l)] = [1, a^(l)] Θ^(l)ᵀ, as on the slides: the bias unit
    is column 0 of the activations (:func:`lecturenn.theta.with_bias_unit`), so a layer is one matmul
    (no Θ_{:,0} / Θ_{:,1:} views, no bias broadcast) and every path that computes z — this one, the
    autograd twin, ``propagate`` — agrees bitwise. With ``keep`` (the manual Functions' training
    forward) the [1, a^(l)] are returned, [1, X] first, and the backward's Δ^(l) = δ^(l+1)ᵀ [1, a^(l)]
    is one matmul too, bias column included (:func:`backward_layers`).

    ``workspace`` (a :class:`Workspace` built on these Θ; the estimators): the same layout in the
    workspace's reused buffers. ``x`` is then [1, X] (n, s_1 + 1) and g writes a^(l+1) straight into
    the buffer whose column 0 holds the bias unit (:meth:`Activation.into`); returns [1, X] followed
    by the ([1, a^(l)], a^(l)) pairs of those buffers.
    """
    if workspace is not None:
        a, hidden = x, workspace.buffers(x.shape[0])
        for theta_t, (buf, inner) in zip(workspace.transposed, hidden):
            activation.into(torch.mm(a, theta_t), inner)  # (n, s_l + 1) @ (s_l + 1, s_{l+1})
            a = buf
        return torch.mm(a, workspace.transposed[-1]), [x, *hidden]
    a = with_bias_unit(x)  # [1, X] (n, s_1 + 1)
    kept = [a] if keep else []
    for theta in thetas[:-1]:
        z = torch.mm(a, theta.t())  # (n, s_l + 1) @ (s_l + 1, s_{l+1}) -> (n, s_{l+1})
        a = with_bias_unit(activation.g(z))  # [1, a^(l+1)] (n, s_{l+1} + 1)
        if keep:
            kept.append(a)
    return torch.mm(a, thetas[-1].t()), kept  # z^(L+1) (n, s_{L+1})


def _total(weight: Tensor | None, n: int):
    """W = Σ_i w_i (a 0-d tensor), or the row count n without weights."""
    return n if weight is None else weight.sum()


def _data_cost(head: Head, z: Tensor, Y: Tensor, weight: Tensor | None) -> Tensor:
    """Σ_i w_i cost_i, evaluated in at least float32 (the layers may run in bf16/fp16)."""
    z_wide, Y_wide = _widened(z, Y)
    return head.cost_sum(z_wide, Y_wide, weight)


def output_error(head: Head, z: Tensor, Y: Tensor, weight: Tensor | None, scale) -> Tensor:
    """δ^(L+1) = ∂J/∂z^(L+1) (n, s_{L+1}): the head's a − y (:meth:`Head.delta`), each row i times
    ``scale``·w_i (``scale`` = ∂(output)/∂J / W, a number or 0-d tensor), in z's dtype."""
    z_wide, Y_wide = _widened(z, Y)
    h = head.h(z_wide)  # in place below when h is a fresh tensor (not the identity's z)
    delta = head.delta(h, Y_wide, inplace=h is not z_wide)
    delta.mul_(scale if weight is None else (weight * scale).unsqueeze(1).to(delta.dtype))
    return delta if delta.dtype == z.dtype else delta.to(z.dtype)


def backward_layers(
    delta: Tensor,
    activations,
    thetas,
    activation: Activation,
    needs_x,
    needs_theta,
    out=None,
    workspace=None,
    alpha: float | None = None,
):
    """The δ-recursion from δ^(L+1) (already scaled by ∂J/∂z^(L+1)) down to the lowest layer that
    needs a gradient — the one implementation every caller uses. ``activations``: the bias-augmented
    a^(1..L) that :func:`forward_layers` (``keep=True``) returned: [1, X], then [1, a^(l)] (n, s_l + 1)
    for each hidden layer, or with a ``workspace`` its ([1, a^(l)], a^(l)) pairs. ``out``: optional
    Θ-shaped contiguous tensors to write Δ^(l) into (e.g. preallocated ``.grad`` tensors); fresh
    contiguous tensors otherwise. ``alpha``: a number every Δ^(l) is multiplied by (the recursion is
    linear in δ, so this equals scaling δ^(L+1); it costs nothing, being the matmul's own factor).
    ``workspace``: Θ^(l)_{:,1:} from its views instead of slicing Θ. Returns (∂J/∂x, [α·Δ^(1..L)])."""
    L = len(thetas)
    needing = [l for l in range(L) if needs_theta[l]]
    stop = -1 if needs_x else (needing[0] if needing else 0)
    grads: list[Tensor | None] = [None] * L
    grad_x = None
    delta = delta.contiguous()
    weights = workspace.weights if workspace is not None else None  # Θ^(l)_{:,1:}, else sliced
    for l in reversed(range(L)):  # 0-based: thetas[l] is Θ^(l+1), activations[l] is [1, a^(l+1)]
        kept = activations[l]
        a_aug = kept[0] if isinstance(kept, tuple) else kept  # [1, a^(l)] (n, s_l + 1)
        if needs_theta[l]:
            # Δ^(l) = δ^(l+1)ᵀ [1, a^(l)]: one (s_{l+1}, n) @ (n, s_l + 1) matmul, bias column included
            if out is None and alpha is None:
                grad = torch.mm(delta.t(), a_aug)  # a fresh contiguous (s_{l+1}, s_l + 1) tensor
            else:
                grad = out[l] if out is not None else torch.empty_like(thetas[l], memory_format=_CONTIGUOUS)
                torch.addmm(grad, delta.t(), a_aug, beta=0, alpha=1 if alpha is None else alpha, out=grad)
            grads[l] = grad
        if l == stop or (l == 0 and not needs_x):
            break
        weight = weights[l] if weights is not None else thetas[l][:, 1:]  # Θ^(l)_{:,1:} (s_{l+1}, s_l)
        delta = torch.mm(delta, weight)  # (n, s_{l+1}) @ (s_{l+1}, s_l) -> (n, s_l)
        if l == 0:
            grad_x = delta  # the input layer has no g'
        else:  # δ^(l) = (Θ_{:,1:})ᵀ δ^(l+1) .* g'(z^(l)), g' from the saved a^(l)
            a = kept[1] if isinstance(kept, tuple) else kept[:, 1:]  # a^(l) (n, s_l)
            delta = activation.backward(delta, a)
    return grad_x, grads


def _add_scaled(target: Tensor, x: Tensor, coef) -> None:
    """target += coef · x, for a number or a 0-d tensor ``coef`` (no host sync)."""
    if isinstance(coef, Tensor):
        target.addcmul_(x, coef)
    else:
        target.add_(x, alpha=coef)


def _add_ridge_gradient(grads, thetas, coef) -> None:
    """D^(l) += coef · [0 | Θ^(l)_{:,1:}] (coef = λ/W times ∂(output)/∂J); the bias column is free."""
    for theta, grad in zip(thetas, grads):
        if grad is not None:
            _add_scaled(grad[:, 1:], theta[:, 1:], coef)


class Workspace:
    """What the estimators' training step reuses between calls of :func:`cost_and_gradient`: the
    views of Θ the recursion reads (Θ^(l)ᵀ, Θ^(l)_{:,1:}), the gradient tensors D^(l), the
    bias-augmented buffers [1, a^(l)] per batch size, and optionally one flat θ behind every Θ^(l).
    Made once, so a batch costs only its matmuls and element-wise kernels (each view made per call
    costs about as much as a small kernel on the CPU).

    ``thetas``: Θ^(1..L), not requiring grad (``detach()``-ed views); ``grads``: Θ-shaped
    contiguous tensors D^(l) are written into; ``flat``: ``(θ, d)`` when every Θ^(l) is a view of
    the 1-D θ and every D^(l) the same view of d — the ridge term is then computed on the flat
    tensors (three calls in all instead of a few per layer)."""

    def __init__(self, thetas, grads, flat=None):
        self.thetas, self.grads = list(thetas), list(grads)
        _check_workspace(self.thetas, self.grads, flat)
        self.transposed = [theta.t() for theta in self.thetas]  # Θ^(l)ᵀ (s_l + 1, s_{l+1})
        self.weights = [theta[:, 1:] for theta in self.thetas]  # Θ^(l)_{:,1:} (s_{l+1}, s_l)
        self.flat = None
        if flat is not None:
            theta, d = flat
            mask = torch.ones_like(theta)  # 0 on the bias columns, 1 elsewhere
            offset = 0
            for t in self.thetas:
                mask[offset : offset + t.numel()].view(t.shape)[:, 0] = 0
                offset += t.numel()
            self.flat = (theta, d, mask, torch.empty_like(theta))  # the last holds [0 | Θ_{:,1:}]
        self._buffers: dict[int, list[tuple[Tensor, Tensor]]] = {}

    def buffers(self, n: int) -> list[tuple[Tensor, Tensor]]:
        """([1, a^(l)] (n, s_l + 1), its view a^(l)) for the hidden layers, the ones column written
        once; kept for the last few batch sizes seen (batch, last batch, validation, ...)."""
        bufs = self._buffers.get(n)
        if bufs is None:
            t = self.thetas[0]
            bufs = []
            for theta in self.thetas[:-1]:
                buf = torch.empty(n, theta.shape[0] + 1, dtype=t.dtype, device=t.device)
                buf[:, 0] = 1
                bufs.append((buf, buf[:, 1:]))
            if len(self._buffers) > 4:
                self._buffers.clear()
            self._buffers[n] = bufs
        return bufs


def _check_workspace(thetas, grads, flat) -> None:
    """``ValueError`` unless the workspace's tensors fit together (checked once, when it is made)."""
    if not thetas or len(grads) != len(thetas):
        raise ValueError(
            f"Workspace needs Θ^(1..L) and as many gradient tensors, got {len(thetas)} and {len(grads)}"
        )
    for l, (theta, grad) in enumerate(zip(thetas, grads), start=1):
        if not isinstance(theta, Tensor) or theta.ndim != 2 or theta.requires_grad:
            raise ValueError(
                f"Workspace: Θ^({l}) must be a 2-D tensor that does not require grad (detach() it)"
            )
        if not isinstance(grad, Tensor) or grad.shape != theta.shape or not grad.is_contiguous():
            raise ValueError(
                f"Workspace: D^({l}) must be a contiguous tensor of Θ^({l})'s shape {tuple(theta.shape)}"
            )
    if flat is None:
        return
    for name, whole, parts in (("θ", flat[0], thetas), ("d", flat[1], grads)):
        offset = whole.storage_offset()
        for l, t in enumerate(parts, start=1):
            same = whole.ndim == 1 and t.untyped_storage().data_ptr() == whole.untyped_storage().data_ptr()
            if not (same and t.is_contiguous() and t.storage_offset() == offset):
                raise ValueError(
                    f"Workspace flat=(θ, d): layer {l} is not the next contiguous view of the 1-D {name}; "
                    "make every Θ^(l) (and D^(l)) consecutive slices of it, or leave flat out"
                )
            offset += t.numel()
        if offset - whole.storage_offset() != whole.numel():
            raise ValueError(
                f"Workspace flat=(θ, d): {name} has {whole.numel()} entries, the layers {offset}"
            )


def cost_and_gradient(
    X,
    Y,
    thetas,
    activation: Activation,
    head: Head,
    lam: float,
    weight=None,
    out=None,
    workspace: Workspace | None = None,
    loss: Tensor | None = None,
):
    """J(Θ) on a batch and D^(l) = ∂J/∂Θ^(l) written into ``out`` (or fresh tensors), without autograd:
    :class:`ThetaCost`'s forward and backward run back to back (the estimators' training step).
    Θ must not require grad (pass ``detach()``-ed views). Returns (J (0-d), [D^(1..L)]).

    Checked (cheaply, per call): λ, the batch is not empty, the weights' shape, the workspace's Θ.
    The caller promises what a check would cost a pass over the data for: with a workspace, column
    0 of X is all ones; the weights' values are finite, ≥ 0, with Σw > 0
    (:func:`lecturenn.sample_weight.check_weight_values`).

    Speed options: a ``workspace`` built on these Θ (:class:`Workspace`: X is then [1, X], D^(l) go
    into its ``grads``); ``loss``, a 0-d tensor to which W·J (Σ_i w_i cost_i + λ/2 ΣΘ²) is added
    on the device instead of returning J (an epoch's running sum; returns (``loss``, [D]) then). Without
    sample weights the head's fused ``cost_and_delta`` is used where it has one and 1/n is folded
    into the Δ matmuls."""
    lam = check_lam(lam)
    if not isinstance(activation, Activation) or not isinstance(head, Head):
        activation, head = get_activation(activation), get_head(head)
    if X.shape[0] == 0:
        raise ValueError("cost_and_gradient: the batch X has no rows; J is undefined for W = 0")
    if weight is not None:
        check_weight_shape(weight, X.shape[0])
    if workspace is not None and any(a is not b for a, b in zip(thetas, workspace.thetas)):
        raise ValueError("cost_and_gradient: thetas are not the tensors the workspace was built on")
    z_out, activations = forward_layers(X, thetas, activation, True, workspace)
    flat = None if workspace is None else workspace.flat
    if workspace is not None:
        out = workspace.grads
    if weight is None:  # W = n, a number: 1/n rides on the Δ matmuls (backward_layers' alpha)
        W = X.shape[0]
        cost, delta = _cost_and_error(head, z_out, Y)  # Σ_i cost_i, δ^(L+1) unscaled (n, s_{L+1})
        alpha = 1.0 / W
        J = loss.add_(cost) if loss is not None else cost.mul_(alpha)
    else:
        W = weight.sum()
        cost = _data_cost(head, z_out, Y, weight)
        J = loss.add_(cost) if loss is not None else cost / W
        delta, alpha = output_error(head, z_out, Y, weight, 1.0 / W), None  # δ^(L+1) (n, s_{L+1})
    masked = None
    if lam > 0:
        if flat is not None:  # [0 | Θ_{:,1:}] of every layer at once; R = λ/(2W) Σ (masked · θ)
            masked = torch.mul(flat[0], flat[2], out=flat[3])
            ridge = torch.dot(masked, flat[0])
        else:
            ridge = _sum_of_squares(thetas, J.dtype)
        if loss is not None:  # W·J gets λ/2 ΣΘ²
            J.add_(ridge, alpha=lam / 2)
        elif weight is None:
            J.add_(ridge, alpha=lam / (2 * W))
        else:
            J = J + (lam / (2 * W)) * ridge
    needs = [True] * len(thetas)
    _, grads = backward_layers(delta, activations, thetas, activation, False, needs, out, workspace, alpha)
    if masked is not None:  # D += (λ/W) [0 | Θ_{:,1:}], all layers in one call
        _add_scaled(flat[1], masked, lam / W)
    elif lam > 0:
        _add_ridge_gradient(grads, thetas, lam / W)
    return J, grads


def _cost_and_error(head: Head, z: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
    """(Σ_i cost_i, unscaled δ^(L+1)) in at least float32, δ back in z's dtype
    (:meth:`Head.cost_and_error`)."""
    z_wide, Y_wide = _widened(z, Y)
    cost, delta = head.cost_and_error(z_wide, Y_wide)
    return cost, delta if delta.dtype == z.dtype else delta.to(z.dtype)


def differentiable_cost(X, Y, weight, thetas, activation: Activation, head: Head, lam: float):
    """(J(Θ), z^(L+1)): the same cost in plain torch ops, for autograd to differentiate (any order,
    any torch.func transform) — the twin of :class:`ThetaCost`'s forward."""
    z_out, _ = forward_layers(X, thetas, activation, keep=False)
    W = _total(weight, X.shape[0])
    J = _data_cost(head, z_out, Y, weight) / W
    return (J + ridge_penalty(thetas, lam, W, J.dtype) if lam > 0 else J), z_out


class ThetaForward(torch.autograd.Function):
    """z^(L+1) from x through Θ^(1..L); backward is the δ-recursion.

    Inputs: ``x`` (n, s_1), the hidden :class:`Activation`, ``keep`` (save activations for
    backward?), then Θ^(1), …, Θ^(L). Outputs: z^(L+1) (n, s_{L+1}) and, with ``keep``, the
    bias-augmented activations [1, X], [1, a^(2..L)] as non-differentiable extras (the
    ``setup_context`` idiom for saving intermediates; :func:`forward_layers`);
    :func:`theta_forward` returns only z^(L+1). Double backward (``create_graph=True``) recomputes
    the forward in plain ops and lets autograd differentiate it; under torch.func transforms
    :func:`theta_forward` runs those plain ops instead; ``torch.autograd.forward_ad`` raises.
    """

    @staticmethod
    def forward(x: Tensor, activation: Activation, keep: bool, *thetas: Tensor):
        z_out, activations = forward_layers(x, thetas, activation, keep)
        return (z_out, *activations)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, activation, keep, *thetas = inputs
        ctx.activation = activation
        ctx.num_layers = len(thetas)
        ctx.set_materialize_grads(False)  # the extras get no gradient: no zero tensors made for them
        if keep:
            activations = output[1:]
            ctx.mark_non_differentiable(*activations)
            ctx.save_for_backward(x, *activations, *thetas)  # x itself for the double-backward twin

    @staticmethod
    def backward(ctx, grad_z, *_unused_hidden_grads):
        if grad_z is None:  # no gradient reached z^(L+1) (grads are not materialised)
            return (None,) * (3 + ctx.num_layers)
        L, saved = ctx.num_layers, ctx.saved_tensors
        x, thetas, needs = saved[0], saved[L + 1 :], (ctx.needs_input_grad[0], *ctx.needs_input_grad[3:])
        z = twin(lambda: forward_layers(x, thetas, ctx.activation, keep=False)[0], x, thetas)
        if z is not None:  # create_graph=True: a gradient that is itself differentiable
            grad_x, *grads = graph_gradient(z, grad_z, [x, *thetas], needs)
            return (grad_x, None, None, *grads)
        activations = saved[1 : L + 1]
        grad_x, grads = backward_layers(grad_z, activations, thetas, ctx.activation, needs[0], needs[1:])
        return (grad_x, None, None, *grads)

    @staticmethod
    def jvp(ctx, *tangents):
        raise NotImplementedError(NO_FORWARD_AD)


def theta_forward(x: Tensor, thetas, activation: Activation) -> Tensor:
    """z^(L+1) through :class:`ThetaForward` (``activation`` may be a name)."""
    activation = get_activation(activation)
    if transforms_active():  # torch.func: the plain-ops twin, which every transform supports
        return forward_layers(x, thetas, activation, keep=False)[0]
    return apply_function(ThetaForward, x, activation, keep_saved(x, thetas), *thetas)[0]


class ThetaCost(torch.autograd.Function):
    """J(Θ) on a batch, with the whole of the lecture's backpropagation as its backward:

        δ^(L+1)_i = (a^(L+1)_i − y_i) w_i/W,   δ^(l) = (Θ^(l)_{:,1:})ᵀ δ^(l+1) .* g'(z^(l)),
        D^(l) = δ^(l+1)ᵀ [1, a^(l)] + (λ/W) [0 | Θ^(l)_{:,1:}]    (W = Σ_i w_i; without weights
                                                                  w_i = 1, W = n: D = Δ/n + (λ/n)Θ)

    Inputs: X (n, s_1), prepared targets Y, sample weights (n,) or None, the :class:`Activation`,
    the :class:`Head`, λ, ``keep``, then Θ^(1..L). Outputs: J (0-d), then z^(L+1) and, with ``keep``,
    [1, X], [1, a^(2..L)] (:func:`forward_layers`) as saved extras. The weights are constants (no
    gradient flows to them).

    Transforms: first-order ``backward()``/``autograd.grad`` run the δ-recursion; with
    ``create_graph=True`` (gradient penalties, ``gradgradcheck``) the backward recomputes J in
    plain ops (:func:`differentiable_cost`) and returns autograd's gradient of it, with a graph,
    so double backward is exact. Under torch.func transforms (grad, vmap, jacrev, jacfwd,
    hessian) :func:`theta_cost` evaluates that twin instead of this Function. Forward-mode AD
    through ``torch.autograd.forward_ad`` raises a clear error naming ``backprop="autograd"``.
    """

    @staticmethod
    def forward(X, Y, weight, activation: Activation, head: Head, lam: float, keep: bool, *thetas):
        z_out, activations = forward_layers(X, thetas, activation, keep)
        W = _total(weight, X.shape[0])
        J = _data_cost(head, z_out, Y, weight) / W
        if lam > 0:
            J = J + ridge_penalty(thetas, lam, W, J.dtype)
        return (J, z_out, *activations)

    @staticmethod
    def setup_context(ctx, inputs, output):
        X, Y, weight, activation, head, lam, keep, *thetas = inputs
        ctx.activation, ctx.head, ctx.lam, ctx.num_layers = activation, head, lam, len(thetas)
        ctx.set_materialize_grads(False)  # z^(L+1) and a^(l) get no gradient: no zero tensors for them
        if keep:
            z_out, *activations = output[1:]
            ctx.mark_non_differentiable(z_out, *activations)
            ctx.save_for_backward(X, *activations, *thetas, z_out, Y, weight)  # X for the twin

    @staticmethod
    def backward(ctx, grad_J, *_unused):
        if grad_J is None:  # no gradient reached J (grads are not materialised)
            return (None,) * (7 + ctx.num_layers)
        L, saved = ctx.num_layers, ctx.saved_tensors
        X, activations, thetas = saved[0], saved[1 : L + 1], saved[L + 1 : 2 * L + 1]
        z_out, Y, weight = saved[2 * L + 1 :]
        needs = (ctx.needs_input_grad[0], *ctx.needs_input_grad[7:])
        J = twin(
            lambda: differentiable_cost(X, Y, weight, thetas, ctx.activation, ctx.head, ctx.lam)[0], X, thetas
        )
        if J is not None:  # create_graph=True: differentiate the plain-ops twin
            grad_x, *grads = graph_gradient(J, grad_J, [X, *thetas], needs)
            return (grad_x, None, None, None, None, None, None, *grads)
        scale = grad_J / _total(weight, z_out.shape[0])  # 0-d tensor: no host sync
        delta = output_error(ctx.head, z_out, Y, weight, scale)  # δ^(L+1) (n, s_{L+1})
        grad_x, grads = backward_layers(delta, activations, thetas, ctx.activation, needs[0], needs[1:])
        if ctx.lam > 0:  # + (λ/W) Θ, the bias column j = 0 excluded
            _add_ridge_gradient(grads, thetas, scale * ctx.lam)
        return (grad_x, None, None, None, None, None, None, *grads)

    @staticmethod
    def jvp(ctx, *tangents):
        raise NotImplementedError(NO_FORWARD_AD)


def _widened(z: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
    """z and floating Y in at least float32 (no copies when they already are)."""
    if z.dtype in (torch.float32, torch.float64):
        return z, Y
    wide = torch.promote_types(z.dtype, torch.float32)
    return z.to(wide), Y.to(wide) if Y.is_floating_point() else Y


def theta_cost(X: Tensor, Y: Tensor, thetas, activation: Activation, head: Head, lam: float, weight=None):
    """(J(Θ), z^(L+1)) through :class:`ThetaCost` (the manual path); z is non-differentiable.

    The low-level entry point (``ThetaMLP.cost`` checks X, Y and the weights' values first): λ is
    checked, ``activation``/``head`` may be names, ``weight`` must be a (n,) tensor or None (values
    unchecked here: finite, ≥ 0, Σw > 0 is the caller's promise; :mod:`lecturenn.sample_weight`)."""
    lam = check_lam(lam)
    activation, head = get_activation(activation), get_head(head)
    if weight is not None:
        if not isinstance(weight, Tensor):
            raise TypeError(f"weight must be a tensor of shape (n,) or None, got {type(weight).__name__}")
        check_weight_shape(weight, X.shape[0])
    return checked_theta_cost(X, Y, thetas, activation, head, lam, weight)


def checked_theta_cost(X: Tensor, Y: Tensor, thetas, activation: Activation, head: Head, lam: float, weight):
    """:func:`theta_cost` for arguments already checked (λ a float >= 0, registry entries, weights
    (n,) or None): ``ThetaMLP.cost``'s call, which has checked them itself."""
    if transforms_active():  # torch.func: the plain-ops twin, which every transform supports
        J, z = differentiable_cost(X, Y, weight, thetas, activation, head, lam)
        return J, z.detach()
    if weight is not None and weight.requires_grad:
        raise ValueError(
            "sample_weight requires grad, but the manual δ-recursion treats the weights as constants: "
            "pass sample_weight.detach(), or build the net with backprop='autograd' to differentiate "
            "J with respect to them"
        )
    out = apply_function(ThetaCost, X, Y, weight, activation, head, lam, keep_saved(X, thetas), *thetas)
    return out[0], out[1]


# the teaching path lives in lecturenn.teaching (re-exported here: lecturenn.backprop.backpropagate)
from .teaching import Backprop, backpropagate  # noqa: E402
