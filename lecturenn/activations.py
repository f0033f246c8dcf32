"""Hidden-unit activations g(z) and their derivatives g'(z), written from the activation a = g(z).

The δ-recursion only needs g'(z^(l)), and for every activation here g'(z) is a simple function of
a = g(z) alone, so backward uses what forward saved and never recomputes z:

================  =======================  ====================  ========  ================  =========
name              g(z)                     g'(z) from a = g(z)   sklearn   torch.nn          ONNX
================  =======================  ====================  ========  ================  =========
sigmoid           1 / (1 + e^{-z})         a (1 - a)             logistic  Sigmoid()         Sigmoid
tanh              tanh z                   1 - a²                tanh      Tanh()            Tanh
softplus          log(1 + e^z)             1 - e^{-a}  (= σ(z))  —         Softplus()        Softplus
relu              max(0, z)                [a > 0]               relu      ReLU()            Relu
leaky_relu:SLOPE  z; SLOPE·z for z ≤ 0     1; SLOPE for a ≤ 0    —         LeakyReLU(SLOPE)  LeakyRelu
elu:ALPHA         z; α(e^z − 1) for z ≤ 0  1; a + α for a ≤ 0    —         ELU(ALPHA)        Elu
identity          z                        1                     identity  Identity()        Identity
================  =======================  ====================  ========  ================  =========

(ONNX: the attribute ``alpha`` is SLOPE, resp. ALPHA.)

**Parameters are part of the name** (a :class:`~lecturenn.registry.Family`): ``"leaky_relu:0.2"``
is the leaky ReLU with slope 0.2 for z ≤ 0, ``"elu:0.5"`` the ELU with α = 0.5; ``"leaky_relu"``
alone is slope 0.01 and ``"elu"`` alone α = 1 (torch's and ONNX's defaults). The name is data, so
the same string works in ``ThetaMLP(hidden=...)``, ``ThetaMLPClassifier(activation=...)``, on the
command line (``model.activation=leaky_relu:0.2``: Hydra needs no quoting for ``:``, while
``leaky_relu(0.2)`` would be parsed as a function call), and is what checkpoints, Θ files,
``repr`` and the exporters store and read back. Allowed: a decimal number, **0 < SLOPE < 1** — g'
is a function of a only if a and z have the same sign, so SLOPE > 0 (a negative slope flips it);
SLOPE = 0 is ``relu`` and SLOPE = 1 ``identity`` (use those names: one name per function, and they
have scikit-learn's name and fused kernels) — and **ALPHA > 0** (a ≤ 0 ⇔ z ≤ 0 again).
``"leaky_relu:0.010"`` reads as ``"leaky_relu"``; ``"leaky_relu:0.20"`` as ``"leaky_relu:0.2"``.

``init="he"`` uses each entry's ``he_gain``: √2 (ReLU's, He et al. 2015) unless set, and
√(2 / (1 + SLOPE²)) for ``leaky_relu:SLOPE`` — ``torch.nn.init.calculate_gain("leaky_relu", SLOPE)``.

Adding an activation is one entry in :data:`ACTIVATIONS` (see :func:`register_activation`); it then
works in ``ThetaMLP`` (both backprops), the estimators, the app (``plugins=[...]``) and every
exporter whose column it fills in — the others refuse it by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import Family, Registry, check_format_names

__all__ = ["Activation", "ACTIVATIONS", "get_activation", "register_activation"]


@dataclass(frozen=True)
class Activation:
    """One hidden activation: ``g(z)``, ``gprime(a)``, the fused ``backward(delta, a)`` and ``into(z, out)``.

    * ``g(z)``           a = g(z), elementwise.
    * ``gprime(a)``      g'(z) computed from a = g(z) (the lecture's formula; used by the teaching path).
    * ``backward(d, a)`` d .* g'(z) — the same product, fused into one kernel where torch has one.
    * ``into(z, out)``   a = g(z) written into ``out`` (a preallocated, possibly strided tensor of z's
      shape), in one kernel where the entry has a ``g_out`` (torch's ``out=`` form; a speed option:
      without it g(z) is computed and copied).

    Names in other formats (``None``: that format has no such activation):

    * ``sklearn``        scikit-learn's ``MLPClassifier(activation=...)`` name.
    * ``torch_module``   a factory of the ``torch.nn`` module computing g (``nn.Tanh``).
    * ``onnx``           the ONNX operator computing g (``"Tanh"``).

    ``he_gain`` is the gain of ``init="he"`` (U(±gain·√(3/s_l)), torch's ``kaiming_uniform_``):
    √2 unless set (ReLU's); a finite float > 0.
    """

    name: str
    g: Callable[[Tensor], Tensor] = field(repr=False)
    gprime: Callable[[Tensor], Tensor] = field(repr=False)
    fused_backward: Callable[[Tensor, Tensor], Tensor] | None = field(default=None, repr=False)
    g_out: Callable[[Tensor, Tensor], Tensor] | None = field(default=None, repr=False)
    sklearn: str | None = None
    torch_module: Callable[[], nn.Module] | None = field(default=None, repr=False)
    onnx: str | None = None
    he_gain: float = math.sqrt(2.0)

    def __post_init__(self) -> None:
        for part in ("g", "gprime", "fused_backward", "g_out"):
            value = getattr(self, part)
            if (part in ("g", "gprime") or value is not None) and not callable(value):
                raise TypeError(f"activation {self.name!r}: {part} must be callable, got {value!r}")
        check_format_names("activation", self)
        gain = self.he_gain
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 < gain < math.inf:
            raise ValueError(f"activation {self.name!r}: he_gain must be a finite float > 0, got {gain!r}")
        if self.g_out is not None or self.fused_backward is not None:
            self.check_speed_forms(_probe())

    def check_speed_forms(self, z: Tensor) -> None:
        """The speed options compute what the formulas do, on the values ``z``: ``g_out(z, out)``
        writes g(z) into a strided ``out`` (and leaves z alone), ``fused_backward(δ, a)`` equals
        δ .* gprime(a) at a = g(z). Run at construction on a float64 probe spanning negative, zero
        and positive z, and by :func:`lecturenn.gradient_check` on the data's z^(2).
        ``ValueError`` naming the field where they differ (a different network would be trained
        than the one that predicts)."""
        with torch.no_grad():
            z = z.detach()
            a = self.g(z)
            if self.g_out is not None:
                before = z.clone()
                buf = torch.full((z.shape[0], z.shape[1] + 1), float("nan"), dtype=z.dtype, device=z.device)
                self._call("g_out", lambda: self.g_out(z, buf[:, 1:]))
                written = buf[:, 1:]
                if not torch.equal(z, before):
                    raise ValueError(
                        f"activation {self.name!r}: g_out(z, out) modified z; it must only write out"
                    )
                if not buf[:, 0].isnan().all() or not _close(written, a):
                    raise ValueError(
                        f"activation {self.name!r}: g_out(z, out) does not write g(z) into out (largest "
                        f"difference {_largest(written, a)} on a strided out = buf[:, 1:]); "
                        "fix g_out or drop it"
                    )
            if self.fused_backward is not None:
                delta = torch.linspace(-2.0, 3.0, z.numel(), dtype=z.dtype, device=z.device).reshape(z.shape)
                fused = self._call("fused_backward", lambda: self.fused_backward(delta, a))
                plain = delta * self.gprime(a)
                if not isinstance(fused, Tensor) or fused.shape != plain.shape or not _close(fused, plain):
                    raise ValueError(
                        f"activation {self.name!r}: fused_backward(delta, a) differs from delta * gprime(a) "
                        f"at a = g(z) (largest difference {_largest(fused, plain)}); fix one of them"
                    )

    def _call(self, part: str, compute):
        try:
            return compute()
        except Exception as err:  # noqa: BLE001 - the user's callable failing is reported by field
            raise ValueError(
                f"activation {self.name!r}: {part} failed on a float64 probe: {type(err).__name__}: {err}"
            ) from None

    def backward(self, delta: Tensor, a: Tensor) -> Tensor:
        """δ .* g'(z), from the saved activation ``a``. Shapes: (n, s) and (n, s) -> (n, s)."""
        if self.fused_backward is not None:
            return self.fused_backward(delta, a)
        return delta * self.gprime(a)

    def into(self, z: Tensor, out: Tensor) -> Tensor:
        """a = g(z) written into ``out`` (same shape as z, any strides); returns ``out``."""
        if self.g_out is not None:
            return self.g_out(z, out)
        return out.copy_(self.g(z))

    def __call__(self, z: Tensor) -> Tensor:
        return self.g(z)


def _probe() -> Tensor:
    """z values for :meth:`Activation.check_speed_forms`: float64, negative, zero and positive, (4, 6)."""
    values = [-8, -6, -4, -3, -2, -1.5, -1, -0.5, -0.25, -0.1, -1e-3, 0.0]
    return torch.tensor(values + [-v for v in values[::-1]], dtype=torch.float64).reshape(4, 6)


def _close(x: Tensor, y: Tensor) -> bool:
    return torch.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True)


def _largest(x, y) -> float:
    if not isinstance(x, Tensor) or x.shape != y.shape:
        return float("nan")
    return float((x - y).abs().nan_to_num(float("inf")).max())


#: The built-in leaky ReLU's slope for z < 0 when none is named (torch's and ONNX's default).
LEAKY_SLOPE = 0.01


def _leaky_relu(name: str, slope: float) -> Activation:
    """leaky_relu:SLOPE. g'(z) from a = g(z): 1 where a > 0, SLOPE elsewhere (a and z have the same
    sign for SLOPE > 0). He gain √(2/(1 + SLOPE²)) (torch.nn.init.calculate_gain)."""
    return Activation(
        name,
        lambda z: F.leaky_relu(z, slope),
        lambda a: torch.full_like(a, slope).masked_fill_(a > 0, 1.0),  # SLOPE in a's dtype, exact to its ulp
        lambda delta, a: torch.ops.aten.leaky_relu_backward(delta, a, slope, True),  # a: the result
        g_out=lambda z, out: out.copy_(F.leaky_relu(z, slope)),
        torch_module=lambda: nn.LeakyReLU(slope),
        onnx="LeakyRelu",  # attribute alpha = SLOPE (the exporter writes it from the module)
        he_gain=math.sqrt(2.0 / (1 + slope**2)),
    )


def _elu(name: str, alpha: float) -> Activation:
    """elu:ALPHA: a = α(e^z − 1) for z ≤ 0, so g'(z) = α e^z = a + α there; 1 where a > 0."""
    return Activation(
        name,
        lambda z: F.elu(z, alpha),
        lambda a: torch.where(a > 0, torch.ones_like(a), a + alpha),
        lambda delta, a: torch.ops.aten.elu_backward(delta, alpha, 1, 1, True, a),  # is_result=True
        torch_module=lambda: nn.ELU(alpha),
        onnx="Elu",  # attribute alpha = ALPHA
    )


def _relu_backward(delta: Tensor, a: Tensor) -> Tensor:
    return torch.ops.aten.threshold_backward(delta, a, 0)  # δ where a > 0, else 0


#: name -> Activation, in registration order (the built-ins below first).
ACTIVATIONS: Registry[Activation] = Registry("activation", Activation, "sklearn", "scikit-learn name")


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by name; ``ValueError`` listing the known names otherwise."""
    return ACTIVATIONS.lookup(name)


def register_activation(
    name: str,
    g: Callable[[Tensor], Tensor],
    gprime: Callable[[Tensor], Tensor],
    fused_backward: Callable[[Tensor, Tensor], Tensor] | None = None,
    *,
    g_out: Callable[[Tensor, Tensor], Tensor] | None = None,
    sklearn: str | None = None,
    torch_module: Callable[[], nn.Module] | None = None,
    onnx: str | None = None,
    he_gain: float = math.sqrt(2.0),
) -> Activation:
    """Add an activation whose derivative can be written from its output a = g(z).

    ``g_out(z, out)`` (optional) writes g(z) into ``out`` in one kernel (see :meth:`Activation.into`).
    ``sklearn``, ``torch_module`` and ``onnx`` name it in those formats (see :class:`Activation`);
    leave out those that cannot express it, and the matching exporter refuses it by name.
    ``he_gain``: the gain ``init="he"`` uses (see :class:`Activation`).
    ``ValueError`` if the name is taken. Example — leaky ReLU with slope 0.01 (a > 0 exactly when
    z > 0)::

        register_activation("leaky", lambda z: F.leaky_relu(z, 0.01),
                            lambda a: (a > 0).to(a.dtype) * 0.99 + 0.01,    # 1 or 0.01, in a's dtype
                            torch_module=lambda: nn.LeakyReLU(0.01), onnx="LeakyRelu")
    """
    entry = Activation(name, g, gprime, fused_backward, g_out, sklearn, torch_module, onnx, he_gain)
    return ACTIVATIONS.add(entry)


# The built-in activations: the table in the module docstring, one entry each.
# fmt: off
register_activation("sigmoid", torch.sigmoid, lambda a: a * (1 - a), torch.ops.aten.sigmoid_backward,
                    g_out=lambda z, out: torch.sigmoid(z, out=out),
                    sklearn="logistic", torch_module=nn.Sigmoid, onnx="Sigmoid")
register_activation("tanh", torch.tanh, lambda a: 1 - a * a, torch.ops.aten.tanh_backward,
                    g_out=lambda z, out: torch.tanh(z, out=out),
                    sklearn="tanh", torch_module=nn.Tanh, onnx="Tanh")
register_activation("softplus", torch.nn.functional.softplus, lambda a: -torch.expm1(-a),
                    torch_module=nn.Softplus, onnx="Softplus")  # scikit-learn has no softplus
register_activation("relu", torch.relu, lambda a: (a > 0).to(a.dtype), _relu_backward,
                    g_out=lambda z, out: torch.clamp_min(z, 0, out=out),
                    sklearn="relu", torch_module=nn.ReLU, onnx="Relu")
ACTIVATIONS.add_family(Family("leaky_relu", "slope", LEAKY_SLOPE, 0.0, 1.0, _leaky_relu,
                              note="0 is relu and 1 identity: use those names; below 0, "
                                   "a > 0 for z < 0 and g' is no function of a",
                              torch_param="negative_slope"))
ACTIVATIONS.add_family(Family("elu", "alpha", 1.0, 0.0, math.inf, _elu,
                              note="α ≤ 0 breaks a ≤ 0 ⇔ z ≤ 0, which g'(a) needs", torch_param="alpha"))
register_activation("identity", lambda z: z, torch.ones_like, lambda delta, a: delta,
                    g_out=lambda z, out: out.copy_(z),
                    sklearn="identity", torch_module=nn.Identity, onnx="Identity")
# fmt: on
