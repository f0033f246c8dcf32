"""An example plugin: a leaky ReLU activation and a Poisson head for counts, registered on import.

    PYTHONPATH=examples python scripts/train.py plugins=[my_plugin] model.activation=leaky \\
        data=table data.path=counts.csv data.target=count data.task=regression \\
        data.standardize=false model.head=poisson

(see the README, "Your own activation or head"). Registering is all a plugin does; any module on
the Python path that calls :func:`lecturenn.register_activation` / :func:`lecturenn.register_head`
on import will do.
"""

import torch
import torch.nn.functional as F
from torch import nn

import lecturenn as ln

# leaky ReLU, slope 0.01: g'(z) from a = g(z) is 1 where a > 0, else 0.01 (in a's dtype)
ln.register_activation(
    "leaky",
    lambda z: F.leaky_relu(z, 0.01),
    lambda a: (a > 0).to(a.dtype) * 0.99 + 0.01,
    torch_module=lambda: nn.LeakyReLU(0.01),
    onnx="LeakyRelu",
)


def poisson_cost(z, Y, weight=None):
    """Σ_i w_i cost_i with cost_i = Σ_k (e^{z_ik} − y_ik z_ik), the Poisson deviance up to log y!."""
    per_row = (torch.exp(z) - Y * z).sum(dim=1)  # (n,)
    return per_row.sum() if weight is None else (per_row * weight).sum()


def poisson_delta(h, Y, inplace=False):
    """δ^(L+1) = ∂cost/∂z = e^z − y = h − y."""
    return h.sub_(Y) if inplace else h - Y


ln.register_head(
    "poisson",
    torch.exp,
    poisson_cost,
    poisson_delta,
    valid=lambda Y: (Y >= 0).all(),
    explain=lambda Y: "the poisson head needs counts y >= 0",
    tasks=("regression",),
    sklearn="exp",  # MLPRegressor(loss="poisson")'s out_activation_
)  # no torch_module (torch.nn has no Exp module): to_sequential and export_onnx refuse it by name
