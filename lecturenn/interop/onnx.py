"""Export h_Θ(x) to ONNX.

The exported graph is the forward pass only — z^(l+1) = Θ^(l)[:, 1:] a^(l) + Θ^(l)[:, 0] (a Gemm /
MatMul + Add), a^(l+1) = g(z^(l+1)), and the head at the end — built from :func:`to_sequential`,
i.e. plain ``torch.nn`` modules. The hand-written δ-recursion (a custom ``autograd.Function``) is a
training-time detail and never reaches the exporter, so the file runs in any ONNX runtime:

* input ``"x"`` of shape (batch, s_1), output ``"h"`` of shape (batch, s_{L+1}); the batch
  dimension is dynamic;
* dtype is the net's (float32 nets give a float32 graph);
* the net is exported in eval mode (dropout off, batch normalisation with its running statistics);
* the activation and the head must name an ONNX operator and a ``torch.nn`` module in their
  registry entries (``onnx``, ``torch_module``: all built-ins do); an entry registered without them
  is refused with a ``ValueError`` naming it.

Export uses the current ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` + onnxscript); if
onnxscript is missing, or the dynamo exporter fails, it falls back to the TorchScript exporter
(``dynamo=False``). The exporter's progress messages and warnings are silenced.

onnxruntime has no double-precision ``Softplus``, ``LeakyRelu`` or ``Elu`` kernels (and an ONNX
float attribute such as LeakyRelu's ``alpha`` is float32, which would round a double slope), so for
non-float32 nets these are exported as the equivalent plain ops: max(z, 0) + log(1 + e^{−|z|});
where(z > 0, z, SLOPE·z); where(z > 0, z, α(e^z − 1)). float32 nets get the operators themselves,
with ``alpha`` = SLOPE or α.

Needs the ``onnx`` extra: ``pip install "lecturenn[onnx]"`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..network import ThetaMLP
from .torch_nn import to_sequential

__all__ = ["export_onnx"]

_HINT = 'ONNX export needs the onnx extra: pip install "lecturenn[onnx]"'


class _PlainSoftplus(nn.Module):
    """softplus(z) = max(z, 0) + log(1 + e^{−|z|}), in ops every runtime has for every dtype."""

    def forward(self, z: Tensor) -> Tensor:
        return torch.relu(z) + torch.log1p(torch.exp(-torch.abs(z)))


class _PlainLeakyReLU(nn.Module):
    """where(z > 0, z, SLOPE·z), with SLOPE a constant of z's dtype (not a float32 attribute)."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.register_buffer("slope", torch.tensor(slope, dtype=torch.float64))  # a Python float: float32

    def forward(self, z: Tensor) -> Tensor:
        return torch.where(z > 0, z, z * self.slope.to(z.dtype))


class _PlainELU(nn.Module):
    """where(z > 0, z, α(e^z − 1)) (ONNX has no expm1: absolute error ~α·1e-16 near 0)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float64))

    def forward(self, z: Tensor) -> Tensor:
        return torch.where(z > 0, z, self.alpha.to(z.dtype) * (torch.exp(z) - 1))


# the torch.nn modules whose ONNX operator onnxruntime runs in float32 only -> the same g in plain ops
_PLAIN = {
    nn.Softplus: lambda m: _PlainSoftplus(),
    nn.LeakyReLU: lambda m: _PlainLeakyReLU(m.negative_slope),
    nn.ELU: lambda m: _PlainELU(m.alpha),
}


@contextlib.contextmanager
def _quiet():
    """Silence the exporter: its logging, its warnings and anything it prints."""
    loggers = [
        logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(net: ThetaMLP, path: str | os.PathLike, opset: int | None = None) -> Path:
    """Write h_Θ(x) of ``net`` as an ONNX model to ``path``; returns the path.

    Args:
        net: the ThetaMLP (exported in eval mode; ``net`` itself is not changed).
        path: the ``.onnx`` file to write (a single self-contained file).
        opset: ONNX opset version; ``None`` lets torch pick its recommended one.

    Input ``"x"`` (batch, s_1), output ``"h"`` (batch, s_{L+1}), dynamic batch dimension.
    """
    if importlib.util.find_spec("onnx") is None:
        raise ImportError(_HINT)
    if not isinstance(net, ThetaMLP):
        raise TypeError(f"export_onnx expects a ThetaMLP, got {type(net).__name__}")
    entries = [(net.activation, "hidden activation")] if net.num_layers > 1 else []
    for entry, role in [*entries, (net.head, "output head")]:
        if entry.onnx is None or entry.torch_module is None:
            lacks = "ONNX operator" if entry.onnx is None else "torch.nn module to trace"
            raise ValueError(
                f"export_onnx: the {role} {entry.name!r} has no {lacks}, so ONNX cannot express it "
                f"(register it with onnx='<operator>' and torch_module=... to export it)"
            )
    path = Path(path)
    model = to_sequential(net).eval()
    ref = net.thetas[0]
    if ref.dtype != torch.float32:
        for i, module in enumerate(model):
            if type(module) in _PLAIN:
                model[i] = _PLAIN[type(module)](module)
    example = torch.zeros(2, net.sizes[0], dtype=ref.dtype, device=ref.device)  # batch 2: not specialised
    common = {"input_names": ["x"], "output_names": ["h"], "opset_version": opset}

    dynamo_error: Exception | None = None
    if importlib.util.find_spec("onnxscript") is not None:
        try:
            with _quiet():
                program = torch.onnx.export(
                    model,
                    (example,),
                    dynamo=True,
                    verbose=False,
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    **common,
                )
                program.save(str(path))
            return path
        except Exception as err:  # fall back to the TorchScript exporter below
            dynamo_error = err
    try:
        with _quiet():
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                dynamic_axes={"x": {0: "batch"}, "h": {0: "batch"}},
                **common,
            )
    except Exception as err:
        if dynamo_error is not None:
            raise RuntimeError(
                f"ONNX export failed with both exporters: dynamo: {dynamo_error!r}; TorchScript: {err!r}"
            ) from dynamo_error
        raise
    if dynamo_error is not None:
        warnings.warn(
            f"the dynamo ONNX exporter failed ({dynamo_error!r}); exported with the TorchScript exporter",
            RuntimeWarning,
            stacklevel=2,
        )
    return path
