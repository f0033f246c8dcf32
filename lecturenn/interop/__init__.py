"""Interoperability: the same Θ^(1..L) in scikit-learn, plain ``torch.nn``, files and ONNX.

Every converter maps the lecture's Θ^(l) ∈ R^{s_{l+1} × (s_l + 1)} (bias in column 0) one to one:

===================================  ====================================================================
where                                Θ^(l) is stored as
===================================  ====================================================================
``ThetaMLP.thetas[l-1]``             Θ^(l)
scikit-learn ``MLPClassifier`` /     ``intercepts_[l-1] = Θ^(l)[:, 0]``, ``coefs_[l-1] = Θ^(l)[:, 1:]ᵀ``
``MLPRegressor``                     (:mod:`lecturenn.interop.sklearn`)
``torch.nn.Linear`` in a             ``bias = Θ^(l)[:, 0]``, ``weight = Θ^(l)[:, 1:]``
``nn.Sequential``                    (:mod:`lecturenn.interop.torch_nn`)
``.npz`` / ``.mat`` files            variables ``Theta1``, ``Theta2``, … exactly as in the classic ex4
                                     exercise (:mod:`lecturenn.interop.files`)
ONNX                                 the forward pass h_Θ(x) as Gemm/MatMul + activations
                                     (:mod:`lecturenn.interop.onnx`)
===================================  ====================================================================

The public functions (also reachable as ``lecturenn.from_sklearn`` etc.) are imported lazily, so
``import lecturenn.interop`` does not import scikit-learn, scipy or onnx.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "from_sklearn": "lecturenn.interop.sklearn",
    "to_sklearn": "lecturenn.interop.sklearn",
    "to_sequential": "lecturenn.interop.torch_nn",
    "from_sequential": "lecturenn.interop.torch_nn",
    "save_thetas": "lecturenn.interop.files",
    "load_thetas": "lecturenn.interop.files",
    "export_onnx": "lecturenn.interop.onnx",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lecturenn.interop' has no attribute {name!r}")
