"""The training state behind the estimators: the network's own Θ^(l) with preallocated gradients,
one torch optimizer over them, and the training rows on the device as fixed mini-batch views.

Per mini-batch the manual path is one call of :func:`lecturenn.backprop.cost_and_gradient` — the
same forward propagation, output error and δ-recursion as ``net.cost(X, Y, lam).backward()``,
run back to back without an autograd tape and written straight into the Θ's ``.grad`` tensors —
and one optimizer step (:func:`._fast_step.fast_step`) on one flat parameter behind every Θ^(l)
(:func:`_flatten`); the epoch's loss is summed on the device (no host sync per batch).

With ``cuda_graph=True`` that same step (:meth:`Engine.train_step`) is captured in a CUDA graph
per batch size and replayed (:class:`lecturenn.step_graph.StepGraph`, ``Engine.graph``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from ..backprop import Workspace, cost_and_gradient, forward_layers
from ..network import ThetaMLP, as_array
from ..optim import LAMB
from ..step_graph import StepGraph
from ._fast_step import fast_step

_DTYPES = {"float32": (torch.float32, np.float32), "float64": (torch.float64, np.float64)}

#: Below this many multiply-adds per training step (batch rows × Θ entries) a CPU fit runs on one
#: thread. A small net's step is ~20 small kernels, where OpenMP's fork/join per kernel costs more
#: than a second core saves, and on a busy machine a descheduled OpenMP thread stalls every kernel:
#: on the 2-core CPU, with other jobs running, 2 threads made a 64-100-10 step at batch 200 2-10×
#: slower and a (1347 × 65) @ (65 × 100) product 40× slower than 1 thread. Large steps (e.g.
#: 784-256-256-10 at batch 256, 69 M) keep torch's thread count.
ONE_THREAD_BELOW = 50_000_000
#: the solvers whose step a CUDA graph can capture: Adam/AdamW with ``capturable=True`` (their step
#: count lives on the device), SGD (no step count). LAMB reads its step count on the host
#: (``float(state["step"])``), Adagrad/RMSprop are not offered capturable here, L-BFGS runs a
#: Python line search with host reads.
GRAPH_SOLVERS = ("adam", "adamw", "sgd", "gd")


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def resolve_device(device) -> torch.device:
    """ "auto" → CUDA when available, else CPU; anything else must name an available device."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def resolve_dtype(dtype) -> tuple[torch.dtype, type]:
    """(torch dtype, numpy dtype) for "float32" / "float64" (numpy and torch dtypes accepted)."""
    name = dtype
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    elif not isinstance(dtype, str):
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = None
    if name not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return _DTYPES[name]


