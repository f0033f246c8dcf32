"""DivergenceGuard: stop training when J(Θ) or Θ stops being finite, or J explodes, before anything is saved.

Two kinds of divergence are caught:

* **non-finite**: a step's J(Θ), or a weight, is NaN/inf;
* **explosion** (finite but useless): the last ``window`` training steps' J(Θ) all exceed
  ``factor`` × J_ref (consecutive steps, across epochs), where J_ref = max(J at the first step,
  J of the trivial predictor z^(L+1) = 0 on the first batch). The trivial predictor costs
  log K (softmax), K log 2 (sigmoid) or the mean Σ_k y_k² (identity, ≈ K for standardised
  targets), so with the default factor 100 the criterion means "a hundred times worse than
  predicting nothing and than the untrained network" — e.g. Adam with lr = 10⁶ on digits
  reaches J ≈ 10⁸ while J_ref ≈ 2.4. A transient spike that recovers within ``window`` steps is
  not divergence — but while the latest step is above the threshold, ``holding_checkpoints`` is
  True and :class:`~lecturenn.training.last.LastCheckpoint` writes nothing, and a run that
  *ends* above it fails too. The first step (J_ref itself) never counts. J_ref is kept in the
  checkpoint, so a resumed run keeps the reference of its first start — unless it resumes with
  another λ, which changes the scale of J: then J_ref is measured again.

Each training step only folds device-side flags (no host sync in the hot loop). The flags and Θ
are read once per epoch — before validation and before the checkpoint callbacks (Lightning runs
those last), so a diverged epoch never reaches the best checkpoint or ``last.ckpt``. The error
names the epoch, the step, what went wrong, and a likely cause taken from evidence: extreme input
values (the network's inputs, after standardisation, above ``max_input``), an extreme
initialisation (max |Θ| at the start above ``max_initial_theta``), or else the learning rate.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

__all__ = ["DivergenceGuard", "TrainingDiverged"]


class TrainingDiverged(FloatingPointError):
    """Raised when the loss or the weights become NaN/inf, or the loss explodes."""


def _first_batch(batch) -> tuple[Tensor, Tensor] | None:
    """(X, Y) of the first mini-batch of a batch (X, Y) or of a group of them."""
    while isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], (tuple, list)):
        batch = batch[0]
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, Tensor) for t in batch):
        return batch[0], batch[1]
    return None


class DivergenceGuard(L.Callback):
    """Raise :class:`TrainingDiverged` when training has diverged (see the module docstring).

    Args:
        factor: explosion threshold as a multiple of J_ref.
        window: consecutive training steps that must all exceed it.
        max_input: inputs larger than this (in absolute value, after standardisation) are named
            as the likely cause.
        max_initial_theta: an initial max |Θ| larger than this is named as the likely cause.
    """

    def __init__(
        self, factor: float = 100.0, window: int = 5, max_input: float = 1e4, max_initial_theta: float = 100.0
    ) -> None:
        self.factor, self.window = float(factor), int(window)
        self.max_input, self.max_initial_theta = float(max_input), float(max_initial_theta)
        self._ok: Tensor | None = None
        self._first_bad_step: Tensor | None = None
        self._last: Tensor | None = None  # the latest step's loss (device), for the message
        self._run: Tensor | None = None  # consecutive latest steps above the threshold (device)
        self._threshold_value: Tensor | None = None
        self.holding_checkpoints = False  # the latest step is above the threshold: save nothing
        self._start: Tensor | None = None  # [J at the first step, trivial predictor's J] (device)
        self.reference: dict[str, float] = {}  # host copy of _start, kept in the checkpoint
        self.initial_theta_max: float | None = None
        self._lam: float | None = None  # λ the reference was measured with

    # -- state kept in the checkpoint ---------------------------------------------------------
    def state_dict(self) -> dict:
        self._sync_reference()
        return {"reference": dict(self.reference), "initial_theta_max": self.initial_theta_max}

    def load_state_dict(self, state_dict: dict) -> None:
        self.reference = {k: float(v) for k, v in state_dict.get("reference", {}).items()}
        self._start = self._threshold_value = None
        self.initial_theta_max = state_dict.get("initial_theta_max")

    def _sync_reference(self) -> None:
        if self._start is not None and not self.reference:
            first, trivial = self._start.tolist()
            self.reference = {"first_step": first, "trivial": trivial}
            if self._lam is not None:
                self.reference["lam"] = float(self._lam)

    # -- hooks --------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        lam = getattr(pl_module, "lam", None)
        if self.reference and self.reference.get("lam", lam) != lam:
            self.reference = {}  # resumed with another λ: J has another scale; measure it again
            self._threshold_value = None
        if self.initial_theta_max is None:  # a resumed run keeps the value of its first start
            with torch.no_grad():
                self.initial_theta_max = max(float(p.detach().abs().max()) for p in pl_module.parameters())

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._ok = None
        self._first_bad_step = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, Tensor) or loss.numel() == 0:
            return
        # a 0-d loss (one step) or the losses of a batch group (k,), whose last step is global_step
        losses = loss.detach().reshape(-1).float()
        if self._start is None and not self.reference:
            self._start = torch.stack((losses[0], self._trivial_cost(pl_module, batch, losses)))
            self._lam = getattr(pl_module, "lam", None)
            losses = losses[1:]  # J at the first step is the reference itself, not evidence
        if losses.numel() == 0:
            return
        finite = torch.isfinite(losses)
        first = (~finite).int().argmax()  # index of the first non-finite loss (0 if none)
        step = first + (trainer.global_step - losses.numel())
        finite = finite.all()
        if self._ok is None:
            self._ok = finite.clone()
            self._first_bad_step = torch.where(finite, torch.full_like(step, -1), step)
        else:
            newly_bad = self._ok & ~finite
            self._first_bad_step = torch.where(newly_bad, step, self._first_bad_step)
            self._ok &= finite
        self._last = losses[-1]
        # consecutive steps above the threshold, up to the latest one (device-side, no sync)
        above = losses > self._threshold(losses.device)
        k = losses.numel()
        last_below = torch.where(above, -1, torch.arange(k, device=losses.device)).max()
        trailing = k - 1 - last_below
        self._run = trailing if self._run is None else torch.where(above.all(), self._run + k, trailing)

    def _threshold(self, device) -> Tensor:
        """factor × J_ref as a device tensor (from the first step, or from the checkpoint)."""
        if self._threshold_value is None:
            if self._start is not None:
                self._threshold_value = self.factor * self._start.max()
            else:
                ref = max(self.reference["first_step"], self.reference["trivial"])
                self._threshold_value = torch.tensor(self.factor * ref, device=device)
        return self._threshold_value

    @staticmethod
    def _trivial_cost(pl_module, batch, losses: Tensor) -> Tensor:
        """J of the predictor z^(L+1) = 0 on the first mini-batch (data term only)."""
        net, first = getattr(pl_module, "net", None), _first_batch(batch)
        if net is None or first is None or not hasattr(net, "head"):
            return losses[0]
        X, Y = first
        with torch.no_grad():
            z = torch.zeros(X.shape[0], net.sizes[-1], dtype=losses.dtype, device=X.device)
            Y = net.head.prepare_targets(Y, X.shape[0], net.sizes[-1], z.dtype, z.device)
            return (net.head.cost_sum(z, Y) / X.shape[0]).float()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)

    # -- the check ------------------------------------------------------------------------------
    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss_ok = self._ok is None or bool(self._ok)
        bad_params = [name for name, p in pl_module.named_parameters() if not torch.isfinite(p).all()]
        exploded = self._exploded() if loss_ok and not bad_params else None
        if loss_ok and not bad_params and exploded is None:
            self.holding_checkpoints = self._run is not None and int(self._run) > 0
            return
        what = []
        if not loss_ok:
            step = int(self._first_bad_step) if self._first_bad_step is not None else -1
            where = f" at step {step}" if step >= 0 else ""
            what.append(f"the loss J(Θ) became NaN/inf{where}")
        if bad_params:
            what.append(f"non-finite weights in {', '.join(bad_params[:3])}")
        if exploded is not None:
            what.append(exploded)
        raise TrainingDiverged(
            f"training diverged in epoch {trainer.current_epoch}: {'; '.join(what)}. "
            f"Likely cause: {self._likely_cause(trainer, pl_module)}. "
            "No checkpoint was written for this epoch."
        )

    def _exploded(self, at_end: bool = False) -> str | None:
        """A description of the explosion, or None (one host sync, once per epoch): the last
        ``window`` steps all above the threshold — or, when training ends (``at_end``), the last
        step above it (its weights were never saved; the run must not pass as a success)."""
        if self._run is None:
            return None
        run = int(self._run)
        if run < (1 if at_end else self.window):
            return None
        self._sync_reference()
        first, trivial = self.reference["first_step"], self.reference["trivial"]
        return (
            f"the loss J(Θ) exploded: the last {run} step(s) were all above {self.factor:g} × "
            f"{max(first, trivial):.3g} (J at the first step {first:.3g}, J of predicting z = 0 "
            f"{trivial:.3g}); the last J = {float(self._last):.3g}"
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        exploded = self._exploded(at_end=True)
        if exploded is not None:
            raise TrainingDiverged(
                f"training ended while diverging (epoch {trainer.current_epoch - 1}): {exploded}. "
                f"Likely cause: {self._likely_cause(trainer, pl_module)}. "
                "The checkpoints hold the last epoch whose loss was below the threshold."
            )

    def _likely_cause(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        """Extreme inputs, an extreme initialisation, or the learning rate — from evidence."""
        causes = []
        X = getattr(getattr(trainer, "datamodule", None), "train", None)
        X = X[0] if isinstance(X, (tuple, list)) and X and isinstance(X[0], Tensor) else None
        if X is not None and X.numel():
            col_max = X.detach().abs().amax(dim=0).float().nan_to_num(posinf=float("inf"))
            j = int(col_max.argmax())
            if not col_max[j] <= self.max_input:
                names = (getattr(pl_module, "hparams", {}).get("data_info") or {}).get("feature_names") or []
                name = f"feature column {names[j]!r}" if j < len(names) else f"input column {j}"
                causes.append(
                    f"extreme input values ({name} reaches |x| = {float(col_max[j]):.3g} as the network sees "
                    "it) — rescale or standardise the features (data.standardize=true)"
                )
        if self.initial_theta_max is not None and not self.initial_theta_max <= self.max_initial_theta:
            hp = getattr(pl_module, "hparams", {})
            how = f" (model.init={hp.get('init')}, model.epsilon={hp.get('epsilon')})" if "init" in hp else ""
            causes.append(
                f"an extreme initialisation: max |Θ| was {self.initial_theta_max:.3g} at the start{how} — "
                "use model.init=glorot or a small model.epsilon"
            )
        if causes:
            return "; ".join(causes)
        lr = trainer.optimizers[0].param_groups[0].get("lr") if trainer.optimizers else None
        if lr is None:
            return "the learning rate is probably too large"
        return f"the learning rate ({lr:g}) is probably too large — try one 10-100x smaller"
