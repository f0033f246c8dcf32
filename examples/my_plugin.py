"""An example plugin: a leaky ReLU activation and a log-cosh regression head, registered on import.

    PYTHONPATH=examples python scripts/train.py plugins=[my_plugin] model.activation=leaky \\
        data=table data.path=my.csv data.target=price data.task=regression model.head=logcosh

(see the README, "Your own activation or head"). Registering is all a plugin does; any module on
the Python path that calls :func:`lecturenn.register_activation` / :func:`lecturenn.register_head`
on import will do. (lecturenn has both kinds built in too — ``leaky_relu:SLOPE``, and the poisson
head for counts — so a plugin is for what it lacks.)
"""

import math

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


def logcosh_cost(z, Y, weight=None):
    """Σ_i w_i cost_i with cost_i = Σ_k log cosh(h_ik − y_ik), h = z: squared error near 0, absolute
    error far out (robust to outliers). log cosh d = d + softplus(−2d) − log 2, finite for any d."""
    d = z - Y
    per_row = (d + F.softplus(-2 * d) - math.log(2)).sum(dim=1)  # (n,)
    return per_row.sum() if weight is None else (per_row * weight).sum()


def logcosh_delta(h, Y, inplace=False):
    """δ^(L+1) = ∂cost/∂z = tanh(h − y)."""
    return h.sub_(Y).tanh_() if inplace else torch.tanh(h - Y)


ln.register_head(
    "logcosh",
    lambda z: z,
    logcosh_cost,
    logcosh_delta,
    tasks=("regression",),
    torch_module=nn.Identity,  # h = z: the exporters emit nothing after the last Linear
    onnx="Identity",
)  # no sklearn name: scikit-learn's MLPRegressor has no log-cosh loss, so to_sklearn refuses it by name
