"""The training engine behind the estimators: flat Θ, the per-batch δ-recursion, device batches.

Every Θ^(l) is a view into one flat parameter and every D^(l) a view into one flat gradient, so
one optimizer call updates all layers; the data live on the device as [1, X] (the bias unit as
column 0) and Y, and each epoch is one shuffle-gather into fixed buffers whose slices are the
mini-batches. Per mini-batch the manual path issues about 20 torch calls and no host sync.
"""

from __future__ import annotations

import contextlib
import math
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..activations import get_activation
from ..network import ThetaMLP, as_array

_DTYPES = {"float32": (torch.float32, np.float32), "float64": (torch.float64, np.float64)}

#: Below this many multiply-adds per training step (batch rows × Θ entries) a CPU fit runs on one
#: thread. A small net's step is ~20 small kernels, where OpenMP's fork/join per kernel costs more
#: than a second core saves, and on a busy machine a descheduled OpenMP thread stalls every kernel:
#: on the 2-core CPU, with other jobs running, 2 threads made a 64-100-10 step at batch 200 2-10×
#: slower and a (1347 × 65) @ (65 × 100) product 40× slower than 1 thread. Large steps (e.g.
#: 784-256-256-10 at batch 256, 69 M) keep torch's thread count.
ONE_THREAD_BELOW = 50_000_000


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


def is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


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


def with_ones(X: Tensor) -> Tensor:
    """[1, X]: the bias unit a_0 = 1 as column 0, written once per fit instead of once per batch."""
    out = torch.empty(X.shape[0], X.shape[1] + 1, dtype=X.dtype, device=X.device)
    out[:, 0] = 1
    out[:, 1:] = X
    return out


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


def _activation_out(name: str):
    """a = g(z) written into a preallocated, strided buffer, in one kernel where torch has one."""
    if name == "sigmoid":
        return lambda z, out: torch.sigmoid(z, out=out)
    if name == "tanh":
        return lambda z, out: torch.tanh(z, out=out)
    if name == "relu":
        return lambda z, out: torch.clamp_min(z, 0, out=out)
    g = get_activation(name).g
    return lambda z, out: out.copy_(g(z))


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
    if solver == "adam":

        def make(**kw):
            betas = (float(est.beta_1), float(est.beta_2))
            return torch.optim.Adam(params, lr=lr, betas=betas, eps=float(est.epsilon), **kw)

    else:
        momentum = float(est.momentum) if solver == "sgd" else 0.0  # "gd": the lecture's plain step
        nesterov = bool(est.nesterovs_momentum) and momentum > 0

        def make(**kw):
            return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, **kw)

    # One flat parameter, so "foreach" buys nothing; the fused kernel is a single call
    # (Adam on the 2-core CPU: fused 45 µs, single-tensor 65 µs, foreach 110 µs per step).
    for kwargs in ({"fused": True}, {"foreach": False}):
        try:
            return make(**kwargs)
        except (RuntimeError, ValueError, TypeError):
            continue
    return make()


