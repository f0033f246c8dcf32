"""ThetaMLP: a multilayer perceptron whose parameters are the lecture's Θ^(1..L).

    a^(1) = x,   z^(l+1) = Θ^(l) [1; a^(l)],   a^(l+1) = g(z^(l+1)),   h_Θ(x) = a^(L+1) = head(z^(L+1))

    J(Θ) = (1/W) Σ_i w_i cost_i + λ/(2W) Σ_l Σ_{i, j≥1} (Θ^(l)_ij)²   (bias column j = 0 not penalised;
           W = Σ_i w_i, = n without sample weights; see :mod:`lecturenn.regularization`)

``backprop="manual"`` differentiates through :class:`lecturenn.backprop.ThetaCost` (``net.cost``:
δ^(L+1) = a − y and the δ-recursion) and :class:`lecturenn.backprop.ThetaForward` (``net(x)``,
``net.logits``); ``"autograd"`` runs the same forward in plain torch ops and lets torch
differentiate it. Either way ``net.cost(X, Y, lam).backward()`` leaves D^(l) = ∂J/∂Θ^(l) in
``net.thetas[l-1].grad``.

What works on each path (``create_graph=True``, torch.func transforms, forward-mode AD): the table
in :mod:`lecturenn.autograd_support`. Under torch.func transforms (``vmap``, ``grad``, ...: e.g.
per-example gradients) the value checks are skipped — a value cannot be read per example — and
shapes, dtypes and devices are still checked.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .activations import ACTIVATIONS, get_activation
from .arrays import as_array  # re-exported: lecturenn.network.as_array
from .autograd_support import transforms_active
from .backprop import checked_theta_cost, ridge_penalty, theta_forward
from .heads import HEADS, get_head
from .regularization import check_lam
from .sample_weight import check_weight_values, prepare_sample_weight, weights_valid
from .teaching import Propagation  # re-exported: lecturenn.network.Propagation
from .theta import check_input, init_theta, layer_z, make_generator
from .validation import check_number, is_integer

__all__ = ["ThetaMLP", "Propagation", "BACKPROPS", "as_array"]

BACKPROPS = ("manual", "autograd")


def _check_sizes(sizes) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(f"sizes must be a list of layer widths like [400, 25, 10], got {sizes!r}")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least 2 layers (input and output), got {sizes}")
    for j, s in enumerate(sizes, start=1):
        if not is_integer(s) or s < 1:
            raise ValueError(f"sizes[{j - 1}] (s_{j}, units in layer {j}) must be an int >= 1, got {s!r}")
    return [int(s) for s in sizes]


class ThetaMLP(nn.Module):
    r"""Multilayer perceptron in the lecture's notation.

    Args:
        sizes: [s_1, s_2, …, s_{L+1}], units per layer without bias units, e.g. ``[400, 25, 10]``.
        hidden: hidden activation g: ``"sigmoid"``, ``"tanh"``, ``"softplus"``, ``"relu"``,
            ``"leaky_relu[:SLOPE]"``, ``"elu[:ALPHA]"``, ``"identity"`` (see :mod:`lecturenn.activations`).
        output: output head: ``"sigmoid"`` (binary / one-vs-rest multi-label), ``"softmax"``
            (multi-class), ``"identity"`` (regression).
        backprop: ``"manual"`` (the δ-recursion, default) or ``"autograd"`` (torch differentiates).
        init: ``"glorot"`` (U(±√6/√(s_l+s_{l+1})), default), ``"he"`` (U(±gain·√3/√s_l), gain the
            activation's ``he_gain``), ``"epsilon"`` (U(±epsilon)) or ``"zeros"``.
        epsilon: ε for ``init="epsilon"`` (0.12 as in the classic exercise).
        generator: int seed or ``torch.Generator`` for a reproducible initialisation.
        device, dtype: where Θ lives (like ``nn.Linear``).

    Shape:
        ``net(x)``: (n, s_1) -> (n, s_{L+1}).

    Attributes:
        thetas: ``nn.ParameterList`` of Θ^(1..L); Θ^(l) has shape (s_{l+1}, s_l + 1) and its column 0
            multiplies the bias unit a_0 = 1. ``net.theta(l)`` is Θ^(l), 1-indexed.
        validate_inputs: check values (NaN/inf, label range) on every call (default True). The
            training loop turns it off after validating its data once; shapes and dtypes are
            always checked. Under torch.func transforms the value checks are skipped.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        hidden: str = "sigmoid",
        output: str = "sigmoid",
        backprop: str = "manual",
        init: str = "glorot",
        epsilon: float = 0.12,
        generator: int | torch.Generator | None = None,
        batchnorm: bool = False,
        dropout: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.sizes = _check_sizes(sizes)
        self.activation = get_activation(hidden)
        self.head = get_head(output)
        if backprop not in BACKPROPS:
            raise ValueError(f"unknown backprop {backprop!r}; choose one of {list(BACKPROPS)}")
        if self.sizes[-1] < self.head.min_outputs:
            hint = "; use output='sigmoid' for K = 1" if self.sizes[-1] == 1 else ""
            raise ValueError(
                f"the {self.head.name} head needs at least {self.head.min_outputs} outputs, "
                f"got sizes[-1] = {self.sizes[-1]}{hint}"
            )
        dropout = check_number(dropout, "dropout", low=0, high=1, high_open=True)
        self.backprop = backprop
        self.validate_inputs = True
        self.thetas = nn.ParameterList(
            nn.Parameter(torch.empty(s_next, s + 1, device=device, dtype=dtype))
            for s, s_next in zip(self.sizes[:-1], self.sizes[1:])
        )
        # Extras between hidden layers (not in the lecture's network): a^(l+1) = dropout(g(BN(z^(l+1))))
        self.norms = (
            nn.ModuleList(nn.BatchNorm1d(s, device=device, dtype=dtype) for s in self.sizes[1:-1])
            if batchnorm
            else None
        )
        self.dropout = dropout
        if ":" in self.activation.name:  # NAME:VALUE: VALUE must exist in Θ's dtype (elu:1e39 in float32)
            dt, name = self.thetas[0].dtype, self.activation.name
            try:
                self.activation(torch.zeros(1, 1, dtype=dt))
            except RuntimeError as err:
                raise ValueError(f"activation {name!r} cannot run in {dt}: {err}") from None
        self.reset_parameters(init, epsilon, generator)

    # -- pickling: activations and heads are registry entries, stored by name ---------------------
    # (a registered entry holds lambdas, which pickle cannot store; an unregistered custom
    # Activation/Head is kept as the object itself)
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if ACTIVATIONS.get(self.activation.name) is self.activation:
            state["activation"] = self.activation.name
        if HEADS.get(self.head.name) is self.head:
            state["head"] = self.head.name
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state["activation"], str):
            state["activation"] = get_activation(state["activation"])
        if isinstance(state["head"], str):
            state["head"] = get_head(state["head"])
        self.__dict__.update(state)

    # -- structure ------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """L, the number of Θ matrices (the network has L + 1 layers of units)."""
        return len(self.thetas)

    def theta(self, l: int) -> nn.Parameter:
        """Θ^(l), 1-indexed like the lecture (l = 1..L)."""
        if isinstance(l, bool) or not isinstance(l, int) or not 1 <= l <= self.num_layers:
            raise IndexError(f"Θ^(l) exists for l = 1..{self.num_layers}, got l = {l!r}")
        return self.thetas[l - 1]

    @property
    def config(self) -> dict:
        """The constructor arguments that define the architecture (for checkpoints and copies)."""
        return {
            "sizes": list(self.sizes),
            "hidden": self.activation.name,
            "output": self.head.name,
            "backprop": self.backprop,
            "batchnorm": self.norms is not None,
            "dropout": self.dropout,
        }

    @property
    def plain(self) -> bool:
        """True for the lecture's network (no batch normalisation, no dropout)."""
        return self.norms is None and self.dropout == 0

    @property
    def backprop_used(self) -> str:
        """The backprop that actually runs: the manual δ-recursion covers the plain network only, so
        with batchnorm or dropout the forward is differentiated by autograd."""
        return self.backprop if self.plain else "autograd"

    def reset_parameters(self, init: str = "glorot", epsilon: float = 0.12, generator=None) -> None:
        """Re-initialise every Θ^(l) (see :func:`lecturenn.theta.init_theta`)."""
        gen = make_generator(generator)
        for theta in self.thetas:
            init_theta(theta, init, epsilon, gen, self.activation.he_gain)

    @classmethod
    def from_thetas(cls, thetas, hidden="sigmoid", output="sigmoid", backprop="manual", *, batchnorm=False,
                    dropout=0.0, dtype=None, device=None) -> ThetaMLP:  # fmt: skip
        """A ThetaMLP whose Θ^(l) are copies of ``thetas`` = [Θ^(1), …, Θ^(L)], Θ^(l) (s_{l+1}, s_l + 1)
        with the bias in column 0; sizes follow from the shapes, dtype and device default to Θ^(1)'s.
        ``ValueError`` naming Θ^(l) if it is not 2-D with a bias column or does not chain to Θ^(l-1)."""
        thetas = [torch.as_tensor(t) for t in thetas]
        for l, theta in enumerate(thetas, start=1):
            cols = thetas[l - 2].shape[0] + 1 if l > 1 else None  # s_l + 1, from Θ^(l-1)
            shape = tuple(theta.shape) if theta.ndim == 2 else (0, 0)
            if shape[0] < 1 or shape[1] < 2 or cols not in (None, shape[1]):
                want = cols or f"s_{l} + 1 >= 2"
                raise ValueError(f"Θ^({l}) has shape {tuple(theta.shape)}; expected (s_{l + 1}, {want})")
        if not thetas:
            raise ValueError("from_thetas needs at least one matrix Θ^(1)")
        dtype, device = dtype or thetas[0].dtype, device if device is not None else thetas[0].device
        sizes = [int(thetas[0].shape[1]) - 1] + [int(t.shape[0]) for t in thetas]
        net = cls(sizes, hidden, output, backprop, init="zeros", batchnorm=batchnorm, dropout=dropout,
                  device=device, dtype=dtype)  # fmt: skip
        with torch.no_grad():
            for param, theta in zip(net.thetas, thetas):
                param.copy_(theta.to(device=device, dtype=dtype))
        return net

    def to_sequential(self) -> nn.Sequential:
        """The same function as an ``nn.Sequential`` of ``nn.Linear`` + activation modules."""
        from .interop.torch_nn import to_sequential

        return to_sequential(self)

    @classmethod
    def from_sequential(cls, seq: nn.Sequential, backprop: str = "manual") -> ThetaMLP:
        """A ThetaMLP computing the same function as ``seq`` (Linear / activation / head modules)."""
        from .interop.torch_nn import from_sequential

        return from_sequential(seq, backprop=backprop)

    def __repr__(self) -> str:  # Θ shapes instead of the ParameterList's "Parameter containing"
        body = "\n  ".join(self.extra_repr().split("\n"))
        return f"{type(self).__name__}(\n  {body}\n)"

    def extra_repr(self) -> str:
        lines = [
            f"sizes={self.sizes}, hidden={self.activation.name}, output={self.head.name}, "
            f"backprop={self.backprop_used}"
        ]
        if not self.plain:
            extras = (["batchnorm"] if self.norms is not None else []) + (
                [f"dropout p={self.dropout:g}"] if self.dropout else []
            )
            lines.append(f"hidden extras: {' + '.join(extras)} (a = dropout(g(BN(z))))")
            if self.backprop == "manual":
                lines.append("note: the manual δ-recursion covers the plain network; autograd is used")
        for l, theta in enumerate(self.thetas, start=1):
            g = f"head {self.head.name}" if l == self.num_layers else f"g = {self.activation.name}"
            lines.append(f"Θ^({l}): {tuple(theta.shape)}  layer {l} -> {l + 1}, {g}")
        lines.append(f"parameters: {sum(t.numel() for t in self.thetas)}")
        return "\n".join(lines)

    def _theta_list(self) -> list[Tensor]:
        """[Θ^(1), …, Θ^(L)] as a plain list. ``list(self.thetas)`` goes through ParameterList's
        string-keyed ``__getitem__`` (~7 µs per layer, a tenth of a small net's step), and
        ``self.thetas`` itself through ``nn.Module.__getattr__`` (~2 µs): read the dicts directly.
        Only for a plain ParameterList, and by index, not the dict's order: ``nn.utils.parametrize``
        (weight_norm, spectral_norm, ...) swaps the class and moves a Θ out of ``_parameters`` (then
        ``__getitem__`` is the truth), and removing it puts that Θ back at the dict's end."""
        thetas = self._modules["thetas"]
        if type(thetas) is nn.ParameterList:
            params = thetas._parameters
            return [params[str(i)] for i in range(len(params))]
        return list(thetas)

    # -- checks ---------------------------------------------------------------------------------
    def _check_X(self, X) -> Tensor:
        """Structural checks on X (no pass over the data): type, 2-D, s_1 columns, dtype, device."""
        thetas = self._modules["thetas"]  # Θ^(1), without nn.Module.__getattr__ (see _theta_list)
        theta = thetas._parameters["0"] if type(thetas) is nn.ParameterList else thetas[0]
        return check_input(as_array(X), self.sizes[0], theta, name="X", units="s_1")

    def check_batch(self, X, Y, lam: float = 0.0) -> tuple[Tensor, Tensor]:
        """Full validation of a batch, values included; returns (X, Y) ready for the cost."""
        check_lam(lam)
        X = self._check_X(X)
        Y = self.head.prepare_targets(as_array(Y), X.shape[0], self.sizes[-1], X.dtype, X.device)
        self._diagnose(X, Y)  # X values, label range / target values, Θ
        return X, Y

    def check_sample_weight(self, sample_weight, X: Tensor) -> Tensor | None:
        """Sample weights for the rows of a checked X, values included: (n,) in X's dtype, or None."""
        weight = prepare_sample_weight(sample_weight, X.shape[0], X.dtype, X.device)
        check_weight_values(weight)
        return weight

    def _diagnose(self, X: Tensor, Y=None, J=None, lam: float = 0.0, weight: Tensor | None = None) -> None:
        """Raise a clear error naming the first bad thing: X, Y, Θ, then what made J non-finite
        (the weights' sum W, the penalty λ/(2W) ΣΘ², else the network's output)."""
        bad = ~torch.isfinite(X)
        if bad.any():
            i, j = (int(v) for v in bad.nonzero()[0])
            raise ValueError(
                f"X contains NaN or inf ({int(bad.sum())} entries; first at row {i}, column {j})"
            )
        if Y is not None:
            if Y.is_floating_point() and not torch.isfinite(Y).all():
                raise ValueError("Y contains NaN or inf")
            self.head.check_index_range(Y, self.sizes[-1])
            if not self.head.targets_valid(Y, self.sizes[-1]):
                raise ValueError(self.head.describe_bad_targets(Y))
        for l, theta in enumerate(self.thetas, start=1):
            if not torch.isfinite(theta).all():
                raise FloatingPointError(
                    f"Θ^({l}) contains NaN or inf: training has diverged (try a smaller learning rate)"
                )
        if J is None:
            return
        W = X.new_tensor(float(X.shape[0])) if weight is None else weight.sum()
        if not torch.isfinite(W):  # before J's test: the manual path's widened J is a finite 0 then
            raise FloatingPointError(
                f"J(Θ) = {J.item()} is not the cost: the weights' sum Σw overflows {W.dtype}; scale all "
                "sample weights down by one factor (that keeps the data term of J)"
            )
        if torch.isfinite(J):
            return
        if lam > 0 and not torch.isfinite(self.penalty(lam, W)):
            raise FloatingPointError(
                f"J(Θ) = {J.item()} is not finite: the penalty λ/(2W) ΣΘ² overflows {J.dtype} with "
                f"λ = {lam:g} and W = {W.item():g} (the rows' count or Σw); use a smaller λ"
            )
        raise FloatingPointError(
            f"J(Θ) = {J.item()} is not finite although X, Y, Θ and the penalty are: the output overflowed"
        )

    # -- forward propagation --------------------------------------------------------------------
    def _manual_operands(self, X: Tensor) -> tuple[Tensor, list[Tensor], torch.dtype | None]:
        """X and Θ for the manual Functions, cast to the autocast dtype when autocast is on.

        Autocast does not reach inside a custom Function's backward (and ``torch.amp.custom_fwd``
        conflicts with the setup_context style, pytorch#132388), so under autocast the cast happens
        here, outside the Function: differentiable ``.to()`` copies of X and Θ in bf16/fp16, with
        autocast switched off inside. Gradients flow back to the float32 Θ through the casts.
        """
        device = X.device.type
        thetas = self._theta_list()
        if not torch.is_autocast_enabled(device):
            return X, thetas, None
        dtype = torch.get_autocast_dtype(device)
        return X.to(dtype), [theta.to(dtype) for theta in thetas], dtype

    def _manual_cost(self, X: Tensor, Y: Tensor, lam: float, weight: Tensor | None) -> tuple[Tensor, Tensor]:
        """(J, z^(L+1)) through :class:`~lecturenn.backprop.ThetaCost` for checked X, Y, λ and weights."""
        Xm, thetas, cast = self._manual_operands(X)
        if cast:
            with torch.autocast(X.device.type, enabled=False):
                return checked_theta_cost(Xm, Y, thetas, self.activation, self.head, lam, weight)
        return checked_theta_cost(Xm, Y, thetas, self.activation, self.head, lam, weight)

    def logits(self, X: Tensor) -> Tensor:
        """z^(L+1) (n, s_{L+1}) for an already-checked X."""
        if self.backprop_used == "manual":
            X, thetas, cast = self._manual_operands(X)
            with torch.autocast(X.device.type, enabled=False) if cast else contextlib.nullcontext():
                return theta_forward(X, thetas, self.activation)
        a = X
        for l, theta in enumerate(self._theta_list(), start=1):
            z = layer_z(a, theta)  # Θ^(l) [1; a^(l)] (n, s_{l+1})
            if l < self.num_layers:
                a = self._hidden(l, z)
        return z

    def _hidden(self, l: int, z: Tensor) -> Tensor:
        """a^(l+1) from z^(l+1): g(z), with batchnorm before g and dropout after it when enabled."""
        if self.norms is not None:
            z = self.norms[l - 1](z)
        a = self.activation.g(z)
        if self.dropout:
            a = torch.nn.functional.dropout(a, self.dropout, self.training)
        return a

    def forward(self, x: Tensor) -> Tensor:
        """h_Θ(x) = a^(L+1): (n, s_1) -> (n, s_{L+1})."""
        x = self._check_X(x)
        if self._checks_values() and not torch.isfinite(x.sum()):  # one cheap reduction
            self._diagnose(x)
        return self.head.h(self.logits(x))

    def propagate(self, x: Tensor) -> Propagation:
        """Forward propagation layer by layer, returning a^(1..L+1) and z^(2..L+1) by layer number."""
        x = self._check_X(x)
        if self._checks_values() and not torch.isfinite(x.sum()):
            self._diagnose(x)
        a, z = {1: x}, {}
        for l, theta in enumerate(self._theta_list(), start=1):
            z[l + 1] = layer_z(a[l], theta)  # Θ^(l) [1; a^(l)] (n, s_{l+1})
            a[l + 1] = self._hidden(l, z[l + 1]) if l < self.num_layers else self.head.h(z[l + 1])
        return Propagation(a=a, z=z)

    # -- cost -----------------------------------------------------------------------------------
    def penalty(self, lam: float, n) -> Tensor:
        """R = λ/(2n) Σ_l Σ_{i, j≥1} (Θ^(l)_ij)²; the bias column is never regularised (n: the rows'
        weight W)."""
        return ridge_penalty(self._theta_list(), lam, n)

    def cost(self, X, Y, lam: float = 0.0, sample_weight=None) -> Tensor:
        """J(Θ) on the rows (X, Y) with regularisation λ (a 0-d tensor):

            J = (1/W) Σ_i w_i cost_i + λ/(2W) Σ_l Σ_{i, j≥1} (Θ^(l)_ij)²,   W = Σ_i w_i

        ``lam`` is λ *for the rows given*: the whole J of :mod:`lecturenn.regularization` when X is
        the training set; a mini-batch is charged ``regularization.batch_lam(λ, n_B, N)``.
        ``sample_weight``: (n,) weights w_i ≥ 0 with Σw > 0, or None (every w_i = 1, W = n: the
        lecture's J, bitwise as without weights); integer weights equal repeated rows.

        ``J.backward()`` fills ``thetas[l-1].grad`` with D^(l) = Δ^(l)/W + (λ/W)[0 | Θ^(l)_{:,1:}],
        Δ^(l) = Σ_i w_i δ_i^(l+1) [1; a_i^(l)]ᵀ. Raises ``ValueError``/``TypeError`` for bad X, Y, λ or
        weights before any gradient is written.
        """
        return self.cost_and_logits(X, Y, lam, sample_weight)[0]

    def cost_and_logits(self, X, Y, lam: float = 0.0, sample_weight=None) -> tuple[Tensor, Tensor]:
        """(J(Θ), z^(L+1)) from one forward pass — z (n, K) detached, for metrics in a training loop.
        Arguments as :meth:`cost`."""
        lam = check_lam(lam)
        X = self._check_X(X)
        n, K = X.shape[0], self.sizes[-1]
        Y = Y_raw = self.head.prepare_targets(as_array(Y), n, K, X.dtype, X.device)
        weight = prepare_sample_weight(sample_weight, n, X.dtype, X.device)
        validate = self._checks_values()
        if validate:  # "Y is valid": a bool where reads are free (the CPU), known now; elsewhere a
            # 0-d tensor read with the check below, class indices clamped so a bad label cannot
            # index out of bounds (a CUDA device-side assert) before it is reported
            Y, targets_ok = self.head.safe_targets(Y, K, read_now=self._reads_are_free(X))
            if targets_ok is False:  # known now, nothing computed yet (before the weights join in)
                self._diagnose(X, Y_raw)
            if weight is not None:
                targets_ok = targets_ok & weights_valid(weight)
        if self.backprop_used == "manual":
            J, z = self._manual_cost(X, Y, lam, weight)
        else:
            z = self.logits(X)  # (n, K)
            W = n if weight is None else weight.sum()
            J = self.head.cost_sum(z, Y, weight) / W
            if lam > 0:
                J = J + self.penalty(lam, W)
            z = z.detach()
        if validate and not self._finite(X, J, targets_ok):
            check_weight_values(weight)
            self._diagnose(X, Y_raw, J, lam, weight)
        return J, z

    def _checks_values(self) -> bool:
        """Check values on this call? ``validate_inputs``, except under torch.func transforms, whose
        tensors cannot be read (``vmap`` refuses ``.item()`` and data-dependent ``if``)."""
        return self.validate_inputs and not transforms_active()

    @staticmethod
    def _reads_are_free(X: Tensor) -> bool:
        """Does reading a value of X's device cost nothing (no host sync)? True on the CPU, where the
        checks read each verdict at once (fewer ops); elsewhere they stay on the device until the one
        read of :meth:`_finite` (``tests/test_overhead.py`` counts the syncs of both ways)."""
        return X.is_cpu

    def _finite(self, X: Tensor, J: Tensor, ok: bool | Tensor = True) -> bool:
        """Are X, every Θ^(l) and J finite, and ``ok`` (a bool, or a 0-d bool tensor still on the
        device)? Checked after the forward pass, before anything is written, with one host read: a
        sum is finite iff every term is (an overflow's false alarm is cleared by :meth:`_diagnose`),
        ~15× cheaper than isfinite(X).all(); a tensor ``ok`` divides the sum (s/1 = s, s/0 is ±inf or
        NaN), so the same read covers it. The verdict is taken in Python from the sum's value: one
        read instead of the kernels of an on-device test. Where reads are free (the CPU) each sum is
        read as it is made and added in Python (half the time of adding them as tensors)."""
        previous = torch.is_grad_enabled()
        torch.set_grad_enabled(False)  # Θ and J require grad: no graph for the check (a third of
        try:  # the cost of ``with torch.no_grad()``, whose context object costs ~4 µs a step)
            if self._reads_are_free(X):
                value = X.sum().item() + J.item() + sum(theta.sum().item() for theta in self._theta_list())
                return math.isfinite(value) and bool(ok)
            total = X.sum() + J
            for theta in self._theta_list():
                total += theta.sum()
            if ok is not True:
                total = total / ok
            return math.isfinite(total.item())
        finally:
            torch.set_grad_enabled(previous)
