"""Θ matrices: initialisation and :class:`ThetaLinear`, one layer z = Θ [1; a].

Initialisation (the lecture: "initialise randomly, NOT to 0" — with Θ = 0 every hidden unit
computes the same function and receives the same update, so they stay identical forever):

* ``"glorot"`` (default): Θ_ij ~ U(−ε, ε) with ε = √6 / √(s_l + s_{l+1}), per layer (Glorot &
  Bengio 2010; scikit-learn's MLP uses it for every activation, so the default stays for parity);
* ``"he"``: Θ_ij ~ U(−ε, ε) with ε = gain·√3 / √s_l, per layer — He et al. 2015's uniform variant,
  torch's ``kaiming_uniform_``. gain is the activation's ``he_gain``: √2 (ε = √6/√s_l, Var = 2/s_l)
  for ``relu``, ``elu`` and the others, √(2/(1 + SLOPE²)) for ``leaky_relu:SLOPE`` (torch's
  ``calculate_gain("leaky_relu", SLOPE)``); what a practitioner expects for the ReLU family in deep
  nets (the default stays ``"glorot"``, as in scikit-learn);
* ``"epsilon"``: Θ_ij ~ U(−ε, ε) with a fixed ε (``epsilon``, 0.12 in the classic exercise);
* ``"zeros"``: Θ = 0 — exists only to demonstrate the symmetry problem.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .activations import get_activation
from .arrays import to_tensor
from .validation import check_integer, check_number, is_integer

__all__ = ["INITS", "check_input", "init_theta", "make_generator", "with_bias_unit", "layer_z", "ThetaLinear"]

INITS = ("glorot", "he", "epsilon", "zeros")


def make_generator(seed: int | torch.Generator | None, device=None) -> torch.Generator | None:
    """A ``torch.Generator`` from an int seed (None → torch's global RNG)."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if not is_integer(seed):
        raise TypeError(f"seed must be an int, a torch.Generator or None, got {type(seed).__name__}")
    gen = torch.Generator(device=device if device is not None else "cpu")
    gen.manual_seed(int(seed))
    return gen


@torch.no_grad()
def init_theta(
    theta: Tensor,
    init: str = "glorot",
    epsilon: float = 0.12,
    generator: torch.Generator | None = None,
    gain: float = math.sqrt(2.0),
) -> Tensor:
    """Fill Θ of shape (s_{l+1}, s_l + 1) in place (see the module docstring); returns Θ.
    ``gain``: init="he"'s (the activation's ``he_gain``; √2, ReLU's, by default)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {list(INITS)}")
    if init == "zeros":
        return theta.zero_()
    s_out, s_in = theta.shape[0], theta.shape[1] - 1
    if init == "glorot":
        eps = math.sqrt(6.0) / math.sqrt(s_in + s_out)
    elif init == "he":
        gain = check_number(gain, "gain", low=0, low_open=True)
        eps = math.sqrt(3.0) * (gain / math.sqrt(s_in))  # torch's kaiming_uniform_ bound, to the bit
    else:  # a bool or a string is no ε (TypeError); 0, < 0, NaN, ±inf: ValueError
        eps = check_number(epsilon, "epsilon", low=0, low_open=True)
    # Draw in row-major order on the generator's device, then copy: the same seed gives the same
    # Θ whatever Θ's memory layout or device.
    device = generator.device if generator is not None else theta.device
    values = torch.empty(theta.shape, dtype=theta.dtype, device=device)
    return theta.copy_(values.uniform_(-eps, eps, generator=generator))


def check_input(X, s_in: int, ref: Tensor, name: str = "X", units: str = "s_1") -> Tensor:
    """Structural checks on a layer input (no pass over the data): a 2-D floating tensor with
    ``s_in`` columns, on Θ's (``ref``'s) dtype and device. Anything else that holds numbers
    (numpy in any memory order, lists, pandas by position) is converted by
    :func:`~lecturenn.arrays.to_tensor` to ``ref``'s dtype and device; a tensor is not converted."""
    if not isinstance(X, Tensor):
        if X is None or isinstance(X, (str, bytes)):
            raise TypeError(f"{name} must be a tensor or array of numbers, got {type(X).__name__}")
        try:
            X = to_tensor(X, dtype=ref.dtype, device=ref.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a tensor or array of numbers: {err}") from None
    if X.ndim != 2:
        hint = "; for one example use x.unsqueeze(0)" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n, {units}) = (n, {s_in}), got shape {tuple(X.shape)}{hint}")
    if X.shape[1] != s_in:
        raise ValueError(
            f"{name} has {X.shape[1]} features (columns) but the input layer has {units} = {s_in} units"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if not X.is_floating_point():
        raise TypeError(
            f"{name} must hold floating-point numbers, got dtype {X.dtype}; use {name}.to({ref.dtype})"
        )
    if X.dtype != ref.dtype:
        raise TypeError(
            f"{name} has dtype {X.dtype} but Θ is {ref.dtype}; convert one of them "
            f"({name}.to({ref.dtype}) or net.to({X.dtype}))"
        )
    if X.device != ref.device:
        raise ValueError(
            f"{name} is on {X.device} but Θ is on {ref.device}; move one of them "
            f"({name}.to('{ref.device}') or net.to('{X.device}'))"
        )
    return X


_ONES: dict[tuple, Tensor] = {}


def _ones_column(a: Tensor) -> Tensor:
    """A (n, 1) column of ones in a's dtype and device, kept for the last few (n, dtype, device)
    seen, so that [1, a] costs one kernel (the ``cat``) instead of two. Read only (``cat`` copies
    it). Made fresh, not kept, while torch.compile traces or a CUDA graph is being captured (a
    captured fill would run only on replay)."""
    if torch.compiler.is_compiling():
        return torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)
    key = (a.shape[0], a.dtype, a.device)
    ones = _ONES.get(key)
    if ones is None:
        with torch.inference_mode(False):  # a normal tensor even when first made in inference mode
            ones = torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)
        if not (a.is_cuda and torch.cuda.is_current_stream_capturing()):
            if len(_ONES) >= 8:
                _ONES.clear()
            _ONES[key] = ones
    return ones


