"""The training loop's fast path, and every private Lightning / torch API the training code uses.

:class:`~lecturenn.training.ThetaMLPModule` trains the same way on every path — the same updates,
bitwise (``tests/test_fast_path.py``) — and ``model.fast_path`` (the module's ``fast_path``
argument) chooses how much of Lightning's per-step machinery runs around each update:

==========  =======================================================================================
``none``    Lightning's own loop: automatic optimisation, one mini-batch per ``training_step``.
            Every hook, gradient clipping and accumulation, any strategy: the plain reference.
``groups``  manual optimisation in batch groups: each ``training_step`` receives a
            :class:`~lecturenn.data.BatchGroup` of up to ``steps_per_execution`` mini-batches and
            takes one optimizer step per mini-batch (:func:`train_group`) through
            ``manual_backward`` and ``LightningOptimizer.step`` — public API only, so every
            per-step hook runs and every precision plugin (the 16-mixed gradient scaler too)
            works. Lightning's per-batch machinery (Python per ``training_step``, BENCHMARKS.md)
            is paid once per group (Keras calls the idea ``steps_per_execution``).
``direct``  (default) ``groups`` whose steps call ``J.backward()`` and the torch optimizer's
            ``step()`` themselves (:func:`direct_step`): the same updates without Lightning's
            per-step dispatch (its cost: BENCHMARKS.md, "Behind the code").
==========  =======================================================================================

**CUDA graphs** (``model.cuda_graph=true``, :func:`make_step_graph`, :func:`replay_group`): on the
``direct`` path, each mini-batch step — J and z^(L+1) from ``net.cost_and_logits``, ``J.backward()``
(the δ-recursion), the torch optimizer's ``step()`` and the epoch sums the running means need — is
captured once per batch size and learning rate in a CUDA graph (:class:`lecturenn.step_graph.StepGraph`)
and replayed; Lightning's step counting (private API 1) runs around each replay, as around
:func:`direct_step`. The sums [Σ J·n, Σ n, Σ statistic] are accumulated inside the graph into one
device tensor, added to the train means at the epoch's end; each step's J is cloned out of the
graph's static output, so the divergence guard reads every step's loss. :func:`graph_reason` says
why a training cannot be captured; the module then refuses to start (one line).

**Validation, not detection.** The configured path is checked against the Trainer when training
starts (:func:`choose`). Where it cannot work, the module trains on the next plainer path and
logs one INFO line (logger ``lecturenn.training.fast_path``) naming the setting that forced it —
never a silently different update:

* ``groups``/``direct`` → ``none``: ``trainer.gradient_clip_val`` or ``accumulate_grad_batches``
  ≠ 1 (Lightning implements them for automatic optimisation only and refuses them under manual
  optimisation);
* ``direct`` → ``groups``: a strategy other than ``SingleDeviceStrategy`` (DDP hooks the
  backward), a precision plugin with a gradient scaler (16-mixed) or of a type other than
  Lightning's plain ones, a callback or the module overriding ``on_before_backward``,
  ``on_after_backward``, ``on_before_optimizer_step`` or ``backward`` (the direct step would
  skip them), more than one optimizer;
* under several processes batch groups hold one mini-batch (one backward per forward of the DDP
  wrapper).

A subclass that defines its own ``training_step`` (returning a loss, the usual Lightning way)
always trains on ``none``.

**What the direct step skips** (read in the installed source, Lightning 2.6.6):
``LightningModule.manual_backward`` → ``Strategy.backward`` → ``Strategy.pre_backward`` (DDP
only), ``Precision.pre_backward`` (``on_before_backward`` hooks; ``MixedPrecision``: the
scaler's ``scale``), ``Precision.backward`` → ``LightningModule.backward`` → ``loss.backward()``,
``Precision.post_backward`` (``on_after_backward`` hooks); ``LightningOptimizer.step`` →
``Strategy.optimizer_step`` → ``Precision.optimizer_step`` → ``optimizer.step(closure)`` whose
closure runs the step's own closure and then the ``on_before_optimizer_step`` hooks and gradient
clipping (a no-op under manual optimisation). ``HalfPrecision``, ``DoublePrecision`` and a
``MixedPrecision`` without scaler add nothing to these calls (their casts and autocast wrap the
whole ``training_step``). So with none of the hooks overridden, the direct calls perform the same
arithmetic.

**Private APIs relied on** (checked against Lightning 2.6.6 and torch 2.13; each is pinned by a
test in ``tests/test_fast_path.py``, so an upgrade that changes one fails a test, not a run):

1. ``LightningOptimizer._on_before_step`` / ``_on_after_step`` (lightning/pytorch/core/optimizer.py):
   ``LightningOptimizer.step`` calls them around ``Strategy.optimizer_step``; during a
   manual-optimisation ``training_step`` Lightning's ``_ManualOptimization.on_run_start`` points
   them at its own ``_on_before_step`` (``optim_step_progress.increment_ready()``, profiler
   ``start("optimizer_step")``) and ``_on_after_step`` (profiler stop,
   ``optim_step_progress.increment_completed()`` — which is ``trainer.global_step``).
   :func:`direct_step` calls them exactly as ``step`` does.
2. ``LightningModule._trainer`` (lightning/pytorch/core/module.py): the attached Trainer or None;
   the public ``trainer`` property raises when none is attached (Lightning itself reads
   ``_trainer`` for the same test). Read by :func:`attached_trainer` only.
3. ``torch.nn.Module``'s attribute layout (torch/nn/modules/module.py): parameters, buffers and
   submodules live in ``_parameters``, ``_buffers`` and ``_modules``, never in the instance
   ``__dict__``; :class:`QuickSetattr` relies on it to skip ``nn.Module.__setattr__`` for plain
   values of names already in ``__dict__`` (Lightning sets ``_current_fx_name`` twice per hook
   call).
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from lightning.pytorch.plugins.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

__all__ = [
    "FAST_PATHS",
    "GRAPH_OPTIMIZERS",
    "QuickSetattr",
    "attached_trainer",
    "automatic_reason",
    "choose",
    "direct_reason",
    "direct_step",
    "graph_reason",
    "make_step_graph",
    "replay_group",
    "step_epoch_schedulers",
    "train_group",
]

log = logging.getLogger(__name__)

FAST_PATHS = ("direct", "groups", "none")  # model.fast_path: fastest first (module docstring)
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
PLAIN_PRECISIONS = (Precision, MixedPrecision, HalfPrecision, DoublePrecision)
_PLAIN_VALUES = (str, int, float, bool, type(None))
#: the optimizers whose step a CUDA graph can replay: Adam/AdamW (made ``capturable``: the step count
#: on the device) and SGD; LAMB and L-BFGS read numbers on the host during their step
GRAPH_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)
GRAPH_PRECISIONS = ("32-true", "64-true", "32", "64")


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """The Trainer ``module`` is attached to, or None (private API 2)."""
    return module._trainer


class QuickSetattr:
    """Mixin (before ``LightningModule``): plain values of plain attributes are set without
    ``nn.Module.__setattr__``'s Parameter/Module/Tensor checks (private API 3; cost in BENCHMARKS.md).

    Only a ``str``/``int``/``float``/``bool``/``None`` value of a name already in the instance
    ``__dict__`` takes the short way; parameters, buffers and submodules never live there, so the
    result is the same as ``nn.Module``'s (assigning to a buffer's name still raises its errors).
    """

    def __setattr__(self, name: str, value) -> None:
        if type(value) in _PLAIN_VALUES and name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


# -- which path runs ------------------------------------------------------------------------------
def automatic_reason(trainer: L.Trainer | None) -> str | None:
    """Why ``trainer`` needs Lightning's automatic optimisation, or None."""
    if trainer is None:
        return None
    if trainer.gradient_clip_val:
        return f"trainer.gradient_clip_val={trainer.gradient_clip_val} (Lightning clips in its own loop only)"
    if trainer.accumulate_grad_batches != 1:
        n = trainer.accumulate_grad_batches
        return f"trainer.accumulate_grad_batches={n} (Lightning accumulates in its own loop only)"
    return None


