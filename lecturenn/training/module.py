"""ThetaMLPModule: a LightningModule that trains a :class:`~lecturenn.ThetaMLP` on the lecture's cost.

The training loss is J(Θ) itself (``net.cost(X, Y, lam)``, δ-backprop by default); the task —
and so the output head and the metrics — comes from the data:

==============  =========  ==========================================  ==============  ============
task            head       val/… and test/… metrics                    train/…         best-so-far
==============  =========  ==========================================  ==============  ============
binary          sigmoid    acc, f1 (macro), auroc                      loss, acc, lr   val/acc_best
multiclass      softmax    acc, f1 (macro), auroc (macro)              loss, acc, lr   val/acc_best
multilabel      sigmoid    acc, f1 (macro), auroc (macro)              loss, acc, lr   val/acc_best
regression      identity   mse, mae, r2 (in the targets' own units);   loss, mse, lr   val/mse_best
                           with K ≥ 2 outputs also mse_<target>,
                           mae_<target>, r2_<target> per output
==============  =========  ==========================================  ==============  ============

(plus ``val/loss`` and ``test/loss``, J on the split; :meth:`ThetaMLPModule.metric_names` lists
every name a run logs.)

* **Macro F1 and AUROC** average over the classes a split can score (:mod:`.metrics`): F1 over
  the classes present in the targets or the predictions (as scikit-learn's
  ``f1_score(average="macro")``), AUROC over the classes with both a positive and a negative row
  in the targets. When no class is left (e.g. a split of one class only) the value is **NaN** —
  logged, not skipped, so every epoch logs the same names (``null`` in ``metrics.json``).
* **Regression** metrics are in the targets' own units. With K ≥ 2 outputs ``mse``, ``mae`` and
  ``r2`` are uniform averages over the outputs (``val/mse_best`` follows the average), and each
  output is logged as well as ``<metric>_<target>`` (``val/mae_price``): the target column's name
  (characters other than letters, digits, ``_ . -`` replaced by ``_``), or its index 0..K−1 when
  names are missing, or empty or repeated after that replacement.
* **Training**, every epoch: ``train/loss`` is the mean J over the epoch's mini-batches,
  ``train/acc`` / ``train/mse`` the accuracy / squared error (targets' units) of each step's own
  forward pass (Θ changes between steps), and ``train/lr`` the learning rate the epoch trained
  with (read at its start; schedulers step once per epoch, after it).

Optimisation is manual (``automatic_optimization`` is False): each ``training_step`` receives a
:class:`~lecturenn.data.BatchGroup` of up to ``steps_per_execution`` mini-batches and takes one
optimizer step per mini-batch through Lightning's optimizer wrapper (so precision plugins, hooks
and ``global_step`` behave as usual). Lightning's per-batch machinery — about 0.5–1 ms of Python
per ``training_step`` — is then paid once per group instead of once per step (Keras calls the
same idea ``steps_per_execution``). When the Trainer asks for gradient clipping or accumulation,
which Lightning implements only for automatic optimisation, the module switches to automatic
optimisation with one mini-batch per step; under DDP groups hold one mini-batch (one backward
per forward of the DDP wrapper).

Plain Python arguments only (Hydra lives in ``scripts/`` + ``conf/``). ``optimizer`` and
``scheduler`` are callables — e.g. ``functools.partial(torch.optim.SGD, lr=0.1)`` or a Hydra
``_partial_: true`` node — taking the parameters, respectively the optimizer.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import Tensor
from torchmetrics import MaxMetric, MinMetric

from ..arrays import as_array, to_tensor
from ..data.batches import BatchGroup
from ..heads import TASK_HEADS, head_for_task
from ..network import ThetaMLP
from .metrics import StageMetrics, classification_metrics, regression_metrics

__all__ = ["ThetaMLPModule", "TASK_HEADS"]  # TASK_HEADS: re-exported from lecturenn.heads


def _plain(value):
    """Deep copy into plain dicts/lists (config objects such as OmegaConf's would make the
    checkpoint unloadable with ``weights_only=True``)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def _rng_states() -> dict:
    """torch (CPU, CUDA), numpy and Python RNG states as tensors and plain numbers (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global RNG is the point)
    version, internal, gauss = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached"]))  # noqa: NPY002
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        # one state per GPU visible when saved; restore those this machine has (a run saved on 4
        # GPUs resumed on 1 raised IndexError in set_rng_state_all). Extra GPUs keep their seed.
        for device, state in enumerate(list(states["cuda"])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


def _classification_metrics(task: str, K: int) -> StageMetrics:
    """acc, f1, auroc; macro averages over the classes a split can score (:mod:`.metrics`)."""
    return classification_metrics(task, K)


def _regression_metrics(K: int, target_names: Sequence[str] | None = None) -> StageMetrics:
    """mse, mae, r2 averaged over the outputs, plus ``<metric>_<target>`` per output when K > 1."""
    return regression_metrics(K, target_names)


class _RunningMeans:
    """Σ J·n, Σ n and Σ statistic of one stage over an epoch, without host syncs and with almost no
    per-step work: steps append their J (0-d) and, for the statistic, their detached logits and
    targets; every ``FOLD`` steps (or once the kept logits reach ``FOLD_ELEMENTS`` numbers — the
    memory stays bounded) they are folded into one float64 sum with a handful of batched ops."""

    FOLD, FOLD_ELEMENTS = 256, 1 << 21

    def __init__(self, statistic: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        self.statistic = statistic  # (z (m, K), Y) -> Σ over the m rows
        self._J: list[Tensor] = []
        self._n: list[int] = []
        self._z: list[Tensor] = []
        self._Y: list[Tensor] = []
        self._elements = 0
        self._total: Tensor | None = None  # [Σ J·n, Σ n, Σ statistic]

    def add(self, J: Tensor, n: int, z: Tensor | None = None, Y: Tensor | None = None) -> None:
        self._J.append(J.detach())
        self._n.append(n)
        if self.statistic is not None and z is not None:
            self._z.append(z.detach())
            self._Y.append(Y)
            self._elements += z.numel()
        if len(self._n) >= self.FOLD or self._elements >= self.FOLD_ELEMENTS:
            self._fold()

    def _fold(self) -> None:
        if not self._n:
            return
        J = torch.stack(self._J).to(torch.float64)
        n = torch.tensor(self._n, dtype=torch.float64, device=J.device)
        if self._z:
            stat = self.statistic(torch.cat(self._z), torch.cat(self._Y)).to(torch.float64)
        else:
            stat = J.new_zeros(())
        part = torch.stack(((J * n).sum(), n.sum(), stat))
        self._total = part if self._total is None else self._total + part
        self._J, self._n, self._z, self._Y, self._elements = [], [], [], [], 0

    def means(self) -> tuple[Tensor, Tensor]:
        """(Σ J·n / Σ n, Σ statistic / Σ n) as float32 0-d tensors."""
        self._fold()
        total = self._total
        if total is None:
            nan = torch.tensor(float("nan"))
            return nan, nan
        means = (total / total[1].clamp_min(1)).float()
        return means[0], means[2]


_PLAIN_VALUES = (str, int, float, bool, type(None))
_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
_PLAIN_PRECISIONS = (Precision, MixedPrecision, HalfPrecision, DoublePrecision)


def _direct_step(optimizer, closure=None):
    """``LightningOptimizer.step`` minus the strategy/precision-plugin dispatch (hooks)."""
    optimizer._on_before_step()  # counts the step (global_step) and starts the profiler's timer
    output = optimizer.optimizer.step() if closure is None else optimizer.optimizer.step(closure)
    optimizer._on_after_step()
    return output


class ThetaMLPModule(L.LightningModule):
    """Train ``ThetaMLP([n_features, *hidden_sizes, n_outputs])`` on J(Θ) with λ = ``lam``.

    Args:
        n_features, n_outputs, task: from the data (see the module docstring for tasks).
        hidden_sizes: hidden layer widths, e.g. ``[25]`` (the ex4 network).
        activation, backprop, init, epsilon, batchnorm, dropout: passed to :class:`ThetaMLP`.
        lam: λ of the regularised cost (the bias column is never regularised).
        optimizer: callable ``params -> torch.optim.Optimizer`` (default: SGD, lr 0.1).
        scheduler: callable ``optimizer -> LR scheduler`` or None.
        scheduler_monitor: metric a ReduceLROnPlateau scheduler watches.
        init_seed: seeds Θ's initialisation (None: torch's global RNG, itself seeded by the app).
        steps_per_execution: mini-batches (optimizer steps) per ``training_step`` call when
            optimisation is manual and single-process (see the module docstring); callbacks'
            per-batch hooks, ``limit_train_batches`` and ``val_check_interval`` count groups.
        data_info: ``DataInfo.to_dict()`` — standardisation, class names, … stored in the
            checkpoint so that ``eval.py`` / ``predict.py`` need nothing but the checkpoint.
        head: the output head; None: the task's default (``TASK_HEADS``), else a registered head
            serving the task (e.g. a Poisson head for count regression).
    """

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        task: str,
        hidden_sizes: Sequence[int] = (25,),
        activation: str = "sigmoid",
        lam: float = 0.0,
        backprop: str = "manual",
        init: str = "glorot",
        epsilon: float = 0.12,
        batchnorm: bool = False,
        dropout: float = 0.0,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        scheduler_monitor: str = "val/loss",
        init_seed: int | None = None,
        data_info: dict | None = None,
        steps_per_execution: int = 32,
        head: str | None = None,
    ) -> None:
        super().__init__()
        self._automatic_override: bool | None = None
        self._direct_steps = False
        if task not in TASK_HEADS:
            raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASK_HEADS)}")
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0:
            raise ValueError(f"model.lam (λ) must be a number >= 0, got {lam!r}")
        k = steps_per_execution
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"model.steps_per_execution must be an integer >= 1, got {k!r}")
        hidden_sizes = [int(s) for s in hidden_sizes]  # plain list (e.g. not an OmegaConf ListConfig):
        data_info = _plain(data_info) if data_info else None  # checkpoints must load with weights_only
        # the optimizer/scheduler factories are code, not data: they stay out of the checkpoint
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.task, self.lam = task, float(lam)
        self.steps_per_execution = int(steps_per_execution)
        self.n_train = int((data_info or {}).get("n_train") or 0)  # N in λ/(2N); 0: the batch size
        self.net = ThetaMLP(
            [n_features, *hidden_sizes, n_outputs],
            hidden=activation,
            output=head_for_task(task, head),
            backprop=backprop,
            init=init,
            epsilon=epsilon,
            generator=init_seed,
            batchnorm=batchnorm,
            dropout=dropout,
        )
        # The data module validates its tensors once; per-step value checks would only add syncs.
        self.net.validate_inputs = False
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_monitor = scheduler_monitor

        info = data_info or {}
        # standardisation of the training split (identity when the data was not standardised)
        for name, size, fill in (
            ("x_mean", n_features, 0.0),
            ("x_std", n_features, 1.0),
            ("y_mean", n_outputs, 0.0),
            ("y_std", n_outputs, 1.0),
        ):
            values = info.get(name)
            self.register_buffer(
                name, torch.tensor(values) if values is not None else torch.full((size,), fill)
            )

        regression = task == "regression"
        metrics = (
            _regression_metrics(n_outputs, info.get("target_names"))
            if regression
            else _classification_metrics(task, n_outputs)
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self._means: dict[str, _RunningMeans] = {}  # per stage: Σ J·n, Σ n, Σ train statistic
        self.best_name = "val/mse_best" if regression else "val/acc_best"
        self.val_best = MinMetric() if regression else MaxMetric()
        self.val_best.persistent(True)  # in the checkpoint, so a resumed run keeps its best so far
        self._test_true: list[Tensor] = []
        self._test_pred: list[Tensor] = []
        self.test_predictions: tuple[np.ndarray, np.ndarray] | None = None

    def metric_names(self) -> list[str]:
        """Every metric this module logs per epoch (what a checkpoint, early-stopping or scheduler
        ``monitor`` and a sweep's ``optimized_metric`` may name)."""
        train = ["train/loss", "train/mse" if self.task == "regression" else "train/acc", "train/lr"]
        val = ["val/loss", *self.val_metrics.names(), self.best_name]
        return train + val + ["test/loss", *self.test_metrics.names()]

    def __setattr__(self, name: str, value) -> None:
        # Fast path for plain values of plain attributes: nn.Module.__setattr__ spends ~7 µs on
        # Parameter/Module/Tensor checks, and Lightning sets ``_current_fx_name`` twice per hook call
        # — several hook calls per optimizer step. Parameters, buffers and submodules never live in
        # __dict__, so for a name already there the result is the same as nn.Module's.
        if type(value) in _PLAIN_VALUES and name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # -- the model ----------------------------------------------------------------------------
    def forward(self, X: Tensor) -> Tensor:
        """h_Θ(X) for already-standardised X."""
        return self.net(X)

    def _metric_inputs(self, h: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
        """(predictions, targets) in the form torchmetrics expects for the task."""
        if self.task == "binary":
            return h.squeeze(1), Y.squeeze(1).long()
        if self.task == "multilabel":
            return h, Y.long()
        if self.task == "multiclass":
            return h, Y
        h, Y = h * self.y_std + self.y_mean, Y * self.y_std + self.y_mean  # original units
        return (h.squeeze(1), Y.squeeze(1)) if h.shape[1] == 1 else (h, Y)

    def batch_lam(self, n: int) -> float:
        """λ for a batch of n rows such that its penalty is λ/(2N) ΣΘ² with N the training rows.

        net.cost(X, Y, lam) charges λ/(2n) ΣΘ² for the n rows it is given; scaling λ by n/N makes
        every mini-batch gradient an unbiased estimate of the full-batch D^(l) = Δ/N + (λ/N)Θ, so λ
        means the same for any batch size (with batch_size = all rows it is exactly the lecture's J).
        """
        N = self.n_train or n
        return self.lam * n / N

    def model_step(self, batch) -> tuple[Tensor, Tensor, Tensor]:
        """J(Θ) on the batch, plus (predictions, targets) for the metrics — one forward pass."""
        X, Y = batch
        J, z = self.net.cost_and_logits(X, Y, self.batch_lam(X.shape[0]))  # J.backward(): δ-recursion
        preds, targets = self._metric_inputs(self.net.head.h(z), Y)
        return J, preds, targets

    # -- Lightning hooks ----------------------------------------------------------------------
    # Nothing below logs per step or logs a Metric object: per-step logging costs Lightning ~2 ms
    # (it walks the metric's state) and forces host syncs. Steps only record 0-d tensors; each
    # epoch's end computes and logs once.
    @property
    def automatic_optimization(self) -> bool:
        """False (this module steps the optimizer itself) unless the Trainer asks for gradient
        clipping or accumulation, which Lightning implements only for automatic optimisation, or a
        subclass overrides ``training_step`` (and so returns a loss for Lightning to optimise)."""
        if self._automatic_override is not None:
            return self._automatic_override
        if type(self).training_step is not ThetaMLPModule.training_step:
            return True  # a subclass's own training_step returns a loss for Lightning to optimise
        trainer = self._trainer
        if trainer is None:
            return False
        return bool(trainer.gradient_clip_val) or trainer.accumulate_grad_batches != 1

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        self._automatic_override = bool(value)  # an explicit choice wins over the default above

    @property
    def batch_group_size(self) -> int:
        """Mini-batches the data module should put into each training batch group (≥ 1)."""
        trainer = self._trainer
        if self.automatic_optimization or (trainer is not None and trainer.world_size > 1):
            return 1
        return self.steps_per_execution

    def _train_statistic(self, z: Tensor, Y: Tensor) -> Tensor:
        """Σ over the batch of the running train statistic, straight from the logits z^(L+1):
        correct predictions (argmax z = argmax h; h > 0.5 ⟺ z > 0) or, for regression, the squared
        error in the targets' own units ((z − Y)·y_std, z and Y being standardised)."""
        if self.task == "multiclass":
            return (z.argmax(dim=1) == Y).sum()
        if self.task == "binary":
            return ((z > 0) == (Y > 0.5)).sum()
        if self.task == "multilabel":
            return ((z > 0) == (Y > 0.5)).float().mean(dim=1).sum()
        return ((z - Y).square() * self.y_std.square()).mean(dim=1).sum()

    def _epoch_means(self, stage: str) -> tuple[Tensor, Tensor]:
        """(mean J, mean train statistic) over the stage's epoch; clears its accumulator."""
        return self._means.pop(stage, _RunningMeans()).means()  # NaNs when nothing was recorded

    def _stage_means(self, stage: str) -> _RunningMeans:
        means = self._means.get(stage)
        if means is None:
            means = self._means[stage] = _RunningMeans(self._train_statistic if stage == "train" else None)
        return means

    def on_train_epoch_start(self) -> None:
        self._validated_this_epoch = False
        # read now: under automatic optimisation Lightning steps epoch schedulers before the
        # module's on_train_epoch_end
        optimizers = self.optimizers()
        optimizer = optimizers[0] if isinstance(optimizers, list) else optimizers
        self._epoch_lr = float(optimizer.param_groups[0]["lr"])
        self._means.pop("train", None)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        """One optimizer step per mini-batch of the group; returns the steps' losses J (k,)."""
        group = batch if isinstance(batch, BatchGroup) else (batch,)
        if self.automatic_optimization:
            if len(group) != 1:
                raise ValueError("a BatchGroup of several mini-batches needs manual optimisation")
            return self._train_batch(group[0])
        optimizer = self.optimizers()
        closure_needed = isinstance(optimizer.optimizer, torch.optim.LBFGS)
        if self._direct_steps:  # the same updates, without Lightning's per-step dispatch (see below)
            backward, step = Tensor.backward, _direct_step
        else:
            backward, step = self.manual_backward, type(optimizer).step
        trainer, losses = self.trainer, []
        for batch in group:
            if 0 <= trainer.max_steps <= trainer.global_step:
                break
            if closure_needed:  # L-BFGS evaluates J(Θ) several times per step: record the first
                evaluations = []

                def closure(batch=batch, evaluations=evaluations):
                    optimizer.zero_grad(set_to_none=True)
                    J = self._train_batch(batch, record=not evaluations)
                    evaluations.append(J)
                    backward(J)
                    return J

                step(optimizer, closure=closure)
                losses.append(evaluations[0].detach())
            else:
                J = self._train_batch(batch)
                optimizer.zero_grad(set_to_none=True)
                backward(J)
                step(optimizer)
                losses.append(J.detach())
        return torch.stack(losses) if losses else torch.zeros(0, device=self.device)

    def on_train_start(self) -> None:
        self._direct_steps = not self.automatic_optimization and self._may_step_directly()

    def _may_step_directly(self) -> bool:
        """Whether the inner steps may run ``J.backward()`` and the optimizer's own ``step``.

        ``manual_backward`` and ``LightningOptimizer.step`` add ~0.1–0.2 ms per step (they dispatch
        on_before_backward, on_after_backward and on_before_optimizer_step to every callback and to
        the module, through the strategy and the precision plugin). When nothing would observe
        them — no callback or module overriding those hooks or ``backward``, a single-device
        strategy, a precision plugin without a gradient scaler — the direct calls do the same
        updates; the step counter and profiler are advanced by the optimizer wrapper's own
        ``_on_before_step`` / ``_on_after_step``, exactly as ``LightningOptimizer.step`` does.
        """
        trainer = self.trainer
        plugin = trainer.precision_plugin
        if type(trainer.strategy) is not SingleDeviceStrategy or type(plugin) not in _PLAIN_PRECISIONS:
            return False
        if getattr(plugin, "scaler", None) is not None:
            return False
        if type(self).backward is not L.LightningModule.backward:
            return False
        for hook in _STEP_HOOKS:
            if getattr(type(self), hook) is not getattr(L.LightningModule, hook):
                return False
            if any(getattr(type(cb), hook) is not getattr(L.Callback, hook) for cb in trainer.callbacks):
                return False
        optimizers = trainer.strategy._lightning_optimizers
        return len(optimizers) == 1 and all(hasattr(o, "_on_before_step") for o in optimizers)

    def _train_batch(self, batch, record: bool = True) -> Tensor:
        """J(Θ) on one training mini-batch; records J and the running statistic (no host sync)."""
        X, Y = batch
        J, z = self.net.cost_and_logits(X, Y, self.batch_lam(X.shape[0]))  # J.backward(): δ-recursion
        if record:
            self._stage_means("train").add(J, Y.shape[0], z, Y)
        return J

    def on_train_epoch_end(self) -> None:
        name = "train/mse" if self.task == "regression" else "train/acc"
        loss, statistic = self._epoch_means("train")
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        self.log(name, statistic, sync_dist=True)
        self.log("train/lr", self._epoch_lr)  # the rate this epoch trained with (same on every rank)
        if not self.automatic_optimization:
            self._step_epoch_schedulers()

    def _step_epoch_schedulers(self) -> None:
        """What Lightning does for automatic optimisation at the end of an epoch, done here for
        manual optimisation — before the checkpoint callbacks run, so a checkpoint holds the
        scheduler state the next epoch starts with."""
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if scheduler is None:
                continue
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                if not self._validated_this_epoch:  # check_val_every_n_epoch > 1: nothing new to watch
                    continue
                metrics = self.trainer.callback_metrics
                if self.scheduler_monitor not in metrics:
                    raise ValueError(
                        f"the ReduceLROnPlateau scheduler monitors {self.scheduler_monitor!r}, which was "
                        f"not logged (logged: {', '.join(sorted(metrics)) or 'nothing'}); "
                        "set model.scheduler_monitor to one of those"
                    )
                scheduler.step(metrics[self.scheduler_monitor])
            else:
                scheduler.step()

    def on_validation_epoch_start(self) -> None:
        self._means.pop("val", None)
        self._validated_this_epoch = not self.trainer.sanity_checking

    def validation_step(self, batch, batch_idx: int) -> None:
        J, preds, targets = self.model_step(batch)
        self._stage_means("val").add(J, targets.shape[0])
        self.val_metrics.update(preds, targets)

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self._epoch_means("val")[0], prog_bar=True, sync_dist=True)
        values = self.val_metrics.compute()  # scalars only; torchmetrics already reduces across processes
        self.log_dict(values, sync_dist=True)
        if not self.trainer.sanity_checking:
            self.val_best(values[self.best_name.removesuffix("_best")])
            best = self.val_best.compute()  # log compute(), not the metric object
            self.log(self.best_name, best, prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self._means.pop("test", None)
        self._test_true, self._test_pred = [], []

    def test_step(self, batch, batch_idx: int) -> None:
        J, preds, targets = self.model_step(batch)
        self._stage_means("test").add(J, targets.shape[0])
        self.test_metrics.update(preds, targets)
        if self.task in ("binary", "multiclass"):
            labels = (preds > 0.5).long() if self.task == "binary" else preds.argmax(dim=1)
            self._test_true.append(targets.detach().cpu())
            self._test_pred.append(labels.detach().cpu())

    def on_test_epoch_end(self) -> None:
        self.log("test/loss", self._epoch_means("test")[0], sync_dist=True)
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()
        if self._test_true:
            self.test_predictions = (
                torch.cat(self._test_true).numpy(),
                torch.cat(self._test_pred).numpy(),
            )

    def predict_step(self, batch, batch_idx: int) -> Tensor:
        X = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_tensor(X)

    def configure_optimizers(self):
        factory = self.optimizer_factory or (lambda params: torch.optim.SGD(params, lr=0.1))
        optimizer = factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if plateau and self.automatic_optimization:  # else _step_epoch_schedulers steps it
            config["monitor"] = self.scheduler_monitor
            # step it on the epochs that validate: (epoch + 1) % check_val_every_n_epoch == 0
            trainer = getattr(self, "_trainer", None)
            config["frequency"] = int(getattr(trainer, "check_val_every_n_epoch", None) or 1)
        return {"optimizer": optimizer, "lr_scheduler": config}

    def setup(self, stage: str) -> None:
        datamodule = getattr(getattr(self, "_trainer", None), "datamodule", None)
        train = getattr(datamodule, "train", None) if datamodule is not None else None
        if train is not None and not self.n_train:
            self.n_train = len(train[0])
        # Data-parallel CPU processes share the cores: give each its slice (OpenMP threads spinning
        # on descheduled cores made a small net's step 40× slower when oversubscribed).
        trainer = getattr(self, "_trainer", None)
        if trainer is not None and trainer.world_size > 1 and self.device.type == "cpu":
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // trainer.num_devices))

    # -- inference helpers (used by eval/predict scripts and the plots) -----------------------
    @torch.no_grad()
    def predict_tensor(self, X: Tensor) -> Tensor:
        """Outputs for standardised X: probabilities (classification) or targets in their units."""
        h = self.net(X)
        if self.task == "regression":
            return h * self.y_std + self.y_mean
        return h

    @torch.no_grad()
    def predict_scores(self, X) -> np.ndarray:
        """Like :meth:`predict_tensor`, as numpy: (n,) for one output, else (n, K). X: standardised
        rows, a tensor or anything :func:`~lecturenn.arrays.to_tensor` takes (pandas by position)."""
        out = self.predict_tensor(to_tensor(X, self.net.thetas[0].dtype, self.device)).cpu().numpy()
        return out[:, 0] if out.shape[1] == 1 else out

    @torch.no_grad()
    def standardize(self, X_raw) -> Tensor:
        """Raw feature rows (n, n_features) → the network's inputs: the training split's
        standardisation (stored in the checkpoint) applied in float64, then cast to Θ's dtype — the
        same transform as the data modules (:func:`lecturenn.data.scaling.network_inputs`).
        ``X_raw``: a tensor or anything :func:`~lecturenn.arrays.as_array` takes (numpy in any
        order, lists, pandas by position). ``DataError`` naming the column where a value does not
        fit that dtype."""
        from ..data import DataInfo
        from ..data.scaling import network_inputs

        X = X_raw.detach().cpu().double().numpy() if isinstance(X_raw, Tensor) else as_array(X_raw)
        info = DataInfo.from_dict(self.hparams.data_info) if self.hparams.get("data_info") else None
        if info is None:  # no data description: the buffers (identity unless set by hand)
            X = to_tensor(X, dtype=torch.float64)
            return ((X - self.x_mean.double().cpu()) / self.x_std.double().cpu()).to(self.net.thetas[0])
        return network_inputs(X, info, self.net.thetas[0].dtype).to(self.net.thetas[0].device)

    # -- checkpoint extras: RNG states, so a resumed run draws the same numbers (e.g. dropout) ----
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_states"] = _rng_states()
        trainer = self._trainer
        if trainer is not None and trainer.optimizers:  # the class, so a resume can refuse another one
            kind = type(trainer.optimizers[0])
            checkpoint["optimizer_class"] = f"{kind.__module__}.{kind.__qualname__}"

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            _set_rng_states(checkpoint["rng_states"])

    def summary(self) -> str:
        """Θ^(l) shapes and parameter counts, and which backprop runs."""
        return str(self.net)