def with_bias_unit(a: Tensor) -> Tensor:
    """[1, a] (n, s + 1): the activations a (n, s) with the bias unit a_0 = 1 prepended as column 0,
    the lecture's "add a_0^(l) = 1". Differentiable with respect to a."""
    return torch.cat((_ones_column(a), a), 1)


def layer_z(a: Tensor, theta: Tensor) -> Tensor:
    """z = Θ [1; a] for the rows of a: [1, a] Θᵀ, (n, s_l) -> (n, s_{l+1}) for Θ (s_{l+1}, s_l + 1).

    The one way every path computes a layer (the manual δ-recursion's forward, the autograd twin,
    ``propagate``, ``ThetaLinear``), so they agree bitwise: one matmul with the bias unit as the
    first column, as on the slides; the manual path keeps [1, a] for its one-matmul Δ^(l)."""
    return torch.mm(with_bias_unit(a), theta.t())  # (n, s_l + 1) @ (s_l + 1, s_{l+1})


class ThetaLinear(nn.Module):
    r"""One layer in the lecture's notation: :math:`a' = g(z),\ z = Θ [1; a]`.

    The single-neuron slide ("linear regression + activation") is ``ThetaLinear(s, 1, "sigmoid")``.

    Args:
        in_features: s_l, units feeding the layer (the bias unit a_0 = 1 is not counted).
        out_features: s_{l+1}.
        activation: name of g (``"identity"`` gives z itself).
        init, epsilon, generator: see :func:`init_theta`.

    Shape:
        input (n, s_l) -> output (n, s_{l+1}).

    Attributes:
        theta: Θ of shape (s_{l+1}, s_l + 1); column 0 multiplies a_0 = 1 (the bias).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "identity",
        init: str = "glorot",
        epsilon: float = 0.12,
        generator: int | torch.Generator | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        in_features = check_integer(in_features, "in_features", low=1)
        out_features = check_integer(out_features, "out_features", low=1)
        self.in_features, self.out_features = in_features, out_features
        self.activation = get_activation(activation)
        self.theta = nn.Parameter(torch.empty(out_features, in_features + 1, device=device, dtype=dtype))
        self.reset_parameters(init, epsilon, generator)

    def reset_parameters(self, init: str = "glorot", epsilon: float = 0.12, generator=None) -> None:
        init_theta(self.theta, init, epsilon, make_generator(generator), self.activation.he_gain)

    def forward(self, a: Tensor) -> Tensor:
        a = check_input(a, self.in_features, self.theta, name="input", units="s_l")
        return self.activation.g(layer_z(a, self.theta))  # z (n, s_{l+1})

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"Θ: {tuple(self.theta.shape)}, g={self.activation.name}"
        )
