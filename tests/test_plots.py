"""The training app's figures: each function writes a readable PNG; PlotCallback drives them in a run."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from conftest import module_for
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lecturenn.training.plots import (
    DPI,
    PlotCallback,
    confusion_matrix,
    plot_confusion_matrix,
    plot_curves,
    plot_decision_boundary,
    plot_theta_images,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path: Path, min_kb: float = 5.0) -> np.ndarray:
    """Check that `path` is a real, non-trivial PNG and return its pixels (h, w, channels) in [0, 1]."""
    path = Path(path)
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > min_kb * 1024
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img[..., :3].std() > 0.02  # not a blank canvas
    return img


def assert_roughly(img: np.ndarray, width_in: float, height_in: float, tol: float = 0.25) -> None:
    """Pixel size within `tol` of (width_in, height_in) inches at the module's dpi."""
    h, w = img.shape[:2]
    assert abs(w - width_in * DPI) <= tol * width_in * DPI, (w, width_in * DPI)
    assert abs(h - height_in * DPI) <= tol * height_in * DPI, (h, height_in * DPI)


# -------------------------------------------------------------------------------- confusion_matrix
def test_confusion_matrix_counts_by_hand():
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 2, 0, 2])
    expected = np.array(
        [
            [1, 1, 0],  # true 0: one right, one called 1
            [0, 2, 1],  # true 1: two right, one called 2
            [1, 0, 3],  # true 2: three right, one called 0
        ]
    )
    cm = confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(cm, expected)
    assert np.issubdtype(cm.dtype, np.integer)
    assert cm.sum() == len(y_true)
    # a class that never occurs still gets its row and column; tensors are accepted
    cm4 = confusion_matrix(torch.tensor(y_true), torch.tensor(y_pred), 4)
    assert cm4.shape == (4, 4) and cm4[3].sum() == 0 and cm4[:, 3].sum() == 0


def test_confusion_matrix_rejects_bad_labels():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 2)


# ------------------------------------------------------------------------------------------ curves
def test_plot_curves_two_families(tmp_path):
    epochs = range(6)
    history = {
        "train/loss": [(e, 1.0 / (e + 1)) for e in epochs],
        "val/loss": [(e, 1.2 / (e + 1)) for e in epochs],
        "train/acc": [(e, 1 - 0.5 / (e + 1)) for e in epochs],
        "val/acc": [(e, 1 - 0.6 / (e + 1)) for e in epochs],
        "test/acc": [(5, 0.9)],
        "val/f1": [],  # empty series are skipped (no third panel)
    }
    img = read_png(plot_curves(history, tmp_path / "sub" / "curves.png"))
    assert_roughly(img, 2 * 4.6, 3.4)


