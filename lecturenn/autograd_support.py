"""How the manual path's autograd Functions (:class:`lecturenn.backprop.ThetaCost`,
:class:`~lecturenn.backprop.ThetaForward`) meet torch: the fast ``apply``, saving only when a gradient
can flow, double backward through a plain-ops twin, and torch.func transforms.

What works on each path:

=========================================  ==================================  ===============
                                           ``"manual"``                        ``"autograd"``
=========================================  ==================================  ===============
``backward()``, ``autograd.grad``          the δ-recursion                     torch autograd
``create_graph=True`` (gradient penalty,   exact: the backward differentiates  yes
``gradgradcheck``)                         the plain-ops twin of the forward
torch.func ``grad``, ``vmap``, ``jacrev``,  yes: under a transform the manual   yes
``jacfwd``, ``hessian``                    path evaluates the plain-ops twin
``torch.autograd.forward_ad``              clear ``NotImplementedError``        yes
=========================================  ==================================  ===============
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NO_FORWARD_AD", "apply_function", "graph_gradient", "keep_saved", "transforms_active", "twin"]


def keep_saved(x: Tensor, thetas) -> bool:
    """Save activations only when a gradient can flow (nothing is saved under ``no_grad``)."""
    if not torch.is_grad_enabled():
        return False
    if x.requires_grad:
        return True
    for theta in thetas:  # a loop, not any(generator): this runs on every training step
        if theta.requires_grad:
            return True
    return False


def transforms_active() -> bool:
    """Are torch.func transforms (grad, vmap, jacrev, jacfwd, hessian, ...) running? torch's private
    flag, read here only (``tests/test_double_backward.py`` pins what depends on it)."""
    return torch._C._are_functorch_transforms_active()


def apply_function(function: type[torch.autograd.Function], *args):
    """``function.apply(*args)`` without torch's per-call ``inspect.signature`` binding.

    ``Function.apply`` binds the arguments to fill in defaults whenever ``setup_context`` is
    defined (about 50 µs a call, a quarter of a tiny net's training step). Our forwards take
    positional arguments only, so in eager mode we call the C++ apply directly; under
    ``torch.compile`` torch's own ``apply`` is used unchanged.
    """
    if torch.compiler.is_compiling():
        return function.apply(*args)
    return super(torch.autograd.Function, function).apply(*args)


def twin(recompute, x: Tensor, thetas) -> Tensor | None:
    """The output recomputed in plain ops when the backward must return a differentiable gradient
    (grad mode is on in a backward only under ``create_graph=True``), else None. Also None where the
    recomputation records no graph (inputs that do not require grad, e.g. inside a generated vmap
    rule): no graph is wanted there, and the δ-recursion is exact. No extra work on the first-order
    path."""
    if not keep_saved(x, thetas):  # grad mode off, or nothing to differentiate
        return None
    out = recompute()
    return out if out.requires_grad else None


def graph_gradient(output: Tensor, grad_output: Tensor, inputs, needs) -> list[Tensor | None]:
    """Double backward: ∂output/∂inputs through the autograd formulation, with a graph (create_graph)."""
    wanted = [x for x, need in zip(inputs, needs) if need]
    found = iter(torch.autograd.grad(output, wanted, grad_output, create_graph=True, allow_unused=True))
    return [next(found) if need else None for need in needs]


NO_FORWARD_AD = (
    "forward-mode AD through torch.autograd.forward_ad is not supported by backprop='manual' (torch.func's "
    "jvp/jacfwd/hessian are); build the network with ThetaMLP(..., backprop='autograd')"
)
