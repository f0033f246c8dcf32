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
    max_entries_per_layer: int | None = None,
    seed: int = 0,
    tol: float = 1e-7,
) -> GradientCheck:
    """Check ``net``'s backprop on (X, Y, λ) against central differences of ``net.cost``.

    Args:
        net: a :class:`~lecturenn.ThetaMLP` (not modified).
        X, Y, lam: the batch and λ, as for ``net.cost``.
        eps: the finite-difference step ε.
        max_entries_per_layer: check at most this many randomly chosen entries of each Θ^(l);
            ``None`` checks every entry when the net has at most 5,000 of them, else 100 per layer.
        seed: seeds the choice of sampled entries.
        tol: pass/fail threshold for the relative difference.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    work = copy.deepcopy(net).to(torch.float64)
    work.validate_inputs = True
    if isinstance(X, Tensor):
        X = X.to(device=work.thetas[0].device, dtype=torch.float64)
    if isinstance(Y, Tensor) and Y.is_floating_point():
        Y = Y.to(torch.float64)
    # Anything else (numpy in any order, lists, pandas by position) is converted by the net's own
    # checks, to Θ's float64 and device, with their messages for what holds no numbers.
    X, Y = work.check_batch(X, Y, lam)
    work.zero_grad(set_to_none=True)
    work.cost(X, Y, lam).backward()  # analytic D^(l) through the net's own backprop

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
                j_plus = work.cost(X, Y, lam).item()
                theta[r, c] = original - eps
                j_minus = work.cost(X, Y, lam).item()
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
