"""Output heads: the hypothesis h = a^(L+1) from z^(L+1), the cost J, and the output error δ^(L+1).

n rows, K outputs, sample weights w_i ≥ 0 (W = Σ_i w_i; without weights every w_i = 1 and W = n).
J(Θ) = (1/W) Σ_i w_i cost_i + R, the penalty R = λ/(2W) Σ Θ² and its mini-batch rule being defined
in :mod:`lecturenn.regularization`. Per row i:

=========  ===============  ================================================  ===============
head       h(z)             cost_i                                            δ^(L+1)
=========  ===============  ================================================  ===============
sigmoid    σ(z)             −Σ_k [y_ik log h_ik + (1 − y_ik) log(1 − h_ik)]    h − y
softmax    e^z / Σ_k e^z_k  −Σ_k y_ik log h_ik                                h − y
identity   z                ‖y_i − h_i‖²                                      2 (h − y)
poisson    e^z              Σ_k (e^{z_ik} − y_ik z_ik)                        h − y
=========  ===============  ================================================  ===============

``head.cost_sum(z, Y, weight)`` is Σ_i w_i cost_i (``weight=None``: Σ_i cost_i = n · J_data), and
``head.delta(h, Y)`` is δ^(L+1) = ∂(Σ_i cost_i)/∂z^(L+1), row i being ∂cost_i/∂z_i (so with weights
row i of the gradient is w_i δ_i): the lecture's "a − y" for the canonical (head, cost) pairs
(sigmoid + cross-entropy, softmax + cross-entropy, and the Poisson negative log-likelihood with its
canonical link h = e^z, whose −log p(y | h) = h − y log h + log y! loses the constant log y!:
scikit-learn's ``MLPRegressor(loss="poisson")``, McCullagh & Nelder, *Generalized Linear Models*,
Table 2.1). The squared error is written without the ½, as
in the lecture's J, so its output error carries a factor 2.

J is evaluated from z with the log-sigmoid / log-sum-exp identities (``binary_cross_entropy_with_logits``,
``log_softmax``), so it stays finite in float32 where h rounds to exactly 0 or 1. The Poisson cost
e^z − y z is finite for every finite z whose e^z is: z > 88.7 (float32) or 709.8 (float64) makes it
inf, which ``net.cost`` reports (``FloatingPointError``: "the output overflowed"), the estimators as
scikit-learn's "non-finite parameter weights" and the app's divergence guard as "J(Θ) exploded".

Targets Y: sigmoid — 0/1 floats of shape (n, K) (or (n,) when K = 1); softmax — class indices
of shape (n,) in [0, K), or one-hot rows of shape (n, K); identity — reals, (n, K) or (n,) when K = 1;
poisson — finite reals y ≥ 0 (counts, or rates: y need not be an integer), (n, K) or (n,) when K = 1.

Each head is a registry entry (:class:`Head`, :func:`register_head`) that also names itself in the
other formats and says which of the app's tasks it serves (the first head registered for a task is
that task's default, :data:`TASK_HEADS`):

=========  ==================  ============  ========================  ========
head       tasks               scikit-learn  torch.nn                  ONNX
=========  ==================  ============  ========================  ========
sigmoid    binary, multilabel  logistic      ``Sigmoid()``             Sigmoid
softmax    multiclass          softmax       ``Softmax(dim=1)``        Softmax
identity   regression          identity      ``Identity()`` (nothing)  Identity
poisson    regression          exp           :class:`Exp` ``()``       Exp
=========  ==================  ============  ========================  ========

(``exp`` is ``MLPRegressor(loss="poisson")``'s ``out_activation_``; torch.nn has no module computing
e^z, so :class:`Exp` is lecturenn's own, a plain ``nn.Module`` without parameters.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .arrays import to_class_indices, to_tensor
from .registry import Registry, check_format_names
from .validation import is_integer

__all__ = ["Exp", "Head", "HEADS", "TASKS", "TASK_HEADS", "get_head", "head_for_task", "register_head"]

#: The tasks of the app (``lecturenn.data``'s ``DataInfo.task``) that a head may serve.
TASKS = ("binary", "multiclass", "multilabel", "regression")


def _is_index_target(Y: Tensor) -> bool:
    return Y.ndim == 1 and not (Y.is_floating_point() or Y.dtype == torch.bool)


def _finite(Y: Tensor) -> Tensor:
    return torch.isfinite(Y.sum())  # one reduction: a sum is finite iff every term is (up to overflow)


@dataclass(frozen=True)
class Head:
    """One output unit type and the cost it is paired with: callables plus names in other formats.

    Callables (z, h: (n, K); Y: targets as :meth:`prepare_targets` returns them; weight: (n,) or None):

    * ``h(z)``                         the hypothesis h_Θ(x) from z^(L+1): (n, K) -> (n, K).
    * ``cost_sum(z, Y, weight=None)``  Σ_i w_i cost_i (Σ_i cost_i when ``weight`` is None), a 0-d
      tensor computed stably from z; differentiable by autograd (the ``"autograd"`` backprop).
    * ``delta(h, Y, inplace=False)``   δ^(L+1) = ∂(Σ_i cost_i)/∂z^(L+1), (n, K); with ``inplace``
      ``h`` is the caller's temporary and may be overwritten.
    * ``valid(Y)``                     a 0-d bool tensor: are the target values legal? (no host sync;
      class indices are range-checked by the Head itself).
    * ``explain(Y)``                   a sentence saying why they are not (``None``: a generic one).
    * ``cost_and_delta(z, Y)``         optional speed option: (Σ_i cost_i, δ^(L+1)) from one shared
      pass (softmax: one log-softmax for both); :meth:`cost_and_error` falls back to the three above.

    Data:

    * ``tasks``          the app's tasks (:data:`TASKS`) the head serves.
    * ``class_indices``  whether targets may also be class indices (n,) in [0, K) (softmax).
    * ``min_outputs``    the fewest outputs K the head makes sense with.
    * ``sklearn``        scikit-learn's ``out_activation_`` name; ``torch_module``: a factory of the
      ``torch.nn`` module computing h (``nn.Identity`` adds nothing); ``onnx``: the ONNX operator.
      ``None``: that format cannot express the head, and its exporter says so.
    """

    name: str
    h: Callable[[Tensor], Tensor] = field(repr=False)
    cost_sum: Callable[..., Tensor] = field(repr=False)
    delta: Callable[..., Tensor] = field(repr=False)
    valid: Callable[[Tensor], Tensor] = field(default=_finite, repr=False)
    explain: Callable[[Tensor], str] | None = field(default=None, repr=False)
    tasks: tuple[str, ...] = ()
    class_indices: bool = False
    min_outputs: int = 1
    sklearn: str | None = None
    torch_module: Callable[[], nn.Module] | None = field(default=None, repr=False)
    onnx: str | None = None
    cost_and_delta: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        where = f"head {self.name!r}"
        for part in ("h", "cost_sum", "delta", "valid", "explain", "cost_and_delta"):
            value = getattr(self, part)
            if (part in ("h", "cost_sum", "delta", "valid") or value is not None) and not callable(value):
                optional = "" if part in ("h", "cost_sum", "delta", "valid") else " or None"
                raise TypeError(f"{where}: {part} must be callable{optional}, got {value!r}")
        if isinstance(self.tasks, str):
            tasks = (self.tasks,)
        else:
            try:
                tasks = tuple(self.tasks)
            except TypeError:
                raise TypeError(
                    f"{where}: tasks must be a task name or a tuple of them ({list(TASKS)}), "
                    f"got {self.tasks!r}"
                ) from None
        unknown = [t for t in tasks if not isinstance(t, str) or t not in TASKS]
        if unknown:
            raise ValueError(f"{where}: unknown task(s) {unknown}; tasks are {list(TASKS)}")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"{where}: tasks {list(tasks)} name a task twice; list each once")
        if not isinstance(self.class_indices, bool):
            raise TypeError(f"{where}: class_indices must be True or False, got {self.class_indices!r}")
        if not is_integer(self.min_outputs):
            raise TypeError(f"{where}: min_outputs must be an integer >= 1, got {self.min_outputs!r}")
        if self.min_outputs < 1:
            raise ValueError(f"{where}: min_outputs must be an integer >= 1, got {self.min_outputs!r}")
        check_format_names("head", self)
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "min_outputs", int(self.min_outputs))

    def cost_and_error(self, z: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
        """(Σ_i cost_i (0-d), δ^(L+1) = ∂(Σ_i cost_i)/∂z (n, K), a fresh tensor), unweighted; no autograd."""
        if self.cost_and_delta is not None:
            return self.cost_and_delta(z, Y)
        h = self.h(z)
        return self.cost_sum(z, Y), self.delta(h, Y, inplace=h is not z)

    # -- targets ------------------------------------------------------------------------------
    def prepare_targets(self, Y, n: int, K: int, dtype: torch.dtype, device) -> Tensor:
        """Shape/dtype checks (no data pass); returns Y on ``device``, as (n, K) floats or (n,) indices.

        Y: a tensor, or numbers in any form :func:`~lecturenn.arrays.to_tensor` takes (numpy in
        any memory order, lists, a pandas Series or DataFrame by position whatever its index)."""
        if not isinstance(Y, Tensor):
            if Y is None or isinstance(Y, (str, bytes)):
                raise TypeError(f"Y must be a tensor or array of targets, got {type(Y).__name__}")
            try:
                Y = to_tensor(Y)
            except (TypeError, ValueError, RuntimeError) as err:
                raise TypeError(f"Y must be a tensor or array of numbers: {err}") from None
        if Y.is_complex():
            raise TypeError(f"Y must be real, got dtype {Y.dtype}")
        if self.class_indices and _is_index_target(Y):
            if Y.shape[0] != n:
                raise ValueError(f"Y has {Y.shape[0]} class indices but X has {n} rows")
            ready = Y.dtype == torch.long and Y.device == device
            return Y if ready else to_class_indices(Y, K, self.name, device)
        if self.class_indices and Y.ndim == 1 and K > 1 and Y.shape[0] == n:  # (n,) but not integers
            raise TypeError(
                f"Y has shape ({n},) but class indices for the {self.name} head must be integers in "
                f"[0, {K}), got dtype {Y.dtype}; pass Y.long() (or one-hot rows of shape (n, K) = ({n}, {K}))"
            )
        if Y.ndim == 1 and K == 1:
            Y = Y.unsqueeze(1)
        if Y.ndim != 2 or tuple(Y.shape) != (n, K):
            hint = " or class indices of shape (n,)" if self.class_indices else ""
            hint += " or (n,) since K = 1" if K == 1 else ""
            raise ValueError(
                f"Y has shape {tuple(Y.shape)}; the {self.name} head expects (n, K) = ({n}, {K})" + hint
            )
        return Y if Y.dtype == dtype and Y.device == device else Y.to(device=device, dtype=dtype)

    def check_index_range(self, Y: Tensor, K: int) -> None:
        """Class indices must lie in [0, K) — checked before any gather (one small reduction)."""
        if _is_index_target(Y) and Y.numel():
            lo, hi = torch.aminmax(Y)
            lo, hi = int(lo), int(hi)
            if lo < 0 or hi >= K:
                raise ValueError(
                    f"class index out of range: Y has labels in [{lo}, {hi}] but the {self.name} "
                    f"head has K = {K} outputs, so labels must lie in [0, {K - 1}]"
                )

    def targets_valid(self, Y: Tensor, K: int) -> Tensor:
        """A 0-d bool tensor: are the target *values* legal for this head? (No host sync.)"""
        if _is_index_target(Y):
            return ((Y >= 0) & (Y < K)).all()
        return self.valid(Y)

    def safe_targets(self, Y: Tensor, K: int, read_now: bool = False) -> tuple[Tensor, bool | Tensor]:
        """(Y safe to compute with, "Y is valid"). ``read_now`` (where reads cost no host sync, the
        CPU): the verdict is a Python bool, read at once (class indices by one min/max pass);
        otherwise it is a 0-d bool tensor (no host sync) and class indices are clamped to [0, K), so
        that a bad label cannot index out of bounds (a device-side assert) before it is read."""
        if read_now:
            if _is_index_target(Y):
                extremes = torch.aminmax(Y)
                return Y, extremes.min.item() >= 0 and extremes.max.item() < K
            return Y, bool(self.valid(Y))
        if _is_index_target(Y):
            safe = Y.clamp(0, K - 1)
            return safe, (safe == Y).all()
        return Y, self.valid(Y)

    def describe_bad_targets(self, Y: Tensor) -> str:
        """Human-readable reason why :meth:`targets_valid` failed."""
        if not torch.isfinite(Y).all():
            return "Y contains NaN or inf"
        if self.explain is not None:
            return self.explain(Y)
        return f"the {self.name} head does not accept these targets (e.g. values {_some(Y)})"


def _some(Y: Tensor) -> list:
    return torch.unique(Y)[:6].tolist()


# -- the built-in heads' callables (the table in the module docstring) -------------------------
def _weighted(per_row: Tensor, weight: Tensor) -> Tensor:
    return (per_row * weight).sum()  # Σ_i w_i cost_i, per_row and weight (n,)


def _sigmoid_cost(z: Tensor, Y: Tensor, weight: Tensor | None = None) -> Tensor:
    if weight is None:
        return F.binary_cross_entropy_with_logits(z, Y, reduction="sum")
    # per-row costs, then Σ_i w_i cost_i: differentiable w.r.t. the weights too (BCE's weight= is not)
    return _weighted(F.binary_cross_entropy_with_logits(z, Y, reduction="none").sum(dim=1), weight)


def _softmax_cost(z: Tensor, Y: Tensor, weight: Tensor | None = None) -> Tensor:
    if _is_index_target(Y):
        if weight is None:
            return F.cross_entropy(z, Y, reduction="sum")
        return _weighted(F.cross_entropy(z, Y, reduction="none"), weight)
    if weight is None:
        return -(Y * torch.log_softmax(z, dim=1)).sum()
    return -_weighted((Y * torch.log_softmax(z, dim=1)).sum(dim=1), weight)


def _softmax_cost_and_delta(z: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
    """One log-softmax for both: Σ cost_i = −Σ y log h and δ = e^{log h} − y (one-hot or indices)."""
    logp = torch.log_softmax(z, dim=1)
    if _is_index_target(Y):
        return F.nll_loss(logp, Y, reduction="sum"), _h_minus_y(logp.exp_(), Y, inplace=True)
    cost = torch.dot(logp.view(-1), Y.reshape(-1)).neg_()  # (nK)·(nK): −Σ_ik y_ik log h_ik
    return cost, logp.exp_().sub_(Y)


def _squared_cost(z: Tensor, Y: Tensor, weight: Tensor | None = None) -> Tensor:
    if weight is None:
        return F.mse_loss(z, Y, reduction="sum")
    return _weighted(F.mse_loss(z, Y, reduction="none").sum(dim=1), weight)


def _h_minus_y(h: Tensor, Y: Tensor, inplace: bool = False) -> Tensor:
    if _is_index_target(Y):  # h − onehot(y) without building the one-hot matrix
        delta = h if inplace else h.clone()
        return delta.scatter_(1, Y.unsqueeze(1), -1.0, reduce="add")  # δ_{i, y_i} −= 1
    return h.sub_(Y) if inplace else h - Y


def _twice_h_minus_y(h: Tensor, Y: Tensor, inplace: bool = False) -> Tensor:
    return h.sub_(Y).mul_(2) if inplace else 2 * (h - Y)


def _poisson_cost(z: Tensor, Y: Tensor, weight: Tensor | None = None) -> Tensor:
    if weight is None:
        return (torch.exp(z) - Y * z).sum()  # Σ_ik (e^z − y z)
    return _weighted((torch.exp(z) - Y * z).sum(dim=1), weight)


def _poisson_cost_and_delta(z: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
    """One e^z for both: Σ cost_i = Σ (h − y z) and δ = h − y."""
    h = torch.exp(z)
    cost = h.sum() - torch.dot(Y.reshape(-1), z.reshape(-1))  # (nK)·(nK): Σ_ik y_ik z_ik
    return cost, h.sub_(Y)


def _nonnegative(Y: Tensor) -> Tensor:
    return ((Y >= 0) & (Y != torch.inf)).all()  # NaN fails Y >= 0


def _explain_nonnegative(Y: Tensor) -> str:
    negative = torch.unique(Y[Y < 0])[:6].tolist()
    return (
        f"the poisson head needs targets y >= 0 (counts or rates), but Y holds negative values "
        f"(e.g. {negative}); model them with the identity head, or shift them"
    )


class Exp(nn.Module):
    """h = e^z elementwise: the poisson head's ``torch.nn`` module (torch.nn has none). No parameters."""

    def forward(self, z: Tensor) -> Tensor:
        return torch.exp(z)


