"""The learning-rate range test ("LR finder"), run by Lightning's own ``Tuner.lr_find``.

Smith (2017), "Cyclical Learning Rates for Training Neural Networks", §3.3: train for
``num_training`` steps while the learning rate grows from ``min_lr`` to ``max_lr`` — step k
(k = 0 … N−1, N = ``num_training``) uses lr_0 = min_lr and, for k ≥ 1,

* ``exponential``: lr_k = min_lr · (max_lr/min_lr)^((k+1)/N)
* ``linear``:      lr_k = min_lr + ((k+1)/N)(max_lr − min_lr)

(Lightning 2.6.6, ``tuner/lr_finder.py``: ``_ExponentialLR`` / ``_LinearLR``; the last rate is
``max_lr``) and record the loss after each step, smoothed as
L̄_k = EMA_β(J)_k / (1 − β^(t+1)), β = 0.98, t the global step after step k. The run stops
early once L̄_k > ``early_stop_threshold`` · (best L̄ so far). The suggestion is the rate where the
smoothed loss falls fastest: argmin over k of dL̄/dlr (``torch.gradient`` over the rates),
skipping the first 10 and the last point and any non-finite loss (``_LRFinder.suggestion``).
**Known flaws of Lightning 2.6.6's numbers**, kept (the suggestion is Lightning's, tested equal to
it): the slope is taken against lr even for log-spaced rates (since 2.5.3, Lightning issue #21141;
open PR #21171 would use log10 lr), which favours the smallest rates, where a tiny Δlr turns noise
into a steep slope — on the default digits job it suggests 2.8e-5 while the loss falls fastest
near 1e-2 (against log lr: 0.036); and the bias correction divides by 1 − β^(t+1) with t already
counting the step, so the curve starts at ≈ J/2 and rises over its first ~20 points. Read the plot.
Afterwards Lightning restores the weights, the optimizer and the RNG states it saved before the
test, so the module is exactly as it was.

**Manual optimisation.** :class:`~lecturenn.training.ThetaMLPModule` trains on its fast path
(``model.fast_path`` ``direct`` / ``groups``: manual optimisation, several optimizer steps per
``training_step``). Lightning's finder cannot drive that: under manual optimisation Lightning never
steps an ``interval="step"`` scheduler (``_TrainingEpochLoop._update_learning_rates`` returns at
once), so the rate would never grow, and the finder's callback reads one loss per
``training_step`` with ``.item()``, which fails on a batch group's k losses. :func:`find_lr` therefore
runs the test on the module's ``none`` path — Lightning's automatic loop, one mini-batch and one
optimizer step per ``training_step`` — and sets ``fast_path`` back afterwards. The paths take the
same updates, bitwise (``tests/test_fast_path.py``), so the curve is the one training would follow.
``backprop="manual"`` (the δ-recursion ``autograd.Function``) is untouched by this: ``J.backward()``
runs it on every path.

Plain Python arguments only: Hydra lives in ``scripts/`` + ``conf/``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import lightning as L

from ..validation import check_integer, check_number

__all__ = ["LR_FIND_MODES", "MIN_STEPS", "LRFindResult", "check_lr_find_settings", "find_lr"]

LR_FIND_MODES = ("exponential", "linear")
# Lightning's suggestion skips the first 10 and the last recorded loss and needs 2 points to take a
# gradient (_LRFinder.suggestion(skip_begin=10, skip_end=1)): fewer steps can never suggest a rate.
MIN_STEPS = 13


@dataclass(frozen=True)
class LRFindResult:
    """What a range test found.

    Attributes:
        lrs: the rate of each step taken (len ≤ ``num_training``: fewer when it stopped early).
        losses: the smoothed training loss after each step (same length; NaN where none was recorded).
        suggestion: Lightning's suggested rate, ``lrs[index]``.
        index: the step of the suggestion.
        min_lr, max_lr, num_training, mode, early_stop_threshold: the settings it ran with.
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float
    index: int
    min_lr: float
    max_lr: float
    num_training: int
    mode: str
    early_stop_threshold: float | None

    @property
    def stopped_early(self) -> bool:
        """Whether the loss diverged (> ``early_stop_threshold`` × its best) before ``num_training`` steps."""
        return len(self.lrs) < self.num_training

    def to_dict(self) -> dict:
        return {**asdict(self), "steps": len(self.lrs), "stopped_early": self.stopped_early}


