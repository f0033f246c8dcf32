"""Hidden-unit activations g(z) and their derivatives g'(z), written from the activation a = g(z).

The δ-recursion only needs g'(z^(l)), and for every activation here g'(z) is a simple function of
a = g(z) alone, so backward uses what forward saved and never recomputes z:

=========  ==================  ===========================
name       g(z)                g'(z) in terms of a = g(z)
=========  ==================  ===========================
sigmoid    1 / (1 + e^{-z})    a (1 - a)
tanh       tanh z              1 - a²
softplus   log(1 + e^z)        1 - e^{-a}      (= σ(z))
relu       max(0, z)           [a > 0]
identity   z                   1
=========  ==================  ===========================

Adding an activation is one entry in :data:`ACTIVATIONS` (see :func:`register_activation`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Activation", "ACTIVATIONS", "get_activation", "register_activation"]


@dataclass(frozen=True)
class Activation:
    """One hidden activation: ``g(z)``, ``gprime(a)`` and the fused ``backward(delta, a)``.

    * ``g(z)``           a = g(z), elementwise.
    * ``gprime(a)``      g'(z) computed from a = g(z) (the lecture's formula; used by the teaching path).
    * ``backward(d, a)`` d .* g'(z) — the same product, fused into one kernel where torch has one.
    """

    name: str
    g: Callable[[Tensor], Tensor]
    gprime: Callable[[Tensor], Tensor]
    fused_backward: Callable[[Tensor, Tensor], Tensor] | None = None

    def backward(self, delta: Tensor, a: Tensor) -> Tensor:
        """δ .* g'(z), from the saved activation ``a``. Shapes: (n, s) and (n, s) -> (n, s)."""
        if self.fused_backward is not None:
            return self.fused_backward(delta, a)
        return delta * self.gprime(a)

    def __call__(self, z: Tensor) -> Tensor:
        return self.g(z)


def _relu_backward(delta: Tensor, a: Tensor) -> Tensor:
    return torch.ops.aten.threshold_backward(delta, a, 0)  # δ where a > 0, else 0


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", torch.sigmoid, lambda a: a * (1 - a), torch.ops.aten.sigmoid_backward),
    "tanh": Activation("tanh", torch.tanh, lambda a: 1 - a * a, torch.ops.aten.tanh_backward),
    "softplus": Activation("softplus", torch.nn.functional.softplus, lambda a: -torch.expm1(-a)),
    "relu": Activation("relu", torch.relu, lambda a: (a > 0).to(a.dtype), _relu_backward),
    "identity": Activation("identity", lambda z: z, torch.ones_like, lambda delta, a: delta),
}


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by name; ``ValueError`` listing the known names otherwise."""
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (str), got {type(name).__name__}")
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def register_activation(
    name: str,
    g: Callable[[Tensor], Tensor],
    gprime: Callable[[Tensor], Tensor],
    fused_backward: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Activation:
    """Add an activation whose derivative can be written from its output a = g(z).

    Example — leaky ReLU with slope 0.01 (a > 0 exactly when z > 0)::

        register_activation("leaky_relu", lambda z: F.leaky_relu(z, 0.01),
                            lambda a: torch.where(a > 0, 1.0, 0.01).to(a.dtype))
    """
    if name in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is already registered")
    ACTIVATIONS[name] = Activation(name, g, gprime, fused_backward)
    return ACTIVATIONS[name]
