"""The Lightning callback that draws a run's figures: it collects the per-epoch metrics and, at the end
of ``fit`` and ``test``, hands them and the test results to the figure functions of
:mod:`lecturenn.training.figures` (one module per figure), writing PNGs into ``<default_root_dir>/plots``.

The figure functions stay importable from here (``from lecturenn.training.plots import plot_curves``).
A figure drawn after ``trainer.test`` is one :class:`RunFigure` entry of ``TEST_FIGURES``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from ..network import ThetaMLP
from ..validation import check_integer, is_integer
from .figures import (
    DPI,
    NetworkPicture,
    confusion_matrix,
    plot_confusion_matrix,
    plot_curves,
    plot_decision_boundary,
    plot_lr_find,
    plot_network,
    plot_theta_images,
)
from .figures.canvas import to_numpy
from .figures.network import check_drawable

log = logging.getLogger(__name__)

__all__ = [
    "DPI",
    "NetworkPicture",
    "TEST_FIGURES",
    "PlotCallback",
    "RunFigure",
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_decision_boundary",
    "plot_lr_find",
    "plot_network",
    "plot_theta_images",
]


# ------------------------------------------------------------------ the figures drawn after trainer.test
@dataclass(frozen=True)
class RunFigure:
    """A figure drawn at the end of ``trainer.test`` from what the run's module and datamodule offer.

    ``offered(pl_module, datamodule) -> bool`` says whether the run has the figure's inputs (the hooks
    are duck-typed, see :class:`PlotCallback`); ``draw(pl_module, datamodule, path) -> Path | None``
    writes it (None: nothing to draw for this run, e.g. inputs that are not 2-D).
    """

    filename: str
    offered: Callable[[pl.LightningModule, object], bool]
    draw: Callable[[pl.LightningModule, object, Path], Path | None]


def _classes(datamodule) -> list | None:
    classes = getattr(getattr(datamodule, "info", None), "classes", None)
    return None if classes is None else list(classes)


def _offers_predictions(pl_module, datamodule) -> bool:
    has = getattr(pl_module, "test_predictions", None) is not None
    return has and getattr(pl_module, "task", None) in ("binary", "multiclass")


def _draw_confusion(pl_module, datamodule, path: Path) -> Path:
    y_true, y_pred = (to_numpy(a).ravel().astype(np.int64) for a in pl_module.test_predictions)
    classes = _classes(datamodule)
    seen = int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    K = len(classes) if classes else max(seen, 2 if pl_module.task == "binary" else seen)
    return plot_confusion_matrix(confusion_matrix(y_true, y_pred, K), path, classes=classes)


def _offers_raw_plane(pl_module, datamodule) -> bool:
    hooks = all(callable(getattr(datamodule, hook, None)) for hook in ("raw_splits", "transform"))
    return hooks and getattr(pl_module, "task", None) != "multilabel"


def _draw_boundary(pl_module, datamodule, path: Path) -> Path | None:
    splits = datamodule.raw_splits()
    X_train, y_train = (to_numpy(a) for a in splits["train"])
    X_test, y_test = (to_numpy(a) for a in splits["test"])
    if X_train.ndim != 2 or X_train.shape[1] != 2:
        return None  # only 2-D inputs have a picture

    def predict_fn(G: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return pl_module.predict_scores(datamodule.transform(G).to(pl_module.device))

    regression = getattr(pl_module, "task", None) == "regression"
    title = f"{type(pl_module).__name__}: {'prediction' if regression else 'decision boundary'}"
    return plot_decision_boundary(
        predict_fn,
        X_train,
        y_train,
        X_test,
        y_test,
        path,
        title=title,
        classes=_classes(datamodule),
        regression=regression,
    )


def _offers_images(pl_module, datamodule) -> bool:
    return getattr(getattr(datamodule, "info", None), "image_shape", None) is not None


def _draw_theta(pl_module, datamodule, path: Path) -> Path:
    theta1 = pl_module.net.theta(1).detach().cpu().numpy()
    return plot_theta_images(theta1, tuple(datamodule.info.image_shape), path)


NETWORK_ROWS = 10_000  # plots/network.png averages over at most this many validation rows


def _offers_network(pl_module, datamodule) -> bool:
    return isinstance(getattr(pl_module, "net", None), ThetaMLP)


def _draw_network(pl_module, datamodule, path: Path) -> Path | None:
    """The network with Θ and the validation rows' mean a and δ (the training rows' when there are no
    validation rows). One logged line instead when the net is too big or not the lecture's, or the
    data module holds no rows in memory (a stream)."""
    net = pl_module.net
    try:
        check_drawable(net)
        if not (hasattr(datamodule, "val") and hasattr(datamodule, "train")):
            raise ValueError("the data are streamed, not held in memory")
    except ValueError as err:
        log.info(f"plots: no network.png: {err}")
        return None
    split, (X, Y) = "validation", datamodule.val
    if len(X) == 0:
        split, (X, Y) = "training", datamodule.train
    n = len(X)
    dtype = net.thetas[0].dtype  # the net's (trainer.precision="bf16-true": bfloat16); labels stay integers
    X, Y = X[:NETWORK_ROWS].to(pl_module.device, dtype), Y[:NETWORK_ROWS].to(pl_module.device)
    Y = Y.to(dtype) if Y.is_floating_point() else Y
    rows = f"the {split} rows" if len(X) == n else f"the first {len(X)} of {n} {split} rows"
    picture = plot_network(net, X, Y, path=path, title=f"ThetaMLP({net.sizes}) as tested, on {rows}")
    picture.figure.clear()  # written: release it
    return picture.path


TEST_FIGURES = (
    RunFigure("confusion.png", _offers_predictions, _draw_confusion),
    RunFigure("boundary.png", _offers_raw_plane, _draw_boundary),
    RunFigure("theta.png", _offers_images, _draw_theta),
    RunFigure("network.png", _offers_network, _draw_network),
)


# ----------------------------------------------------------------------------------------- callback
def _scalar(value) -> float | None:
    """float(value) for a real number or a one-element tensor / array, else None (a bool is no metric).
    NaN and ±inf are kept: a diverged run's points."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else None
    elif isinstance(value, (np.ndarray, np.generic)):
        value = value.item() if value.size == 1 else None
    return float(value) if is_integer(value) or isinstance(value, float) else None