@contextlib.contextmanager
def cpu_threads(device: torch.device, sizes: list[int], batch_size: int):
    """Run a small net's CPU fit on one thread (see :data:`ONE_THREAD_BELOW`); restore afterwards."""
    macs = batch_size * sum((s + 1) * t for s, t in zip(sizes[:-1], sizes[1:]))
    before = torch.get_num_threads()
    if device.type != "cpu" or before == 1 or macs >= ONE_THREAD_BELOW:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_tensor(X, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A validated (dense or sparse) array as a C-contiguous tensor on ``device``, without numpy
    warnings (a DataFrame ``y`` validates to a Fortran-order array; batches are views of rows)."""
    if sp.issparse(X):
        X = X.toarray()
    X = as_array(X)
    if not X.flags.writeable:  # read-only memmaps: torch.from_numpy warns on those
        X = X.copy()
    return torch.from_numpy(X).to(device=device, dtype=dtype)


def copy_net(net: ThetaMLP, device=None, dtype=None) -> ThetaMLP:
    """A ThetaMLP with the same architecture and a contiguous copy of Θ (on ``device``, in ``dtype``)."""
    theta = net.thetas[0]
    out = ThetaMLP(
        **net.config,
        init="zeros",
        device=theta.device if device is None else device,
        dtype=theta.dtype if dtype is None else dtype,
    )
    with torch.no_grad():
        for mine, theirs in zip(out.thetas, net.thetas):
            mine.copy_(theirs)
    out.validate_inputs = net.validate_inputs
    return out


def to_cpu(obj):
    """Tensors in a (nested) optimizer state dict moved to the CPU, for pickling."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


# ---------------------------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------------------------
def make_optimizer(solver: str, params: list[Tensor], est) -> torch.optim.Optimizer:
    """The torch optimizer of a solver, with the fused kernel where this torch has one."""
    lr = float(est.learning_rate_init)
    if solver == "lbfgs":
        return torch.optim.LBFGS(
            params,
            lr=1,
            max_iter=int(est.max_iter),
            max_eval=int(est.max_fun),
            tolerance_grad=float(est.tol),
            tolerance_change=1e-9,
            history_size=10,
            line_search_fn="strong_wolfe",
        )
    betas, eps = (float(est.beta_1), float(est.beta_2)), float(est.epsilon)
    if solver == "lamb":  # its trust ratio is per layer: params are then the Θ^(l), not one flat tensor
        return LAMB(params, lr=lr, betas=betas, eps=eps)
    if solver in ("adam", "adamw"):
        optimizer = torch.optim.Adam if solver == "adam" else torch.optim.AdamW

        def make(**kw):
            return optimizer(params, lr=lr, betas=betas, eps=eps, **kw)

        if getattr(est, "cuda_graph", False):  # the device-side step count a graph can replay
            make = _with(make, capturable=True)

    elif solver == "adagrad":

        def make(**kw):
            return torch.optim.Adagrad(params, lr=lr, eps=eps, **kw)

    elif solver == "rmsprop":

        def make(**kw):
            return torch.optim.RMSprop(params, lr=lr, eps=eps, **kw)

    else:
        momentum = float(est.momentum) if solver == "sgd" else 0.0  # "gd": the lecture's plain step
        nesterov = bool(est.nesterovs_momentum) and momentum > 0

        def make(**kw):
            return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, **kw)

    # The fused kernel updates every Θ^(l) in one call; "foreach" where this torch has no fused kernel.
    for kwargs in ({"fused": True}, {"foreach": True}):
        try:
            return make(**kwargs)
        except (RuntimeError, ValueError, TypeError):
            continue
    return make()


def _with(make, **fixed):
    """``make`` with ``fixed`` keyword arguments added."""
    return lambda **kw: make(**fixed, **kw)


def _flatten(params: list[nn.Parameter]) -> tuple[nn.Parameter, list[Tensor]]:
    """One flat parameter behind every Θ^(l), one flat gradient behind every D^(l).

    Each Θ^(l) keeps its identity (the network, ``net.cost`` and the caller see every update) but
    its storage becomes a slice of the flat parameter (``Tensor.set_``), and its ``.grad`` a view of
    the flat gradient; the optimizer then updates all layers in one call on one tensor (the fused
    Adam step on one tensor costs half of the same step on L tensors, on a small net). Returns
    (the flat parameter, with ``.grad`` set; the Θ-shaped gradient views)."""
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    with torch.no_grad():
        for p in params:
            p.set_(flat.untyped_storage(), offset, p.shape)  # Θ^(l): elements offset .. offset + k
            offset += p.numel()
    grads = _views(flat.grad, params)
    for p, grad in zip(params, grads):
        p.grad = grad
    return flat, grads


