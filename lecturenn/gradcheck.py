"""Gradient checking (lecture step 5): compare backprop's D^(l) with central differences of J.

    ∂J/∂Θ_ij ≈ (J(Θ + ε e_ij) − J(Θ − ε e_ij)) / (2ε)

    relative difference = ‖num − ana‖ / ‖num + ana‖      (≈ 1e-9 or less when backprop is right)

Run it once to trust your backprop, then *disable it*: each entry costs two full evaluations of J,
so it never belongs in the training loop. The check runs on a float64 copy of the network, so the
network itself (its Θ and its ``.grad``) is left untouched.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .theta import layer_z
from .validation import check_integer, check_number

__all__ = ["GradientCheck", "LayerCheck", "gradient_check"]

_ALL_ENTRIES_UP_TO = 5000  # check every Θ entry of nets this small; sample bigger ones


@dataclass
class LayerCheck:
    """Agreement for Θ^(layer) over ``n_checked`` entries."""

    layer: int
    n_checked: int
    n_entries: int
    max_abs_err: float
    max_rel_err: float


@dataclass
class GradientCheck:
    """Result of :func:`gradient_check`; ``print(result)`` gives a readable report."""

    layers: list[LayerCheck]
    relative_difference: float  # ‖num − ana‖ / ‖num + ana‖ over all checked entries
    eps: float
    tol: float
    numerical: dict[int, Tensor] = field(repr=False)  # checked entries of Θ^(l) (flat order)
    analytic: dict[int, Tensor] = field(repr=False)
    indices: dict[int, Tensor] = field(repr=False)  # flat indices into Θ^(l) that were checked

    @property
    def passed(self) -> bool:
        """True when the relative difference is below ``tol``."""
        return self.relative_difference < self.tol

    def __str__(self) -> str:
        lines = [f"gradient check (central differences, eps={self.eps:g}, float64)"]
        lines.append(f"{'layer':>8} {'checked':>12} {'max abs err':>12} {'max rel err':>12}")
        for c in self.layers:
            checked = f"{c.n_checked}/{c.n_entries}"
            lines.append(
                f"{'Θ^(' + str(c.layer) + ')':>8} {checked:>12} {c.max_abs_err:12.3e} {c.max_rel_err:12.3e}"
            )
        verdict = "OK" if self.passed else "FAILED"
        lines.append(
            f"relative difference ‖num − ana‖/‖num + ana‖ = {self.relative_difference:.3e}  "
            f"({verdict}, tol {self.tol:g})"
        )
        return "\n".join(lines)


def gradient_check(
    net,
    X,
    Y,
    lam: float = 0.0,
    eps: float = 1e-4,
    *,
    sample_weight=None,
    max_entries_per_layer: int | None = None,
    seed: int = 0,
    tol: float = 1e-7,
) -> GradientCheck:
    """Check ``net``'s backprop on (X, Y, λ) against central differences of ``net.cost``.

    Args:
        net: a :class:`~lecturenn.ThetaMLP` (not modified).
        X, Y, lam: the batch and λ, as for ``net.cost``.
        eps: the finite-difference step ε (a finite number > 0).
        sample_weight: (n,) weights w_i ≥ 0 with Σw > 0, or None, as for ``net.cost``: with weights
            J = (1/W) Σ_i w_i cost_i + λ/(2W) ΣΘ² is checked, i.e. a head's weighted
            ``cost_sum(z, Y, weight)`` against the manual backprop's w_i δ_i. A head whose
            ``cost_sum`` ignores ``weight`` passes without weights and fails with them (on the
            manual backprop; autograd differentiates whatever cost_sum computes), so check a new
            head both ways, e.g. ``sample_weight=torch.rand(n) + 0.5``.
        max_entries_per_layer: check at most this many randomly chosen entries of each Θ^(l) (an
            integer >= 1); ``None`` checks every entry when the net has at most 5,000 of them,
            else 100 per layer.
        seed: seeds the choice of sampled entries.
        tol: pass/fail threshold for the relative difference (a finite number > 0).

    Also checks the activation's speed options on the data: ``g_out`` and ``fused_backward``
    against ``g`` and ``gprime`` at z^(2) = Θ^(1) [1; x] (:meth:`Activation.check_speed_forms`;
    ``ValueError`` naming the field where they differ).

    Raises ``TypeError``/``ValueError`` for a bad argument, with the argument's name, before any work.
    """
    eps = check_number(eps, "eps", low=0, low_open=True)
    tol = check_number(tol, "tol", low=0, low_open=True)
    if max_entries_per_layer is not None:
        max_entries_per_layer = check_integer(max_entries_per_layer, "max_entries_per_layer", low=1)
    seed = check_integer(seed, "seed")
    work = copy.deepcopy(net).to(torch.float64)
    work.validate_inputs = True
    if isinstance(X, Tensor):
        X = X.to(device=work.thetas[0].device, dtype=torch.float64)
    if isinstance(Y, Tensor) and Y.is_floating_point():
        Y = Y.to(torch.float64)
    if isinstance(sample_weight, Tensor) and sample_weight.is_floating_point():
        sample_weight = sample_weight.detach().to(device=work.thetas[0].device, dtype=torch.float64)
    # Anything else (numpy in any order, lists, pandas by position) is converted by the net's own
    # checks, to Θ's float64 and device, with their messages for what holds no numbers.
    X, Y = work.check_batch(X, Y, lam)
    weight = work.check_sample_weight(sample_weight, X)
    if work.num_layers > 1:  # the hidden activation's g_out / fused_backward on real z^(2) values
        with torch.no_grad():
            theta = work.thetas[0]
            work.activation.check_speed_forms(layer_z(X, theta))
    work.zero_grad(set_to_none=True)
    work.cost(X, Y, lam, weight).backward()  # analytic D^(l) through the net's own backprop

    total = sum(t.numel() for t in work.thetas)
    if max_entries_per_layer is None:
        max_entries_per_layer = total if total <= _ALL_ENTRIES_UP_TO else 100
    gen = torch.Generator().manual_seed(seed)
    layers, numerical, analytic, indices = [], {}, {}, {}
    with torch.no_grad():
        for l, theta in enumerate(work.thetas, start=1):
            cols = theta.shape[1]
            if theta.numel() <= max_entries_per_layer:
                idx = torch.arange(theta.numel())
            else:
                idx = torch.randperm(theta.numel(), generator=gen)[:max_entries_per_layer].sort().values
            num = torch.empty(len(idx), dtype=torch.float64)
            for k, i in enumerate(idx.tolist()):
                r, c = divmod(i, cols)  # row-major flat index -> Θ_rc
                original = theta[r, c].item()
                theta[r, c] = original + eps
                j_plus = work.cost(X, Y, lam, weight).item()
                theta[r, c] = original - eps
                j_minus = work.cost(X, Y, lam, weight).item()
                theta[r, c] = original
                num[k] = (j_plus - j_minus) / (2 * eps)
            ana = theta.grad.reshape(-1)[idx.to(theta.device)].cpu()
            abs_err = (num - ana).abs()
            rel_err = abs_err / (num.abs() + ana.abs()).clamp_min(torch.finfo(torch.float64).tiny)
            layers.append(LayerCheck(l, len(idx), theta.numel(), float(abs_err.max()), float(rel_err.max())))
            numerical[l], analytic[l], indices[l] = num, ana, idx
    num_all = torch.cat(list(numerical.values()))
    ana_all = torch.cat(list(analytic.values()))
    denom = torch.linalg.vector_norm(num_all + ana_all)
    rel = float(torch.linalg.vector_norm(num_all - ana_all) / denom) if denom > 0 else 0.0
    return GradientCheck(layers, rel, eps, tol, numerical, analytic, indices)
