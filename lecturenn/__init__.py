"""lecturenn: the classic neural-network lecture, in PyTorch.

Multilayer perceptrons whose weights are the lecture's Θ^(l) matrices (bias in column 0), whose
backpropagation is the lecture's δ-recursion written by hand, cross-checked against torch autograd.

>>> import lecturenn as ln
>>> net = ln.ThetaMLP([400, 25, 10], hidden="sigmoid", output="sigmoid")
>>> [tuple(t.shape) for t in net.thetas]
[(25, 401), (10, 26)]
"""

from .activations import ACTIVATIONS, Activation, get_activation, register_activation
from .backprop import Backprop, backpropagate
from .gradcheck import GradientCheck, gradient_check
from .heads import HEADS, Head, get_head, register_head
from .network import Propagation, ThetaMLP
from .perceptron import PerceptronResult, batch_perceptron, perceptron_rule
from .theta import ThetaLinear, init_theta

__version__ = "0.1.0"

# Interop and estimators import scikit-learn / scipy / onnx: load them on first use only, so that
# `import lecturenn` stays as light as torch itself.
_LAZY = {
    "from_sklearn": "lecturenn.interop.sklearn",
    "to_sklearn": "lecturenn.interop.sklearn",
    "save_thetas": "lecturenn.interop.files",
    "load_thetas": "lecturenn.interop.files",
    "export_onnx": "lecturenn.interop.onnx",
    "ThetaMLPClassifier": "lecturenn.estimators",
    "ThetaMLPRegressor": "lecturenn.estimators",
    "plot_network": "lecturenn.training.figures.network",
}


#: subpackages reachable as attributes after a plain ``import lecturenn``
#: (``lecturenn.data.NpyStreamDataModule``), imported on first use like the names above
_SUBPACKAGES = ("data", "estimators", "interop", "training")


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"lecturenn.{name}")
    raise AttributeError(f"module 'lecturenn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})


__all__ = [
    *_LAZY,
    "ACTIVATIONS",
    "Activation",
    "Backprop",
    "GradientCheck",
    "HEADS",
    "Head",
    "PerceptronResult",
    "Propagation",
    "ThetaLinear",
    "ThetaMLP",
    "backpropagate",
    "batch_perceptron",
    "get_activation",
    "get_head",
    "gradient_check",
    "init_theta",
    "perceptron_rule",
    "register_activation",
    "register_head",
]