def _zero_one(Y: Tensor) -> Tensor:
    return ((Y == 0) | (Y == 1)).all()


def _one_hot(Y: Tensor) -> Tensor:
    return _zero_one(Y) & (Y.sum(dim=1) == 1).all()


def _explain_zero_one(Y: Tensor) -> str:
    return (
        f"the sigmoid head needs 0/1 targets, but Y contains other values "
        f"(e.g. {_some(Y)}); encode labels as 0/1 (one column per label)"
    )


def _explain_one_hot(Y: Tensor) -> str:
    return (
        f"the softmax head needs one-hot rows (0/1, one 1 per row) or class indices of "
        f"shape (n,); Y holds values {_some(Y)} or rows that do not sum to 1"
    )


# -- the registry -------------------------------------------------------------------------------
#: name -> Head, in registration order (the built-ins below first).
HEADS: Registry[Head] = Registry("output head", Head, "sklearn", "scikit-learn name")


def get_head(name: str | Head) -> Head:
    """Look up an output head by name; ``ValueError`` listing the known names otherwise."""
    return HEADS.lookup(name)


def register_head(
    name: str,
    h: Callable[[Tensor], Tensor],
    cost_sum: Callable[..., Tensor],
    delta: Callable[..., Tensor],
    *,
    valid: Callable[[Tensor], Tensor] = _finite,
    explain: Callable[[Tensor], str] | None = None,
    tasks: tuple[str, ...] = (),
    class_indices: bool = False,
    min_outputs: int = 1,
    sklearn: str | None = None,
    torch_module: Callable[[], nn.Module] | None = None,
    onnx: str | None = None,
    cost_and_delta: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
) -> Head:
    """Add an output head (the fields are those of :class:`Head`); ``ValueError`` if the name is taken.

    ``cost_sum(z, Y, weight=None)`` must return Σ_i w_i cost_i and ``delta(h, Y, inplace=False)``
    ∂(Σ_i cost_i)/∂z (``cost_and_delta(z, Y)``, optional: both at once, see :class:`Head`); gradient
    checking (:func:`lecturenn.gradient_check`) verifies the pair.
    Example — a log-cosh regression head (robust: squared error near 0, absolute error far out),
    h = z, cost_i = Σ_k log cosh(h_ik − y_ik), δ = tanh(h − y)::

        def logcosh_cost(z, Y, weight=None):
            d = z - Y
            per_row = (d + F.softplus(-2 * d) - math.log(2)).sum(dim=1)   # log cosh d, stably
            return per_row.sum() if weight is None else (per_row * weight).sum()

        register_head("logcosh", lambda z: z, logcosh_cost,
                      lambda h, Y, inplace=False: h.sub_(Y).tanh_() if inplace else torch.tanh(h - Y),
                      tasks=("regression",), torch_module=nn.Identity, onnx="Identity")
    """
    entry = Head(
        name, h, cost_sum, delta, valid=valid, explain=explain, tasks=tasks, class_indices=class_indices,
        min_outputs=min_outputs, sklearn=sklearn, torch_module=torch_module, onnx=onnx,
        cost_and_delta=cost_and_delta,
    )  # fmt: skip
    return HEADS.add(entry)