def direct_reason(module: L.LightningModule, trainer: L.Trainer) -> str | None:
    """Why the direct step would differ from Lightning's manual step under ``trainer``, or None
    (see the module docstring: what the direct step skips)."""
    strategy, plugin = trainer.strategy, trainer.precision_plugin
    if type(strategy) is not SingleDeviceStrategy:
        return f"the {type(strategy).__name__} is not a single-device strategy"
    if type(plugin) not in PLAIN_PRECISIONS:
        return f"the precision plugin {type(plugin).__name__} is not one of Lightning's plain ones"
    if getattr(plugin, "scaler", None) is not None:
        return f"trainer.precision={trainer.precision} scales the loss (gradient scaler)"
    if type(module).backward is not L.LightningModule.backward:
        return f"{type(module).__name__} overrides backward"
    for hook in STEP_HOOKS:
        if getattr(type(module), hook) is not getattr(L.LightningModule, hook):
            return f"{type(module).__name__} overrides {hook}"
        for callback in trainer.callbacks:
            if getattr(type(callback), hook) is not getattr(L.Callback, hook):
                return f"the callback {type(callback).__name__} overrides {hook}"
    optimizers = module.optimizers(use_pl_optimizer=True)
    if isinstance(optimizers, list) and len(optimizers) != 1:
        return f"{len(optimizers)} optimizers are configured"
    return None


