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
every name a run logs; :mod:`.metrics` defines the macro averages, NaN when a split cannot score
any class, and the per-output names.) ``train/loss`` is the mean J over the epoch's mini-batches,
``train/acc`` / ``train/mse`` the accuracy / squared error (targets' units) of each step's own
forward pass (Θ changes between steps), ``train/lr`` the learning rate the epoch trained with
(schedulers step once per epoch, after it). An epoch that recorded nothing logs NaN, on the
module's device (``sync_dist`` reduces it with the other processes': NCCL takes no CPU tensor).

How the steps are taken — Lightning's automatic loop, or batch groups of ``steps_per_execution``
mini-batches per ``training_step`` with or without Lightning's per-step dispatch — is the
``fast_path`` argument (``model.fast_path``): :mod:`.fast_path` holds that loop and every private
Lightning/torch API it relies on; this file uses public Lightning API only.
Plain Python arguments only: Hydra lives in ``scripts/`` + ``conf/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torchmetrics import MaxMetric, MinMetric

from ..arrays import to_tensor
from ..data.batches import BatchGroup
from ..data.info import DataInfo
from ..data.transform import DataTransform
from ..heads import TASK_HEADS, head_for_task
from ..network import ThetaMLP
from ..regularization import batch_lam, check_lam
from ..validation import check_integer
from .checkpoint import checkpoint_extras, plain_copy, restore_data_info, restore_rng_states
from .fast_path import (
    FAST_PATHS,
    QuickSetattr,
    attached_trainer,
    automatic_reason,
    choose,
    graph_reason,
    make_step_graph,
    replay_group,
    step_epoch_schedulers,
    train_group,
)
from .metrics import classification_metrics, regression_metrics
from .running_means import StageMeans, train_statistic

__all__ = ["ThetaMLPModule", "TASK_HEADS"]  # TASK_HEADS: re-exported from lecturenn.heads