class Stepper:
    """``optimizer.step()`` for one flat parameter, minus the per-call Python wrapper.

    The first call is the optimizer's own ``step()`` (which creates its state); later calls run
    the same update through torch's functional ``torch.optim.adam.adam`` / ``torch.optim.sgd.sgd``
    on that state — the function ``step()`` itself ends in — which saves its hooks, profiler
    records and state look-ups (about 50 of ~100 µs per step on the 2-core CPU). Any signature
    mismatch in another torch version falls back to ``step()`` for good.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, param: Tensor):
        self.optimizer, self.param = optimizer, param
        self._fast = None if isinstance(optimizer, (torch.optim.Adam, torch.optim.SGD)) else False

    def __call__(self) -> None:
        fast = self._fast
        if fast:
            try:
                fast()
                return
            except TypeError:  # the functional API changed: use step() from now on
                self._fast = False
                # the TypeError is raised while binding arguments, before anything is updated
        self.optimizer.step()
        if fast is None:
            self._fast = self._build()

    def _build(self):
        opt, p = self.optimizer, self.param
        group, state = opt.param_groups[0], opt.state[p]
        common = {"foreach": group.get("foreach"), "fused": group.get("fused"), "maximize": False}
        if isinstance(opt, torch.optim.Adam):
            if group.get("amsgrad") or group.get("weight_decay") or group.get("capturable"):
                return False
            from torch.optim.adam import adam

            args = ([p], [p.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]])
            kw = dict(
                common,
                amsgrad=False,
                beta1=group["betas"][0],
                beta2=group["betas"][1],
                lr=group["lr"],
                weight_decay=0.0,
                eps=group["eps"],
            )
            return lambda: adam(*args, **kw)
        if group.get("weight_decay") or group.get("dampening"):
            return False
        from torch.optim.sgd import sgd

        buffers = [state.get("momentum_buffer")]
        if group["momentum"] > 0 and buffers[0] is None:
            return False
        kw = dict(
            common,
            weight_decay=0.0,
            momentum=group["momentum"],
            lr=group["lr"],
            dampening=0.0,
            nesterov=group["nesterov"],
        )
        return lambda: sgd([p], [p.grad], buffers, **kw)


# ---------------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------------
class Engine:
    """Device-resident training state of one estimator (see the module docstring).

    Kept between ``partial_fit`` calls together with the optimizer, whose moments belong to the
    flat parameter; the data buffers are made per call.
    """

    def __init__(self, net: ThetaMLP, solver: str, est, backprop: str):
        self.net, self.backprop, self.solver = net, backprop, solver
        self.L = net.num_layers
        thetas = [t.detach() for t in net.thetas]
        flat = torch.cat([t.reshape(-1) for t in thetas])
        self.param = nn.Parameter(flat)
        self.param.grad = torch.zeros_like(flat)
        self.thetas, self.grads, self.weights, self.thetas_t = [], [], [], []
        mask = torch.ones_like(flat)
        offset = 0
        for theta in thetas:
            k = theta.numel()
            view = self.param.data[offset : offset + k].view(theta.shape)
            self.thetas.append(view)
            self.grads.append(self.param.grad[offset : offset + k].view(theta.shape))
            self.weights.append(view[:, 1:])  # Θ_{:,1:}: the δ-recursion skips the bias column
            self.thetas_t.append(view.t())  # Θᵀ: z = [1, a] Θᵀ
            mask[offset : offset + k].view(theta.shape)[:, 0] = 0  # the bias column is not penalised
            offset += k
        self.mask = mask
        self._masked = torch.empty_like(flat)
        # the net's Θ become the same views: net.cost, predict and the caller see every update
        for p, view in zip(net.thetas, self.thetas):
            p.data = view
        self.head = net.head.name
        self.activation = net.activation
        self.activation_out = _activation_out(net.activation.name)
        self.optimizer = make_optimizer(solver, [self.param], est)
        self.step = Stepper(self.optimizer, self.param)
        self._buffers: dict[int, list[tuple[Tensor, Tensor]]] = {}
        self.loss_sum = torch.zeros((), dtype=flat.dtype, device=flat.device)  # Σ_batches n·J

    def drives(self, net: ThetaMLP, solver: str) -> bool:
        """Is this engine still training ``net`` (its Θ are our views) with ``solver``?"""
        return (
            solver == self.solver
            and self.net is net
            and all(p.data_ptr() == v.data_ptr() for p, v in zip(net.thetas, self.thetas))
        )

    def _hidden_buffers(self, n: int) -> list[tuple[Tensor, Tensor]]:
        """[1, a^(l)] buffers (n, s_l + 1), ones column written once, with their a^(l) views."""
        bufs = self._buffers.get(n)
        if bufs is None:
            bufs = []
            for s in self.net.sizes[1:-1]:
                buf = torch.empty(n, s + 1, dtype=self.param.dtype, device=self.param.device)
                buf[:, 0] = 1
                bufs.append((buf, buf[:, 1:]))
            if len(self._buffers) > 4:  # sizes seen: batch, last batch, validation, ...
                self._buffers.clear()
            self._buffers[n] = bufs
        return bufs

    # -- one gradient evaluation ----------------------------------------------------------------
    def accumulate(self, X1: Tensor, Y: Tensor, Y_flat: Tensor, lam_over_N: float) -> None:
        """Write D^(l) of the batch into ``param.grad`` and add n·J_batch to ``loss_sum``.

        ``X1`` is [1, X] (n, s_1 + 1), ``Y`` the (n, K) float targets (``Y_flat`` the same, 1-D),
        ``lam_over_N`` = λ/N: the batch is charged λ·n/N, so its penalty gradient is (λ/N)Θ and
        its penalty n·(λ/2N)ΣΘ².
        """
        if self.backprop != "manual":
            self._autograd(X1, Y, lam_over_N)
            return
        self._manual(X1, Y, Y_flat)
        if lam_over_N > 0:
            flat = self.param.data
            masked = torch.mul(flat, self.mask, out=self._masked)  # [0 | Θ_{:,1:}], all layers
            self.param.grad.add_(masked, alpha=lam_over_N)  # + (λ/N) Θ, bias excluded
            self.loss_sum.add_(torch.dot(masked, flat), alpha=0.5 * lam_over_N * X1.shape[0])

    def _manual(self, X1: Tensor, Y: Tensor, Y_flat: Tensor) -> None:
        """The lecture's forward propagation and δ-recursion, straight into the flat gradient."""
        n, L = X1.shape[0], self.L
        bufs = self._hidden_buffers(n) if L > 1 else []
        thetas_t, act_out = self.thetas_t, self.activation_out
        a = X1
        for l in range(L - 1):
            # z^(l+2) = [1, a^(l+1)] Θ^(l+1)ᵀ; a^(l+2) = g(z) lands beside its ones column
            act_out(torch.mm(a, thetas_t[l]), bufs[l][1])
            a = bufs[l][0]
        z = torch.mm(a, thetas_t[-1])  # z^(L+1)
        # δ^(L+1) = ∂(n·J_data)/∂z^(L+1) and n·J_data (see lecturenn.heads)
        loss_sum = self.loss_sum
        if self.head == "softmax":
            logp = torch.log_softmax(z, dim=1)
            loss_sum.sub_(torch.dot(logp.view(-1), Y_flat))  # −Σ y log h
            delta = logp.exp_().sub_(Y)  # h − y
        elif self.head == "sigmoid":
            loss_sum.add_(F.binary_cross_entropy_with_logits(z, Y, reduction="sum"))
            delta = torch.sigmoid(z).sub_(Y)  # h − y
        else:
            delta = z.sub_(Y)  # h − y
            loss_sum.add_(torch.dot(delta.view(-1), delta.view(-1)))  # Σ ‖h − y‖²
            delta.mul_(2.0)  # the squared error has no ½: δ = 2(h − y)
        scale, grads, weights, backward = 1.0 / n, self.grads, self.weights, self.activation.backward
        for l in range(L - 1, -1, -1):
            a = bufs[l - 1][0] if l else X1
            # D^(l+1) = δᵀ [1, a] / n: one contiguous write, bias column included
            torch.addmm(grads[l], delta.t(), a, beta=0, alpha=scale, out=grads[l])
            if l:
                # δ^(l+1) = δ^(l+2) Θ^(l+1)_{:,1:} .* g'(z^(l+1)), g' from the saved a^(l+1)
                delta = backward(torch.mm(delta, weights[l]), bufs[l - 1][1])

    def _autograd(self, X1: Tensor, Y: Tensor, lam_over_N: float) -> None:
        """``net.cost(X, Y, λ·n/N)``, differentiated by torch autograd (the reference path)."""
        n = X1.shape[0]
        J = self.net.cost(X1[:, 1:], Y, lam_over_N * n)
        grads = torch.autograd.grad(J, list(self.net.thetas))
        torch.cat([g.reshape(-1) for g in grads], out=self.param.grad)
        self.loss_sum.add_(J.detach(), alpha=n)

    @torch.no_grad()
    def logits(self, X1: Tensor) -> Tensor:
        """z^(L+1) for [1, X], without gradients."""
        bufs = self._hidden_buffers(X1.shape[0]) if self.L > 1 else []
        a = X1
        for l in range(self.L - 1):
            self.activation_out(torch.mm(a, self.thetas_t[l]), bufs[l][1])
            a = bufs[l][0]
        return torch.mm(a, self.thetas_t[-1])