# fmt: off
register_head("sigmoid", torch.sigmoid, _sigmoid_cost, _h_minus_y, valid=_zero_one, explain=_explain_zero_one,
              tasks=("binary", "multilabel"), sklearn="logistic", torch_module=nn.Sigmoid, onnx="Sigmoid")
register_head("softmax", lambda z: torch.softmax(z, dim=1), _softmax_cost, _h_minus_y, valid=_one_hot,
              explain=_explain_one_hot, tasks=("multiclass",), class_indices=True, min_outputs=2,
              sklearn="softmax", torch_module=lambda: nn.Softmax(dim=1), onnx="Softmax",
              cost_and_delta=_softmax_cost_and_delta)
register_head("identity", lambda z: z, _squared_cost, _twice_h_minus_y,
              tasks=("regression",), sklearn="identity", torch_module=nn.Identity, onnx="Identity")
register_head("poisson", torch.exp, _poisson_cost, _h_minus_y, valid=_nonnegative,
              explain=_explain_nonnegative, tasks=("regression",), sklearn="exp", torch_module=Exp,
              onnx="Exp", cost_and_delta=_poisson_cost_and_delta)
# fmt: on

#: The default head of each task: the first registered head serving it (what the app trains).
TASK_HEADS: dict[str, str] = {task: next(n for n, e in HEADS.items() if task in e.tasks) for task in TASKS}


def head_for_task(task: str, name: str | Head | None = None) -> Head:
    """The head to train for ``task``: ``name`` if given (it must serve the task), else the task's
    default (:data:`TASK_HEADS`). ``ValueError`` for an unknown task or a head that does not serve it."""
    if task not in TASK_HEADS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASK_HEADS)}")
    if name is None:
        return HEADS[TASK_HEADS[task]]
    head = get_head(name)
    if task not in head.tasks:
        serves = ", ".join(head.tasks) or "no task (register it with tasks=...)"
        raise ValueError(f"the {head.name} head serves {serves}, not the data's task {task!r}")
    return head