class PlotCallback(pl.Callback):
    """Collects per-epoch metrics and writes the PNGs into ``out_dir`` (default: ``default_root_dir/plots``).

    * Every scalar ``train/*`` and ``val/*`` metric of ``trainer.callback_metrics`` is appended to
      ``history`` as ``(epoch, value)`` — one point per epoch, read once the epoch's value is final;
      Lightning's ``*_epoch`` suffix is dropped and ``*_step`` values are skipped. ``test/*`` metrics
      are added at the end of ``trainer.test``, at the epoch whose weights were tested.
    * ``every_n_epochs > 0``: curves.png is also rewritten every that many epochs.
    * End of fit: ``curves.png``. End of test: ``curves.png`` again, plus, when the module and the
      datamodule offer them,

      - ``confusion.png``: ``pl_module.test_predictions = (y_true, y_pred)`` and ``pl_module.task``
        in ("binary", "multiclass"); class names from ``trainer.datamodule.info.classes``;
      - ``boundary.png`` (not for multilabel): ``datamodule.raw_splits()`` ->
        {"train": (X_raw, y), "test": (X_raw, y)} with 2-D X_raw,
        ``datamodule.transform(X_raw) -> Tensor`` and ``pl_module.predict_scores(Tensor) -> np.ndarray``;
      - ``theta.png``: ``datamodule.info.image_shape`` set; Θ^(1) is ``pl_module.net.theta(1)``;
      - ``network.png``: ``pl_module.net`` (a ThetaMLP) with at most 16 units per layer, and
        ``datamodule.val`` / ``.train`` = (X, Y) as the net takes them: Θ and the mean a, δ over the
        validation rows (:func:`~lecturenn.training.figures.network.plot_network`); else one logged line.

    When the values are read. Lightning calls a callback's ``on_train_epoch_end`` and
    ``on_validation_epoch_end`` *before* the LightningModule's, which is where ThetaMLPModule logs
    its epoch metrics — reading there plots each epoch's predecessor and drops the last one. So
    ``val/*`` is read in ``on_validation_end`` (after the module's hook, where ModelCheckpoint reads
    it too) and an epoch's ``train/*`` in the next ``on_train_epoch_start``, or in
    ``on_train_end`` for the last epoch. A checkpoint written in between (``last.ckpt``, after
    the module's ``on_train_epoch_end``) stores the epoch's train values already.

    The test point. ``trainer.test(ckpt_path=...)`` draws the test metrics at the epoch stored in
    that checkpoint, labelled "test (best epoch N)" when it is a ModelCheckpoint's best model,
    "test (epoch N)" otherwise (at the last epoch, "test (epoch unknown)", for a weights-only
    checkpoint); without a checkpoint the module's current weights — the last epoch's — are tested
    ("test (last epoch N)").

    A plot that fails only warns; training goes on. Only global rank 0 collects and writes.
    ``written`` lists the paths written (each once, in order of first writing).
    """

    def __init__(self, out_dir: str | None = None, every_n_epochs: int = 0):
        super().__init__()
        self.out_dir = out_dir
        self.every_n_epochs = check_integer(every_n_epochs, "every_n_epochs", low=0)
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.written: list[Path] = []
        self.test_label: str | None = None  # the legend of the test point
        self._train_pending: int | None = None  # an epoch whose train/* values are not read yet
        self._loaded_epoch: int | None = None  # the epoch of the checkpoint trainer.test loaded

    # ---- state (so that a resumed run keeps its curves)
    def state_dict(self) -> dict:
        return {"history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        # Resuming in a fresh process restores the curves so far. Testing on the best checkpoint
        # right after fit also restores callback states — but then this callback already holds
        # the full history, which must not be cut back to the best epoch.
        if not self.history:
            self.history = {k: [tuple(p) for p in v] for k, v in state_dict.get("history", {}).items()}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        # A checkpoint written after the module's on_train_epoch_end (LastCheckpoint, ModelCheckpoint
        # without validation) holds the epoch's final train values: store them, or a run resumed
        # from it would miss that epoch's train point. The in-memory history reads them again later.
        if self._train_pending is None or not trainer.is_global_zero:
            return
        history = {k: list(v) for k, v in self.history.items()}
        self._record_into(history, trainer, "train", self._train_pending)
        checkpoint.setdefault("callbacks", {})[self.state_key] = {"history": history}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        if trainer.state.fn == "test":
            epoch = checkpoint.get("epoch")
            self._loaded_epoch = int(epoch) if isinstance(epoch, int) else None

    # ---- collection
    def plot_dir(self, trainer: pl.Trainer) -> Path:
        """Where the PNGs go."""
        return Path(self.out_dir) if self.out_dir is not None else Path(trainer.default_root_dir) / "plots"

    @staticmethod
    def _record_into(history: dict, trainer: pl.Trainer, stage: str, epoch: int) -> None:
        """Append (epoch, value) for every scalar ``{stage}/*`` metric; one point per epoch (last wins)."""
        for name, value in trainer.callback_metrics.items():
            if not name.startswith(f"{stage}/") or name.endswith("_step"):
                continue
            v = _scalar(value)
            if v is None:
                continue
            name = name.removesuffix("_epoch")
            points = history.setdefault(name, [])
            if points and points[-1][0] == epoch:
                points[-1] = (epoch, v)
            else:
                points.append((epoch, v))

    def _record(self, trainer: pl.Trainer, stage: str, epoch: int | None = None) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self._record_into(self.history, trainer, stage, trainer.current_epoch if epoch is None else epoch)

    def _last_epoch(self, trainer: pl.Trainer) -> int | None:
        """The epoch of the latest train/val point (None when there is none)."""
        epochs = [p[0] for name, pts in self.history.items() if not name.startswith("test/") for p in pts]
        return max(epochs) if epochs else None

    def _read_train_epoch(self, trainer: pl.Trainer) -> None:
        """Record the train/* values of the epoch that ended last (final once its hooks have run)."""
        epoch, self._train_pending = self._train_pending, None
        if epoch is None:
            return
        self._record(trainer, "train", epoch)
        n = self.every_n_epochs
        if n and trainer.is_global_zero and (epoch + 1) % n == 0:
            self._write_curves(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._read_train_epoch(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # runs before the module's on_train_epoch_end: the values are read once that has logged them
        self._train_pending = trainer.current_epoch

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._read_train_epoch(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._record(trainer, "val")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._write_curves(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is None:  # nothing loaded: whatever a checkpoint hook said before is stale
            self._loaded_epoch = None

    def _test_point(self, trainer: pl.Trainer) -> tuple[int, str]:
        """(epoch, legend label) of the weights this test ran on."""
        if trainer.ckpt_path is not None and self._loaded_epoch is not None:
            best = {
                str(cb.best_model_path)
                for cb in trainer.checkpoint_callbacks
                if getattr(cb, "best_model_path", "")
            }
            kind = "best epoch" if str(trainer.ckpt_path) in best else "epoch"
            return self._loaded_epoch, f"test ({kind} {self._loaded_epoch})"
        last = self._last_epoch(trainer)
        if trainer.ckpt_path is None and last is not None:
            return last, f"test (last epoch {last})"
        if trainer.ckpt_path is not None:  # a checkpoint without callback states: its epoch is not known here
            return (last if last is not None else trainer.current_epoch), "test (epoch unknown)"
        return trainer.current_epoch, "test"

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        epoch, self.test_label = self._test_point(trainer)
        self._loaded_epoch = None
        for name in [n for n in self.history if n.startswith("test/")]:
            del self.history[name]  # one test point: this test's (a second test replaces it)
        self._record(trainer, "test", epoch=epoch)
        self._write_curves(trainer)
        datamodule = getattr(trainer, "datamodule", None)
        out = self.plot_dir(trainer)
        for figure in TEST_FIGURES:
            if figure.offered(pl_module, datamodule):
                self._attempt(
                    figure.filename, lambda f=figure: f.draw(pl_module, datamodule, out / f.filename)
                )

    # ---- writing
    def _attempt(self, name: str, make: Callable[[], Path | None]) -> None:
        """Run one plot; a failure becomes a warning, never an exception."""
        try:
            path = make()
        except Exception as err:  # a plot must never kill a training run
            warnings.warn(f"PlotCallback: could not write {name}: {type(err).__name__}: {err}", stacklevel=2)
            return
        if path is not None and path not in self.written:
            self.written.append(path)

    def _write_curves(self, trainer: pl.Trainer) -> None:
        path = self.plot_dir(trainer) / "curves.png"
        self._attempt("curves.png", lambda: plot_curves(self.history, path, test_label=self.test_label))