class Batches:
    """Training rows on the device, [1, X] and Y, and their mini-batches. Each epoch reshuffles
    by one gather into fixed buffers, so every batch is a precomputed slice (a view)."""

    def __init__(self, X1: Tensor, Y: Tensor, batch_size: int, shuffle: bool):
        self.N = X1.shape[0]
        self.X1, self.Y = X1, Y
        self.shuffle = shuffle and batch_size < self.N
        if self.shuffle:
            self.X1p, self.Yp = torch.empty_like(X1), torch.empty_like(Y)
        src_x, src_y = (self.X1p, self.Yp) if self.shuffle else (X1, Y)
        self.batches = []
        for i in range(0, self.N, batch_size):
            yb = src_y[i : i + batch_size]
            self.batches.append((src_x[i : i + batch_size], yb, yb.view(-1)))

    def epoch(self, generator: torch.Generator) -> list[tuple[Tensor, Tensor, Tensor]]:
        """The batches of one epoch (reshuffled in place when shuffling)."""
        if self.shuffle:
            perm = torch.randperm(self.N, generator=generator).to(self.X1.device, non_blocking=True)
            torch.index_select(self.X1, 0, perm, out=self.X1p)
            torch.index_select(self.Y, 0, perm, out=self.Yp)
        return self.batches