def _views(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    """Consecutive slices of the 1-D ``flat`` shaped like the tensors of ``like``."""
    out, offset = [], 0
    for t in like:
        out.append(flat[offset : offset + t.numel()].view(t.shape))
        offset += t.numel()
    return out


class Engine:
    """Training state of one estimator (see the module docstring): ``net``'s own parameters Θ^(l),
    their ``.grad`` tensors D^(l) (allocated once, overwritten by every gradient evaluation), the
    optimizer, the [1, a^(l)] buffers of the bias-augmented layout, and ``loss_sum`` (Σ over the
    epoch's batches of n_B · J_B, on the device).

    Kept between ``partial_fit`` calls together with the optimizer, whose state belongs to Θ.

    ``graph``: ``"cuda"`` (or ``"record"``, the CPU test backend) to capture :meth:`train_step` in
    a :class:`~lecturenn.step_graph.StepGraph` (``self.graph``), None (default) for the eager step.
    """

    def __init__(self, net: ThetaMLP, solver: str, est, backprop: str, graph: str | None = None):
        self.net, self.backprop, self.solver = net, backprop, solver
        self.params = list(net.thetas)
        self.param, self.grads = _flatten(self.params)
        self.thetas = [p.detach() for p in self.params]  # the same storage, outside autograd
        # views, buffers and the flat ridge scratch made once (cost_and_gradient's workspace)
        self.workspace = Workspace(self.thetas, self.grads, flat=(self.param.detach(), self.param.grad))
        # one flat parameter for one fused update, except LAMB, whose trust ratio is per Θ^(l)
        self.optimizer = make_optimizer(solver, self.params if solver == "lamb" else [self.param], est)
        self.step = fast_step(self.optimizer)  # optimizer.step() minus its wrapper (see _fast_step)
        self.loss_sum = torch.zeros((), dtype=self.thetas[0].dtype, device=self.thetas[0].device)
        device = self.loss_sum.device
        self.graph = None if graph is None else StepGraph(self.train_step, device, backend=graph)

    def drives(self, net: ThetaMLP, solver: str) -> bool:
        """Is this engine still training ``net`` (its very parameters, still views of ``param``)?"""
        same = all(
            p is q and p.data_ptr() == t.data_ptr() for p, q, t in zip(net.thetas, self.params, self.thetas)
        )
        return solver == self.solver and self.net is net and same

    def accumulate(self, X1: Tensor, Y: Tensor, lam: float, weight: Tensor | None = None) -> None:
        """Write D^(l) of J_B = ``net.cost(X, Y, lam, sample_weight=weight)`` into the Θ's ``.grad``
        and add W_B·J_B to ``loss_sum`` (W_B = n, or Σ w over the batch). ``X1`` is [1, X]
        (:func:`lecturenn.theta.with_bias_unit`); ``lam`` the batch's λ_B =
        ``regularization.batch_lam(λ, W_B, W)``."""
        if self.backprop == "manual":
            net, ws, total = self.net, self.workspace, self.loss_sum
            cost_and_gradient(
                X1, Y, self.thetas, net.activation, net.head, lam, weight=weight, workspace=ws, loss=total
            )
            return
        # the reference: torch autograd differentiates net.cost
        J = self.net.cost(X1[:, 1:], Y, lam, sample_weight=weight)
        for grad, d in zip(self.grads, torch.autograd.grad(J, self.params)):
            grad.copy_(d)
        self.loss_sum.add_(J.detach() * (X1.shape[0] if weight is None else weight.sum()))

    def train_step(self, X1: Tensor, Y: Tensor, lam: float):
        """One mini-batch step — :meth:`accumulate` then the optimizer update — the eager loop's two
        calls, and what :attr:`graph` captures. Returns the [1, a^(l)] buffers of this batch size,
        which a captured graph keeps alive (the workspace may drop them from its cache)."""
        self.accumulate(X1, Y, lam)
        self.step()
        return self.workspace.buffers(X1.shape[0]) if self.backprop == "manual" else None

    @torch.no_grad()
    def logits(self, X1: Tensor) -> Tensor:
        """z^(L+1) for [1, X], without gradients."""
        return forward_layers(X1, self.thetas, self.net.activation, False, self.workspace)[0]


class Batches:
    """Training rows on the device — X, Y and optionally their sample weights w — and their
    mini-batches. Each epoch reshuffles by one gather into fixed buffers, so every batch is a
    precomputed slice (a view): (X_B, Y_B) or (X_B, Y_B, w_B)."""

    def __init__(self, X: Tensor, Y: Tensor, batch_size: int, shuffle: bool, weight: Tensor | None = None):
        self.N = X.shape[0]
        self.columns = [X, Y] if weight is None else [X, Y, weight]
        self.shuffle = shuffle and batch_size < self.N
        if self.shuffle:
            self.shuffled = [torch.empty_like(t) for t in self.columns]
        source = self.shuffled if self.shuffle else self.columns
        self.batches = [tuple(t[i : i + batch_size] for t in source) for i in range(0, self.N, batch_size)]

    def epoch(self, generator: torch.Generator) -> list[tuple[Tensor, ...]]:
        """The batches of one epoch (reshuffled in place when shuffling)."""
        if self.shuffle:
            perm = torch.randperm(self.N, generator=generator).to(self.columns[0].device, non_blocking=True)
            for t, out in zip(self.columns, self.shuffled):
                torch.index_select(t, 0, perm, out=out)
        return self.batches