def check_lr_find_settings(
    min_lr: float, max_lr: float, num_training: int, mode: str, early_stop_threshold: float | None
) -> dict:
    """The settings as plain values; TypeError / ValueError naming the first bad one:
    0 < min_lr < max_lr, num_training ≥ :data:`MIN_STEPS`, mode in :data:`LR_FIND_MODES`,
    early_stop_threshold None or ≥ 1 (below 1 the smoothed loss, ≥ its best, always exceeds
    threshold × best: the test would stop at its second step)."""
    min_lr = check_number(min_lr, "min_lr", low=0, low_open=True)
    max_lr = check_number(max_lr, "max_lr", low=min_lr, low_open=True)
    num_training = check_integer(num_training, "num_training", low=MIN_STEPS)
    if mode not in LR_FIND_MODES:
        raise ValueError(f"mode must be one of {', '.join(LR_FIND_MODES)}, got {mode!r}")
    if early_stop_threshold is not None:
        early_stop_threshold = check_number(early_stop_threshold, "early_stop_threshold", low=1)
    return dict(
        min_lr=min_lr,
        max_lr=max_lr,
        num_training=num_training,
        mode=mode,
        early_stop_threshold=early_stop_threshold,
    )


def find_lr(
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    trainer: L.Trainer,
    *,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_training: int = 100,
    mode: str = "exponential",
    early_stop_threshold: float | None = 4.0,
) -> LRFindResult:
    """Run ``lightning.pytorch.tuner.Tuner(trainer).lr_find`` on ``model`` and ``datamodule``.

    ``trainer`` should be one for this test only: Lightning's test runs until ``num_training``
    steps or ``trainer.max_epochs``, whichever comes first, so give it ``max_epochs=-1`` (the app
    does); ``min_epochs`` would override the early stop. The model's weights, optimizer and RNG
    states are restored afterwards (by Lightning, from a checkpoint it writes into
    ``trainer.default_root_dir`` and deletes); a module with a ``fast_path`` runs on ``none``
    during the test (module docstring). Lightning's ``update_attr`` is off: the module keeps no
    ``lr`` / ``learning_rate`` attribute (its rate is inside the optimizer factory); the caller
    applies the suggestion.

    Raises:
        TypeError / ValueError: a bad setting (:func:`check_lr_find_settings`), ``trainer.fast_dev_run``
            (Lightning skips the test), or a test that recorded too few finite losses to suggest a
            rate (the loss diverged at once: lower ``max_lr`` or raise ``early_stop_threshold``).
    """
    from lightning.pytorch.tuner import Tuner

    settings = check_lr_find_settings(min_lr, max_lr, num_training, mode, early_stop_threshold)
    if trainer.fast_dev_run:
        raise ValueError("the LR finder does not run with trainer.fast_dev_run (Lightning skips it)")
    configured = getattr(model, "fast_path", None)
    if configured is not None:
        model.fast_path = "none"  # Lightning's automatic loop: one step per training_step (module docstring)
    # Lightning reloads the checkpoint it wrote a moment ago and says so (an INFO line of its
    # checkpoint connector, and in some versions a warning): noise about its own file, hidden
    connector = logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector")
    level = connector.level
    connector.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*`weights_only` was not set.*")
            finder = Tuner(trainer).lr_find(model, datamodule=datamodule, update_attr=False, **settings)
    finally:
        connector.setLevel(level)
        if configured is not None:
            model.fast_path = configured
    lrs = [float(v) for v in finder.results["lr"]]
    losses = [float(v) for v in finder.results["loss"]]
    suggestion = finder.suggestion()
    if suggestion is None:
        raise ValueError(
            f"the learning-rate finder recorded {sum(v == v for v in losses)} finite losses in "
            f"{len(lrs)} steps, too few to suggest a rate (it needs {MIN_STEPS}; the loss diverged "
            f"early): lower max_lr={settings['max_lr']:g} or raise early_stop_threshold"
        )
    return LRFindResult(lrs, losses, float(suggestion), lrs.index(suggestion), **settings)