@pytest.mark.parametrize("history", [{}, {"train/loss": [], "val/acc": []}])
def test_plot_curves_with_nothing_logged(tmp_path, history):
    path = plot_curves(history, tmp_path / "curves.png")
    assert path == tmp_path / "curves.png"
    read_png(path, min_kb=2.0)


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save, drawn, as {title of each axes: axes} (before they are freed)."""
    from matplotlib.figure import Figure

    figures: list[dict] = []
    savefig = Figure.savefig

    def draw_then_save(fig, *args, **kwargs):
        fig.canvas.draw()
        figures.append(
            {
                ax.get_title(): dict(
                    scale=ax.get_yscale(),
                    offsets=(ax.xaxis.get_offset_text().get_text(), ax.yaxis.get_offset_text().get_text()),
                    ticks=[t.get_text() for t in ax.get_yticklabels()],
                    legend=[t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [],
                )
                for ax in fig.axes
            }
        )
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", draw_then_save)
    return figures


def test_curves_have_no_offset_notation(tmp_path, drawn):
    # values that matplotlib's default ticks write as "1e-5 + 9.599e-1" and "×1e−5"
    acc = [0.959990, 0.959995, 0.960001, 0.960004]
    lr = [2.5e-5, 2.5e-5, 2.4e-5, 2.3e-5]  # spans < 10×: linear axis
    history = {
        "train/acc": list(enumerate(acc)),
        "val/acc": list(enumerate(a - 1e-6 for a in acc)),
        "train/lr": list(enumerate(lr)),
        "test/acc": [(2, 0.960002)],
    }
    plot_curves(history, tmp_path / "curves.png", test_label="test (best epoch 2)")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for values in (acc, lr):  # the same data on matplotlib's default ticks does use an offset / factor
        ax = FigureCanvasAgg(Figure()).figure.add_subplot()
        ax.plot(range(len(values)), values)
        ax.figure.canvas.draw()
        assert ax.yaxis.get_offset_text().get_text() != ""

    (panels,) = drawn
    assert set(panels) == {"acc", "learning rate"}
    for title, panel in panels.items():
        assert panel["offsets"] == ("", ""), title
        assert panel["scale"] == "linear"
        assert len(set(panel["ticks"])) == len(panel["ticks"])  # each tick still tells its value apart
    assert "test (best epoch 2): 0.96" in panels["acc"]["legend"]
    assert "train (epoch 3): 0.96" in panels["acc"]["legend"]
    assert any(t.startswith("0.95999") for t in panels["acc"]["ticks"])


def test_learning_rate_spanning_more_than_10x_is_on_a_log_scale(tmp_path, drawn):
    history = {
        "train/loss": [(e, 1.0 / (e + 1)) for e in range(4)],
        "train/lr": [(e, 0.1**e) for e in range(4)],
    }
    plot_curves(history, tmp_path / "curves.png")
    (panels,) = drawn
    assert panels["learning rate"]["scale"] == "log"
    assert panels["loss"]["scale"] == "linear"
    assert all(p["offsets"] == ("", "") for p in panels.values())


def _regression_history(targets: list[str], epochs: int = 4) -> dict:
    """What ThetaMLPModule logs for a regression with one output per target (K >= 2): the means,
    the per-output metrics <metric>_<target>, val/mse_best, train/lr, and a test point."""
    history = {
        "train/loss": [(e, 1.0 / (e + 1)) for e in range(epochs)],
        "train/mse": [(e, 2.0 / (e + 1)) for e in range(epochs)],
        "train/lr": [(e, 0.1) for e in range(epochs)],
        "val/loss": [(e, 1.1 / (e + 1)) for e in range(epochs)],
        "val/mse_best": [(e, 2.1 / (e + 1)) for e in range(epochs)],
    }
    for metric, base in (("mse", 2.0), ("mae", 1.0), ("r2", 0.5)):
        history[f"val/{metric}"] = [(e, base + 0.01 * e) for e in range(epochs)]
        history[f"test/{metric}"] = [(2, base + 0.5)]
        for k, t in enumerate(targets):
            history[f"val/{metric}_{t}"] = [(e, base + 0.1 * k + 0.01 * e) for e in range(epochs)]
            history[f"test/{metric}_{t}"] = [(2, base + 0.1 * k + 0.5)]
    return history


def test_per_output_regression_metrics_share_their_metric_s_panel(tmp_path, drawn):
    history = _regression_history(["price", "n_rooms"])
    img = read_png(plot_curves(history, tmp_path / "curves.png", test_label="test (best epoch 2)"))
    (panels,) = drawn
    # one panel per metric, not per (metric, target); the best-so-far keeps its own
    assert set(panels) == {"loss", "mse", "mae", "r2", "mse_best", "learning rate"}
    assert_roughly(img, 3 * 4.6, 2 * 3.4 + 2.2)
    legend = panels["mae"]["legend"]
    assert legend == [
        "val mean (epoch 3): 1.03",
        "test mean (best epoch 2): 1.5",
        "val price (epoch 3): 1.03",
        "test price (best epoch 2): 1.5",
        "val n_rooms (epoch 3): 1.13",
        "test n_rooms (best epoch 2): 1.6",
    ]
    # train/mse (also the mean over the outputs) is drawn with the other means
    assert "train mean (epoch 3): 0.5" in panels["mse"]["legend"]
    assert "val mean (epoch 3): 2.03" in panels["mse"]["legend"]
    assert all(p["offsets"] == ("", "") for p in panels.values())


def test_per_output_series_get_distinct_colours_and_thinner_lines(tmp_path, monkeypatch):
    from lecturenn.training.figures import curves

    lines = {}
    draw = curves._draw_series

    def record(ax, name, points, *args, **kw):
        draw(ax, name, points, *args, **kw)
        line = ax.get_lines()[-1]
        lines[name] = (line.get_color(), line.get_linewidth())

    monkeypatch.setattr(curves, "_draw_series", record)
    plot_curves(_regression_history(["a", "b", "c"]), tmp_path / "curves.png")
    colors = {lines[f"val/mae_{t}"][0] for t in "abc"}
    assert len(colors) == 3 and lines["val/mae"][0] not in colors and lines["test/mae"][0] not in colors
    assert lines["val/mae_a"][0] == lines["test/mae_a"][0]  # an output's val and test share its colour
    assert lines["val/mae_a"][1] < lines["val/mae"][1]


def test_many_outputs_draw_only_the_mean(tmp_path, drawn):
    targets = [f"t{k}" for k in range(12)]
    plot_curves(_regression_history(targets), tmp_path / "curves.png")
    (panels,) = drawn
    assert set(panels) == {
        "loss",
        "mse (mean; 12 per-output series not drawn)",
        "mae (mean; 12 per-output series not drawn)",
        "r2 (mean; 12 per-output series not drawn)",
        "mse_best",
        "learning rate",
    }
    legend = panels["mae (mean; 12 per-output series not drawn)"]["legend"]
    assert legend == ["val (epoch 3): 1.03", "test (epoch 2): 1.5"]


def test_classification_families_are_unchanged(tmp_path, drawn):
    history = {
        "train/acc": [(0, 0.5), (1, 0.6)],
        "val/acc": [(0, 0.55), (1, 0.65)],
        "val/acc_best": [(0, 0.55), (1, 0.65)],
        "val/f1": [(0, 0.5), (1, 0.6)],
        "val/auroc": [(0, 0.7), (1, 0.8)],
    }
    plot_curves(history, tmp_path / "curves.png")
    (panels,) = drawn
    assert set(panels) == {"acc", "acc_best", "f1", "auroc"}
    assert panels["acc"]["legend"] == ["train (epoch 1): 0.6", "val (epoch 1): 0.65"]


# ------------------------------------------------------------------------------- decision boundary
def _two_blobs(n: int, rng: np.random.Generator):
    """Raw 2-D points far from the origin (the plot must follow the data, not [-1, 1])."""
    X = rng.normal(size=(n, 2)) * 3.0 + np.array([10.0, -4.0])
    y = (X[:, 0] - 10.0 + 0.5 * (X[:, 1] + 4.0) > 0).astype(np.int64)
    return X, y


def test_decision_boundary_binary(tmp_path):
    rng = np.random.default_rng(0)
    X, y = _two_blobs(200, rng)

    def logistic(G):
        assert G.shape[1] == 2
        return 1.0 / (1.0 + np.exp(-2.0 * (G[:, 0] - 10.0 + 0.5 * (G[:, 1] + 4.0))))

    path = plot_decision_boundary(
        logistic,
        X[:150],
        y[:150],
        X[150:],
        y[150:],
        tmp_path / "boundary.png",
        title="logistic",
        resolution=80,
        classes=["neg", "pos"],
    )
    img = read_png(path, min_kb=20.0)
    assert_roughly(img, 6.4, 5.2)
    r, b = img[..., 0], img[..., 2]
    assert (b > r + 0.3).mean() > 0.05  # the blue (positive) side
    assert (r > b + 0.3).mean() > 0.05  # the orange (negative) side


def test_decision_boundary_accepts_column_scores_and_no_test_points(tmp_path):
    rng = np.random.default_rng(1)
    X, y = _two_blobs(60, rng)
    path = plot_decision_boundary(
        lambda G: torch.sigmoid(torch.as_tensor(G[:, :1] - 10.0)),  # (m, 1) tensor scores
        X,
        y,
        np.empty((0, 2)),
        np.empty(0),
        tmp_path / "b.png",
        resolution=40,
    )
    read_png(path)


def test_decision_boundary_multiclass(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(240, 2))
    W = np.array([[2.0, -1.0, -1.0], [0.0, 1.7, -1.7]])

    def softmax(G):
        z = G @ W
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    y = softmax(X).argmax(axis=1)
    path = plot_decision_boundary(
        softmax,
        X[:180],
        y[:180],
        X[180:],
        y[180:],
        tmp_path / "multi.png",
        resolution=60,
        classes=["setosa", "versicolor", "virginica"],
    )
    read_png(path, min_kb=20.0)


def test_decision_boundary_regression(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, size=(150, 2))
    y = X[:, 0] ** 2 - X[:, 1] + 0.1 * rng.normal(size=150)
    path = plot_decision_boundary(
        lambda G: G[:, 0] ** 2 - G[:, 1],
        X[:100],
        y[:100],
        X[100:],
        y[100:],
        tmp_path / "reg.png",
        resolution=60,
        regression=True,
    )
    read_png(path, min_kb=20.0)


def test_decision_boundary_rejects_non_2d_inputs(tmp_path):
    X = np.zeros((5, 3))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        plot_decision_boundary(lambda G: G[:, 0], X, np.zeros(5), X, np.zeros(5), tmp_path / "x.png")


# -------------------------------------------------------------------------------- confusion plot
@pytest.mark.parametrize("K", [2, 20])
def test_plot_confusion_matrix(tmp_path, K):
    rng = np.random.default_rng(K)
    y_true = rng.integers(0, K, 400)
    y_pred = np.where(rng.random(400) < 0.7, y_true, rng.integers(0, K, 400))
    cm = confusion_matrix(y_true, y_pred, K)
    classes = [f"class {k}" for k in range(K)]
    img = read_png(plot_confusion_matrix(cm, tmp_path / "cm.png", classes=classes), min_kb=10.0)
    assert img.shape[0] >= 400  # big enough to read 20 × 20 counts
    with pytest.raises(ValueError, match="class names"):
        plot_confusion_matrix(cm, tmp_path / "bad.png", classes=classes[:-1])


# --------------------------------------------------------------------------------------- Θ images
def test_plot_theta_images_digits_shape(tmp_path):
    theta1 = np.random.default_rng(4).normal(size=(25, 65))  # 25 hidden units over 8×8 digits (+ bias)
    img = read_png(plot_theta_images(theta1, (8, 8), tmp_path / "theta.png"), min_kb=10.0)
    h, w = img.shape[:2]
    assert 0.6 < w / h < 1.8 and h > 300
    with pytest.raises(ValueError, match="8×8"):
        plot_theta_images(theta1[:, :60], (8, 8), tmp_path / "bad.png")


def test_theta_title_renders_the_superscript(tmp_path, drawn):
    plot_theta_images(np.ones((3, 5)), (2, 2), tmp_path / "theta.png")
    (panels,) = drawn
    (title,) = [t for t in panels if "Theta" in t]
    assert title.startswith(r"rows of $\Theta^{(1)}$ (bias column dropped)")  # mathtext, drawn above


def test_plot_theta_images_caps_units(tmp_path):
    theta1 = torch.randn(150, 17)  # a tensor is fine too
    theta1[3] = 0.0  # a dead unit is drawn grey, not NaN
    read_png(plot_theta_images(theta1, (4, 4), tmp_path / "theta.png", max_units=30))


def test_no_pyplot_figures_leak(tmp_path):
    import sys

    plot_curves({"train/loss": [(0, 1.0)]}, tmp_path / "c.png")
    plot_theta_images(np.ones((4, 5)), (2, 2), tmp_path / "t.png")
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


# -------------------------------------------------------------------------------------- callback
class TinyClassifier(pl.LightningModule):
    """Logistic regression as one nn.Linear, with the duck-typed hooks PlotCallback looks for."""

    task = "binary"

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.test_predictions = None
        self._test_batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.net = SimpleNamespace(theta=self._theta)  # Θ^(1) = [bias | weights], like ThetaMLP

    def _theta(self, l: int) -> torch.Tensor:
        assert l == 1
        return torch.cat([self.linear.bias[:, None], self.linear.weight], dim=1)

    def forward(self, x):
        return self.linear(x).squeeze(-1)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y)
        acc = ((logits > 0).float() == y).float().mean()
        self.log(f"{stage}/loss", loss, on_epoch=True, on_step=False)
        if stage != "train":
            self.log(f"{stage}/acc", acc, on_epoch=True, on_step=False)
        return loss, logits

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")[0]

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        _, logits = self._step(batch, "test")
        self._test_batches.append((batch[1].long(), (logits > 0).long()))

    def on_test_epoch_end(self):
        y_true, y_pred = (torch.cat(t).cpu().numpy() for t in zip(*self._test_batches))
        self.test_predictions = (y_true, y_pred)
        self._test_batches.clear()

    def predict_scores(self, x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(self(x)).cpu().numpy()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class TinyDataModule(pl.LightningDataModule):
    """Raw 2-D points around (5, -3); the model sees them standardised through `transform`."""

    def __init__(self, image_shape=None):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        X = torch.randn(120, 2, generator=g, dtype=torch.float64) * 2.0 + torch.tensor([5.0, -3.0])
        y = ((X[:, 0] - 5.0) + (X[:, 1] + 3.0) > 0).double()
        self.mean, self.std = X[:80].mean(0), X[:80].std(0)
        self.X, self.y = X.numpy(), y.numpy()
        self.info = SimpleNamespace(classes=["below", "above"], image_shape=image_shape)

    def transform(self, X_raw) -> torch.Tensor:
        return ((torch.as_tensor(X_raw, dtype=torch.float64) - self.mean) / self.std).float()

    def raw_splits(self):
        return {
            "train": (self.X[:80], self.y[:80]),
            "val": (self.X[80:100], self.y[80:100]),
            "test": (self.X[100:], self.y[100:]),
        }

    def _loader(self, lo: int, hi: int, shuffle: bool = False) -> DataLoader:
        ds = TensorDataset(self.transform(self.X[lo:hi]), torch.as_tensor(self.y[lo:hi]).float())
        return DataLoader(ds, batch_size=32, shuffle=shuffle)

    def train_dataloader(self):
        return self._loader(0, 80, shuffle=True)

    def val_dataloader(self):
        return self._loader(80, 100)

    def test_dataloader(self):
        return self._loader(100, 120)


def _trainer(tmp_path, callback) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
        callbacks=[callback],
    )


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's num_workers / small-batch advice
def test_plot_callback_in_a_real_run(tmp_path):
    callback = PlotCallback()
    trainer = _trainer(tmp_path, callback)
    model, dm = TinyClassifier(), TinyDataModule(image_shape=(1, 2))
    trainer.fit(model, datamodule=dm)

    plots = tmp_path / "plots"
    assert callback.written == [plots / "curves.png"]
    # one point per epoch; the sanity-check validation is not recorded
    assert [e for e, _ in callback.history["train/loss"]] == [0, 1]
    assert [e for e, _ in callback.history["val/loss"]] == [0, 1]
    assert [e for e, _ in callback.history["val/acc"]] == [0, 1]
    assert all(np.isfinite(v) for pts in callback.history.values() for _, v in pts)

    trainer.test(model, datamodule=dm)
    for name in ("curves.png", "confusion.png", "boundary.png", "theta.png"):
        read_png(plots / name, min_kb=2.0)
    assert set(callback.written) == {
        plots / n for n in ("curves.png", "confusion.png", "boundary.png", "theta.png")
    }
    assert len(callback.written) == 4  # curves.png rewritten, listed once
    assert [e for e, _ in callback.history["test/acc"]] == [1]  # no checkpoint: the last epoch's weights
    assert callback.test_label == "test (last epoch 1)"
    assert callback.state_dict()["history"]["val/loss"] == callback.history["val/loss"]


def test_plot_callback_failing_plot_only_warns(tmp_path):
    callback = PlotCallback(out_dir=str(tmp_path / "figs"), every_n_epochs=1)
    trainer = _trainer(tmp_path, callback)
    model = TinyClassifier()
    dm = TinyDataModule(image_shape=(3, 3))  # Θ^(1) has 2 weights per unit: theta.png must fail
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm)
    assert (tmp_path / "figs" / "curves.png").is_file()  # every_n_epochs wrote it during fit
    with pytest.warns(UserWarning, match="could not write theta.png"):
        trainer.test(model, datamodule=dm)
    names = {p.name for p in callback.written}
    assert names == {"curves.png", "confusion.png", "boundary.png"}
    assert not (tmp_path / "figs" / "theta.png").exists()


# ------------------------------------------------------------------------ the curves of a real run
def _theta_mlp_run(tmp_path, epochs: int, ckpt_path=None, **trainer_kw):
    """ThetaMLPModule on a small xor set with a halving learning rate. Its ModelCheckpoint's "best"
    is epoch 0 by construction (val/acc_best never decreases, and only a strictly lower value
    replaces the best), so the tested epoch is not the last one."""
    import functools

    from lightning.pytorch.callbacks import ModelCheckpoint

    from lecturenn.data import PlaygroundDataModule
    from lecturenn.training.last import LastCheckpoint

    dm = PlaygroundDataModule("xor", n=120, noise=0.1, batch_size=16, seed=0)
    dm.setup("fit")
    info = dm.info
    model = module_for(
        info,
        hidden_sizes=[4],
        init_seed=0,
        optimizer=functools.partial(torch.optim.SGD, lr=0.5),
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
    )
    best = ModelCheckpoint(
        dirpath=tmp_path / "ck",
        filename="epoch_{epoch:03d}",
        monitor="val/acc_best",
        mode="min",
        auto_insert_metric_name=False,
    )
    callback = PlotCallback(out_dir=str(tmp_path / "plots"))
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[callback, best, LastCheckpoint(tmp_path / "ck")],
        **trainer_kw,
    )
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return trainer, model, dm, callback, best


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_curves_hold_every_epoch_with_the_values_metrics_json_reports(tmp_path, drawn):
    trainer, model, dm, callback, best = _theta_mlp_run(tmp_path, epochs=3)
    final = {k: float(v) for k, v in trainer.callback_metrics.items()}  # what train.py writes to metrics.json
    assert {"train/loss", "train/acc", "train/lr", "val/loss", "val/acc"} <= set(callback.history)
    for name, points in callback.history.items():
        assert [e for e, _ in points] == [0, 1, 2], name  # one point per epoch, the last one included
        assert points[-1][1] == final[name], name  # the last point is the final value, not the one before
    assert [v for _, v in callback.history["train/lr"]] == pytest.approx([0.5, 0.25, 0.125])
    legend = [p for p in drawn if "loss" in p][-1]["loss"]["legend"]
    assert f"train (epoch 2): {final['train/loss']:.4g}" in legend
    assert f"val (epoch 2): {final['val/loss']:.4g}" in legend

    # the test point sits at the epoch of the checkpoint that was tested (the best one), named so
    best_epoch = 0
    assert Path(best.best_model_path).name == f"epoch_{best_epoch:03d}.ckpt"
    trainer.test(model, datamodule=dm, ckpt_path=best.best_model_path, verbose=False)
    tested = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    assert callback.history["test/acc"] == [(best_epoch, tested["test/acc"])]
    assert callback.test_label == f"test (best epoch {best_epoch})"
    legend = [p for p in drawn if "loss" in p][-1]["loss"]["legend"]
    assert f"test (best epoch {best_epoch}): {tested['test/loss']:.4g}" in legend
    assert [e for e, _ in callback.history["train/loss"]] == [0, 1, 2]  # loading the checkpoint cut nothing
    for panels in drawn:
        assert all(p["offsets"] == ("", "") for p in panels.values())

    # last.ckpt (written after the module's on_train_epoch_end) carries the last epoch's train point:
    # a resumed run's curves have no gap
    trainer, *_, resumed, _ = _theta_mlp_run(
        tmp_path / "again", epochs=4, ckpt_path=tmp_path / "ck" / "last.ckpt"
    )
    assert [e for e, _ in resumed.history["train/loss"]] == [0, 1, 2, 3]
    assert [e for e, _ in resumed.history["val/loss"]] == [0, 1, 2, 3]
    assert resumed.history["train/loss"][:3] == callback.history["train/loss"]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_validation_every_second_epoch_is_plotted_where_it_ran(tmp_path):
    trainer, *_, callback, _ = _theta_mlp_run(tmp_path, epochs=4, check_val_every_n_epoch=2)
    assert [e for e, _ in callback.history["train/loss"]] == [0, 1, 2, 3]
    assert [e for e, _ in callback.history["val/loss"]] == [1, 3]
    assert callback.history["val/loss"][-1][1] == float(trainer.callback_metrics["val/loss"])