def choose(configured: str, module: L.LightningModule, trainer: L.Trainer) -> str:
    """The path to train on: ``configured``, or the plainer one it falls back to (logged)."""
    path, reason = configured, None
    if configured != "none":
        reason = automatic_reason(trainer)
        if reason is not None:
            path = "none"
        elif configured == "direct":
            reason = direct_reason(module, trainer)
            path = "groups" if reason is not None else "direct"
    if path != configured:
        _note(f"model.fast_path={configured}: {reason}; training with fast_path={path}")
    if path != "none" and trainer.world_size > 1:
        _note(f"model.fast_path={path} under {trainer.world_size} processes: groups hold one mini-batch")
    return path


@rank_zero_only
def _note(message: str) -> None:
    log.info(message)


# -- the batch-group loop ---------------------------------------------------------------------------
def direct_step(optimizer, closure=None):
    """``LightningOptimizer.step`` minus the strategy/precision-plugin dispatch (private API 1):
    counts the step (``global_step``) and times it in the profiler exactly as ``step`` does."""
    optimizer._on_before_step()
    output = optimizer.optimizer.step() if closure is None else optimizer.optimizer.step(closure)
    optimizer._on_after_step()
    return output


def train_group(module, group, direct: bool) -> Tensor:
    """One optimizer step per mini-batch of ``group`` (a list of ``(X, Y)``); their losses J (k,).

    ``module.training_loss(batch, record)`` gives J on one mini-batch (recording it for the epoch
    means when ``record``). Steps stop at ``trainer.max_steps``, also inside a group. L-BFGS, which
    evaluates J several times per step, gets a closure; the first evaluation is the one recorded.
    """
    optimizer = module.optimizers()
    closure_needed = isinstance(optimizer.optimizer, torch.optim.LBFGS)
    if direct:
        backward, step = Tensor.backward, direct_step
    else:
        backward, step = module.manual_backward, type(optimizer).step
    trainer, losses = module.trainer, []
    for batch in group:
        if 0 <= trainer.max_steps <= trainer.global_step:
            break
        if closure_needed:
            evaluations = []

            def closure(batch=batch, evaluations=evaluations):
                optimizer.zero_grad(set_to_none=True)
                J = module.training_loss(batch, record=not evaluations)
                evaluations.append(J)
                backward(J)
                return J

            step(optimizer, closure=closure)
            losses.append(evaluations[0].detach())
        else:
            J = module.training_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            backward(J)
            step(optimizer)
            losses.append(J.detach())
    return torch.stack(losses) if losses else torch.zeros(0, device=module.device)