class ThetaMLPModule(QuickSetattr, L.LightningModule):
    """Train ``ThetaMLP([n_features, *hidden_sizes, n_outputs])`` on J(Θ) with λ = ``lam``.

    Args:
        n_features, n_outputs, task: from the data (see the module docstring for tasks).
        hidden_sizes: hidden layer widths, e.g. ``[25]`` (the ex4 network).
        activation, backprop, init, epsilon, batchnorm, dropout: passed to :class:`ThetaMLP`.
        lam: λ of the regularised cost, ≥ 0 (the bias column is never regularised); a batch of n
            of the N training rows is charged :func:`~lecturenn.regularization.batch_lam`.
        optimizer: callable ``params -> torch.optim.Optimizer`` (default: SGD, lr 0.1), e.g.
            ``functools.partial(torch.optim.SGD, lr=0.1)`` or a Hydra ``_partial_: true`` node.
        scheduler: callable ``optimizer -> LR scheduler`` or None.
        scheduler_monitor: metric a ReduceLROnPlateau scheduler watches.
        init_seed: seeds Θ's initialisation (None: torch's global RNG, itself seeded by the app).
        data_info: ``DataInfo.to_dict()`` — standardisation, class names, … stored in the
            checkpoint so that ``eval.py`` / ``predict.py`` need nothing but the checkpoint.
        head: the output head; None: the task's default (``TASK_HEADS``), else a registered head
            serving the task (e.g. ``"poisson"`` for count regression).
        steps_per_execution: mini-batches (optimizer steps) per ``training_step`` on the
            ``groups`` and ``direct`` paths; callbacks' per-batch hooks, ``limit_train_batches``
            and ``val_check_interval`` count groups.
        fast_path: ``"direct"`` (default), ``"groups"`` or ``"none"`` (Lightning's own loop): see
            :mod:`.fast_path`; a path the Trainer cannot run falls back to a plainer one, logged.
        auroc_thresholds: None (default): the exact AUROC; an int T ≥ 2: binned over T thresholds
            in [0, 1] (error ~1/(T−1), constant memory, no host syncs at the epoch's end; see
            :class:`~lecturenn.training.metrics.MacroAUROC`).
        cuda_graph: capture each training step in a CUDA graph and replay it (:mod:`.fast_path`,
            "CUDA graphs"): the same updates with one launch per step, for small launch-bound
            networks on a GPU. Needs CUDA, ``fast_path="direct"`` (and a Trainer that keeps it),
            one device, 32/64-bit precision, SGD/Adam/AdamW, no dropout; else training refuses
            to start with one ``ValueError`` line. Not yet measured on a GPU.

    Raises:
        ValueError / TypeError: an unknown task or fast path, λ < 0 or not a number,
            ``steps_per_execution`` not an integer ≥ 1, ``auroc_thresholds`` not None or an
            integer ≥ 2.
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
        fast_path: str = "direct",
        auroc_thresholds: int | None = None,
        cuda_graph: bool = False,
    ) -> None:
        super().__init__()
        if task not in TASK_HEADS:
            raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASK_HEADS)}")
        if fast_path not in FAST_PATHS:
            raise ValueError(f"model.fast_path must be one of {', '.join(FAST_PATHS)}, got {fast_path!r}")
        lam = check_lam(lam, "model.lam (λ)")
        steps_per_execution = check_integer(steps_per_execution, "model.steps_per_execution", low=1)
        if not isinstance(cuda_graph, bool):
            raise ValueError(f"model.cuda_graph must be true or false, got {cuda_graph!r}")
        if auroc_thresholds is not None:
            auroc_thresholds = check_integer(auroc_thresholds, "model.auroc_thresholds", low=2)
        hidden_sizes = [int(s) for s in hidden_sizes]  # plain lists and dicts (not OmegaConf's):
        data_info = plain_copy(data_info) if data_info else None  # checkpoints must load with weights_only
        # the optimizer/scheduler factories are code, not data: they stay out of the checkpoint
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.task, self.lam, self.steps_per_execution = task, lam, steps_per_execution
        # a subclass's own training_step returns a loss for Lightning to optimise: its own loop
        own_step = type(self).training_step is not ThetaMLPModule.training_step
        self.fast_path = "none" if own_step else fast_path
        self._direct = False  # the direct steps run (decided in on_train_start)
        self.cuda_graph = cuda_graph
        self._step_graph = self._graph_sums = None  # made in on_train_start when cuda_graph
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
        # the entries' canonical names in the checkpoint ("leaky_relu:0.20" is "leaky_relu:0.2"), so
        # a resume compares functions, not spellings (head None stays None: the task's default)
        self.hparams["activation"] = self.net.activation.name
        if head is not None:
            self.hparams["head"] = self.net.head.name
        # The data module validates its tensors once; per-step value checks would only add syncs.
        self.net.validate_inputs = False
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_monitor = scheduler_monitor
        info = data_info or {}
        self._register_standardisation(n_features, n_outputs, info)

        regression = task == "regression"
        metrics = (
            regression_metrics(n_outputs, info.get("target_names"))
            if regression
            else classification_metrics(task, n_outputs, auroc_thresholds)
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self._means = StageMeans(self._train_statistic)  # per stage: Σ J·n, Σ n, Σ train statistic
        self.best_name = "val/mse_best" if regression else "val/acc_best"
        self.val_best = MinMetric() if regression else MaxMetric()
        self.val_best.persistent(True)  # in the checkpoint, so a resumed run keeps its best so far
        self._validated_this_epoch = False
        self._test_true, self._test_pred = [], []  # test labels and predictions (confusion matrix)
        self.test_predictions: tuple[np.ndarray, np.ndarray] | None = None

    def metric_names(self) -> list[str]:
        """Every metric this module logs per epoch (what a checkpoint, early-stopping or scheduler
        ``monitor`` and a sweep's ``optimized_metric`` may name)."""
        train = ["train/loss", "train/mse" if self.task == "regression" else "train/acc", "train/lr"]
        val = ["val/loss", *self.val_metrics.names(), self.best_name]
        return train + val + ["test/loss", *self.test_metrics.names()]

    # -- the model ----------------------------------------------------------------------------
    def forward(self, X: Tensor) -> Tensor:
        """h_Θ(X) for already-standardised X (n, n_features) → (n, n_outputs)."""
        return self.net(X)

    def batch_lam(self, n: int) -> float:
        """λ for a batch of n of the N training rows: :func:`~lecturenn.regularization.batch_lam`,
        λ·n/N (N = n when the training rows are unknown)."""
        return batch_lam(self.lam, n, self.n_train or n)

    def model_step(self, batch) -> tuple[Tensor, Tensor, Tensor]:
        """J(Θ) on the batch, plus (predictions, targets) for the metrics — one forward pass."""
        X, Y = batch
        J, z = self.net.cost_and_logits(X, Y, self.batch_lam(X.shape[0]))
        h = self.net.head.h(z)
        if self.task == "binary":
            return J, h.squeeze(1), Y.squeeze(1).long()
        if self.task == "multilabel":
            return J, h, Y.long()
        if self.task == "multiclass":
            return J, h, Y
        h, Y = self.to_target_units(h), self.to_target_units(Y)
        return (J, h.squeeze(1), Y.squeeze(1)) if h.shape[1] == 1 else (J, h, Y)

    def training_loss(self, batch, record: bool = True) -> Tensor:
        """J(Θ) on one training mini-batch (``J.backward()`` runs the δ-recursion); ``record``:
        add J and the train statistic to the epoch means (device tensors, no host sync)."""
        X, Y = batch
        J, z = self.net.cost_and_logits(X, Y, self.batch_lam(X.shape[0]))
        if record:
            self._means.add("train", J, Y.shape[0], z, Y)
        return J

    # -- training ----------------------------------------------------------------------------
    # Nothing logs per step or logs a Metric object: per-step logging walks the metric's state and
    # forces host syncs (cost: BENCHMARKS.md, "Behind the code"). Steps record 0-d tensors; epochs log once.
    @property
    def automatic_optimization(self) -> bool:
        """True on the ``none`` path: configured, or forced by the Trainer (gradient clipping or
        accumulation). Setting it is a shortcut for ``fast_path`` (True: ``none``)."""
        return self.fast_path == "none" or automatic_reason(attached_trainer(self)) is not None

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        self.fast_path = "none" if value else ("groups" if self.fast_path == "none" else self.fast_path)

    @property
    def fast_path_in_use(self) -> str:
        """The path this training runs on (``fast_path`` or its fallback; final once it started)."""
        return "none" if self.automatic_optimization else "direct" if self._direct else "groups"

    @property
    def batch_group_size(self) -> int:
        """Mini-batches the data module should put into each training batch group (≥ 1)."""
        trainer = attached_trainer(self)
        if self.automatic_optimization or (trainer is not None and trainer.world_size > 1):
            return 1
        return self.steps_per_execution

    def on_train_start(self) -> None:
        self._direct = choose(self.fast_path, self, self.trainer) == "direct"
        if self.cuda_graph:
            backend = getattr(self, "_cuda_graph_backend", "cuda")  # "record": CPU tests only
            reason = graph_reason(self, self.trainer, backend)
            if reason is not None:
                raise ValueError(f"model.cuda_graph=true {reason}; or set model.cuda_graph=false")
            self._step_graph, self._graph_sums = make_step_graph(self, backend)

    def on_train_end(self) -> None:
        self._step_graph = self._graph_sums = None  # the graphs' memory goes back

    def on_train_epoch_start(self) -> None:
        self._validated_this_epoch = False
        # read now: under automatic optimisation Lightning steps epoch schedulers before on_train_epoch_end
        optimizers = self.optimizers()
        optimizer = optimizers[0] if isinstance(optimizers, list) else optimizers
        self._epoch_lr = float(optimizer.param_groups[0]["lr"])
        self._means.reset("train")

    def training_step(self, batch, batch_idx: int) -> Tensor:
        """``none``: J on one mini-batch, for Lightning to optimise. Else :func:`.fast_path.train_group`:
        one optimizer step per mini-batch of the batch group; the steps' losses J (k,)."""
        if not self.automatic_optimization:
            group = batch if isinstance(batch, BatchGroup) else [batch]
            if self._step_graph is not None:
                return replay_group(self, group, self._step_graph)
            return train_group(self, group, self._direct)
        if isinstance(batch, BatchGroup):
            raise ValueError("a BatchGroup of several mini-batches needs manual optimisation")
        return self.training_loss(batch)

    def on_train_epoch_end(self) -> None:
        if self._graph_sums is not None:  # the captured steps' sums, read after their replays
            self._means.add_sums("train", self._graph_sums)
            self._graph_sums.zero_()
        loss, statistic = self._means.pop("train", self.device)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        self.log("train/mse" if self.task == "regression" else "train/acc", statistic, sync_dist=True)
        self.log("train/lr", self._epoch_lr)  # the rate this epoch trained with (same on every rank)
        if not self.automatic_optimization:  # Lightning steps them for automatic optimisation only
            step_epoch_schedulers(self, self.scheduler_monitor, self._validated_this_epoch)

    # -- validation and test -----------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._means.reset("val")
        self._validated_this_epoch = not self.trainer.sanity_checking

    def validation_step(self, batch, batch_idx: int) -> None:
        J, preds, targets = self.model_step(batch)
        self._means.add("val", J, targets.shape[0])
        self.val_metrics.update(preds, targets)

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self._means.pop("val", self.device)[0], prog_bar=True, sync_dist=True)
        values = self.val_metrics.compute()  # scalars only; torchmetrics already reduces across processes
        self.log_dict(values, sync_dist=True)
        if not self.trainer.sanity_checking:
            self.val_best(values[self.best_name.removesuffix("_best")])
            best = self.val_best.compute()  # log compute(), not the metric object
            self.log(self.best_name, best, prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self._means.reset("test")
        self._test_true, self._test_pred = [], []

    def test_step(self, batch, batch_idx: int) -> None:
        J, preds, targets = self.model_step(batch)
        self._means.add("test", J, targets.shape[0])
        self.test_metrics.update(preds, targets)
        if self.task in ("binary", "multiclass"):  # for the confusion matrix
            labels = (preds > 0.5).long() if self.task == "binary" else preds.argmax(dim=1)
            # kept on the device: one copy to the host at the end of the epoch, not two per batch
            self._test_true.append(targets.detach().long())
            self._test_pred.append(labels.detach())

    def on_test_epoch_end(self) -> None:
        self.log("test/loss", self._means.pop("test", self.device)[0], sync_dist=True)
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()
        if self._test_true:
            both = (
                torch.stack([torch.cat(self._test_true), torch.cat(self._test_pred)]).cpu().numpy()
            )  # (2, n)
            self.test_predictions = (both[0], both[1])
            self._test_true, self._test_pred = [], []

    def predict_step(self, batch, batch_idx: int) -> Tensor:
        X = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_tensor(X)

    def _train_statistic(self, z: Tensor, Y: Tensor) -> Tensor:
        return train_statistic(self.task, z, Y, self._y_std(z))

    # -- set-up -----------------------------------------------------------------------------------
    def configure_optimizers(self):
        factory = self.optimizer_factory or (lambda params: torch.optim.SGD(params, lr=0.1))
        optimizer = factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if plateau and self.automatic_optimization:  # else step_epoch_schedulers steps it
            config["monitor"] = self.scheduler_monitor
            # step it on the epochs that validate: (epoch + 1) % check_val_every_n_epoch == 0
            trainer = attached_trainer(self)
            config["frequency"] = int(getattr(trainer, "check_val_every_n_epoch", None) or 1)
        return {"optimizer": optimizer, "lr_scheduler": config}

    def setup(self, stage: str) -> None:
        trainer = attached_trainer(self)
        if trainer is None:
            return
        train = getattr(trainer.datamodule, "train", None)
        if train is not None and not self.n_train:
            self.n_train = len(train[0])
        # Data-parallel CPU processes share the cores: give each its slice (OpenMP threads spinning
        # on descheduled cores stall every kernel when oversubscribed: BENCHMARKS.md). The device is
        # the strategy's: the module itself is moved there only after setup (self.device is CPU here).
        if trainer.world_size > 1 and trainer.strategy.root_device.type == "cpu":
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // trainer.num_devices))

    # -- checkpoint extras: RNG states (a resumed run draws the same numbers), the optimizer class --
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint.update(checkpoint_extras(attached_trainer(self)))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            restore_rng_states(checkpoint["rng_states"])
        restore_data_info(self, checkpoint, attached_trainer(self))  # the data info Θ was trained with

    def summary(self) -> str:
        """Θ^(l) shapes and parameter counts, and which backprop runs."""
        return str(self.net)

    # == raw rows ↔ network inputs/outputs: the data's one transform ===================================
    def _register_standardisation(self, n_features: int, n_outputs: int, info: dict) -> None:
        """``data_transform``: the :class:`~lecturenn.data.DataTransform` of ``data_info`` (stored in
        the checkpoint once, as that hyper-parameter); identity when there is no data info."""
        raw = [f"x{j}" for j in range(n_features)]
        self.data_transform = DataInfo.from_dict(info).transform if info else DataTransform(raw)

    def to_target_units(self, t: Tensor) -> Tensor:
        """Standardised regression outputs/targets (n, K) → the targets' own units."""
        return self.data_transform.inverse_y(t)

    def _y_std(self, like: Tensor) -> Tensor:
        """The regression targets' std (K,) as ``like``'s dtype and device (1 when not standardised)."""
        stats = self.data_transform.stats("y", like.dtype, like.device)
        return like.new_ones(()) if stats is None else stats[1]

    @torch.no_grad()
    def predict_tensor(self, X: Tensor) -> Tensor:
        """Outputs for standardised X: probabilities (classification) or targets in their units."""
        h = self.net(X)
        if self.task == "regression":
            return self.to_target_units(h)
        return h

    @torch.no_grad()
    def predict_scores(self, X) -> np.ndarray:
        """Like :meth:`predict_tensor`, as numpy: (n,) for one output, else (n, K). X: standardised
        rows, a tensor or anything :func:`~lecturenn.arrays.to_tensor` takes (pandas by position)."""
        out = self.predict_tensor(to_tensor(X, self.net.thetas[0].dtype, self.device)).cpu()
        out = (out.float() if out.dtype == torch.bfloat16 else out).numpy()  # numpy has no bfloat16
        return out[:, 0] if out.shape[1] == 1 else out

    @torch.no_grad()
    def standardize(self, X_raw) -> Tensor:
        """Raw feature rows (n, raw_features) → the network's inputs (n, n_features) in Θ's dtype and
        device, through ``data_transform`` — the same function, and so the same numbers, as the data
        modules' batches and ``predict.py`` (feature expansion, the training split's
        standardisation). ``X_raw``: a tensor or anything :func:`~lecturenn.arrays.as_array` takes
        (numpy in any order, lists, pandas by position). ``DataError`` naming the column where a
        value does not fit that dtype."""
        theta = self.net.thetas[0]
        return self.data_transform(X_raw, theta.dtype, theta.device)