# -- the captured step (model.cuda_graph) ------------------------------------------------------------
def graph_reason(module, trainer, backend: str = "cuda") -> str | None:
    """Why this training's step cannot be captured in a CUDA graph, or None (call in
    ``on_train_start``, once the path is chosen and the module is on its device)."""
    if backend == "cuda" and module.device.type != "cuda":
        return f"needs a CUDA device, but the module trains on {module.device.type!r}"
    if not module._direct:
        return f"needs model.fast_path=direct, but this training runs on fast_path={module.fast_path_in_use}"
    if trainer.world_size > 1:
        return f"runs in one process, not {trainer.world_size}"
    if str(trainer.precision) not in GRAPH_PRECISIONS:
        return f"needs trainer.precision=32-true or 64-true, not {trainer.precision}"
    optimizers = module.optimizers(use_pl_optimizer=False)
    optimizer = optimizers[0] if isinstance(optimizers, list) else optimizers
    if type(optimizer) not in GRAPH_OPTIMIZERS:
        names = ", ".join(f"torch.optim.{o.__name__}" for o in GRAPH_OPTIMIZERS)
        return f"captures the step of {names}, not {type(optimizer).__name__}"
    if module.net.dropout:
        return "does not capture dropout (random numbers in the step); set model.dropout=0"
    return None


def make_step_graph(module, backend: str = "cuda") -> tuple:
    """(a :class:`~lecturenn.step_graph.StepGraph` of ``module``'s training step, the (3,) float64
    device tensor its steps add [J·n, n, statistic] to). Adam/AdamW are switched to
    ``capturable=True`` (their step count then lives on the device; a count restored from a
    checkpoint on the CPU is moved there)."""
    from ..step_graph import StepGraph

    optimizer = module.optimizers(use_pl_optimizer=False)
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        for group in optimizer.param_groups:
            group["capturable"] = True
            for p in group["params"]:
                state = optimizer.state.get(p, {})
                if "step" in state and state["step"].device != p.device:
                    state["step"] = state["step"].to(p.device, torch.float32)
    net, statistic = module.net, module._train_statistic
    sums = torch.zeros(3, dtype=torch.float64, device=module.device)

    def step(X: Tensor, Y: Tensor, lam: float) -> Tensor:  # what the graph holds, all on the device
        optimizer.zero_grad(set_to_none=True)  # captured: backward writes .grad into the graph's pool
        J, z = net.cost_and_logits(X, Y, lam)
        J.backward()
        optimizer.step()
        n = X.shape[0]
        sums[0].add_(J.detach().to(torch.float64), alpha=n)
        sums[1].add_(n)
        sums[2].add_(statistic(z, Y).to(torch.float64))
        return J.detach()

    return StepGraph(step, module.device, backend=backend), sums


def replay_group(module, group, graph) -> Tensor:
    """:func:`train_group` with each step replayed by ``graph`` (:func:`make_step_graph`); J (k,)."""
    optimizer = module.optimizers()
    groups, trainer, losses = optimizer.optimizer.param_groups, module.trainer, []
    for X, Y in group:
        if 0 <= trainer.max_steps <= trainer.global_step:
            break
        optimizer._on_before_step()
        J = graph((X, Y), (module.batch_lam(X.shape[0]),), (groups[0]["lr"],))
        optimizer._on_after_step()
        losses.append(J.clone())  # a replay's J is the graph's static output: the next one overwrites it
    return torch.stack(losses) if losses else torch.zeros(0, device=module.device)


def step_epoch_schedulers(module, monitor: str, validated: bool) -> None:
    """What Lightning does for automatic optimisation at the end of an epoch, done for manual
    optimisation (called from the module's ``on_train_epoch_end``, before the checkpoint callbacks
    run, so a checkpoint holds the scheduler state the next epoch starts with).

    A ``ReduceLROnPlateau`` steps on the logged ``monitor`` only after an epoch that validated
    (``validated``); ValueError when ``monitor`` was not logged. Other schedulers step every epoch.
    """
    schedulers = module.lr_schedulers()
    for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
        if scheduler is None:
            continue
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()
            continue
        if not validated:  # check_val_every_n_epoch > 1: nothing new to watch
            continue
        metrics = module.trainer.callback_metrics
        if monitor not in metrics:
            raise ValueError(
                f"the ReduceLROnPlateau scheduler monitors {monitor!r}, which was not logged "
                f"(logged: {', '.join(sorted(metrics)) or 'nothing'}); "
                "set model.scheduler_monitor to one of those"
            )
        scheduler.step(metrics[monitor])
