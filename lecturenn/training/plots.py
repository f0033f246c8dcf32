"""Figures of a training run: learning curves, decision boundaries, confusion matrices, Θ^(1) images.

Every function draws on its own ``matplotlib.figure.Figure`` rendered by the Agg canvas — pyplot is
never imported, so nothing pops up, no global figure state is touched, and each figure is freed as
soon as the function returns. Each function writes one PNG (parent folders created) and returns
its ``Path``.

``PlotCallback`` collects the per-epoch ``train/*``, ``val/*`` (and ``test/*``) metrics of a
Lightning run and writes the figures into ``<default_root_dir>/plots`` at the end of ``fit`` and
``test``, using duck-typed hooks on the module and the datamodule (see its docstring).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import Formatter, MaxNLocator

__all__ = [
    "PlotCallback",
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_decision_boundary",
    "plot_theta_images",
]

DPI = 110
STAGES = ("train", "val", "test")
STAGE_STYLE = {
    "train": dict(color="tab:blue", linestyle="-", marker="o"),
    "val": dict(color="tab:orange", linestyle="-", marker="s"),
    "test": dict(color="tab:green", linestyle="--", marker="*"),
}
LR_FAMILY = "lr"  # "train/lr": drawn as a low strip under the other panels
LR_STRIP_HEIGHT = 2.2  # inches
FAMILY_ORDER = ("loss", "acc", "accuracy", "f1", "auroc", "precision", "recall", "mse", "rmse", "mae", "r2")
BEST_SUFFIX = "best"  # "val/acc_best": a metric's best-so-far, its own panel (not a per-output series)
# Per-output series ("val/mae_<target>" of a K > 1 regression) are drawn in their base metric's
# panel, one colour per output (none of the stages' colours), for up to this many outputs.
OUTPUT_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray", "k")
MAX_OUTPUT_SERIES = len(OUTPUT_COLORS)

# TensorFlow-Playground colours: class 0 orange, class 1 blue, white at p = 0.5
ORANGE, BLUE = "#f59322", "#0877bd"
BINARY_CMAP = LinearSegmentedColormap.from_list("playground", [ORANGE, "#ffffff", BLUE])
REGRESSION_CMAP = "RdBu_r"
TRAIN_MARKER = dict(marker="o", edgecolors="white", linewidths=0.6)
TEST_MARKER = dict(marker="^", edgecolors="black", linewidths=0.8)


# ----------------------------------------------------------------------------------------- helpers
def _new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout, attached to an Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    """Write ``fig`` as a PNG to ``path`` (parents created), release it, return the Path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", facecolor="white")
    fig.clear()
    return path


def _to_numpy(x) -> np.ndarray:
    """np.ndarray from an array, a list or a (possibly CUDA, grad-requiring) tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _class_colors(K: int) -> list:
    """K distinct colours: the Playground pair for 2 classes, tab10 / tab20 beyond."""
    if K <= 2:
        return [to_rgba(ORANGE), to_rgba(BLUE)][: max(K, 1)]
    cmap = matplotlib.colormaps["tab10" if K <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(K)]


def _class_names(classes, K: int) -> list[str]:
    """Names for K classes: ``classes`` when given (and long enough), else "0", "1", ..."""
    if classes is not None and len(classes) >= K:
        return [str(c) for c in classes[:K]]
    return [str(k) for k in range(K)]


def _grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding n panels."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


# ------------------------------------------------------------------------------------------ curves
def _split_metric(name: str) -> tuple[str, str]:
    """ "val/acc" -> ("val", "acc"); a name without a known stage prefix is its own family."""
    stage, sep, family = name.partition("/")
    if sep and stage in STAGES:
        return stage, family
    return "", name


def _family_key(family: str) -> tuple[int, str]:
    """Sort key: the usual metrics in FAMILY_ORDER first, the rest alphabetically."""
    return (FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER), family)


def _base_family(family: str, families) -> str | None:
    """The metric a per-output family belongs to: "mae_price" -> "mae" when "mae" is among
    ``families`` (the longest such prefix); None for a metric of its own, and for "<metric>_best"."""
    bases = [f for f in families if family.startswith(f"{f}_") and family != f"{f}_{BEST_SUFFIX}"]
    return max(bases, key=len) if bases else None


def _group_history(history: dict) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """family -> {series name -> points sorted by epoch}, empty series dropped. Per-output series
    ("val/mae_<target>") join their base metric's family ("mae"); see :func:`_base_family`."""
    series = {name: [(int(e), float(v)) for e, v in points] for name, points in history.items()}
    series = {name: points for name, points in series.items() if points}
    own = {_split_metric(name)[1] for name in series}
    families: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for name, points in series.items():  # in logging order: the outputs in their targets' order
        family = _split_metric(name)[1]
        while (base := _base_family(family, own)) is not None:  # "mae_a_b" -> "mae_a" -> "mae"
            family = base
        families.setdefault(family, {})[name] = sorted(points, key=lambda p: p[0])
    return {f: families[f] for f in sorted(families, key=_family_key)}


def _output_of(name: str, family: str) -> str | None:
    """The output a series is of: "val/mae_price" in the "mae" panel -> "price"; None for the
    panel's own series ("val/mae")."""
    _, own = _split_metric(name)
    return own[len(family) + 1 :] if own != family else None


def _draw_series(
    ax,
    name: str,
    points: list[tuple[int, float]],
    test_label: str | None = None,
    output: str | None = None,
    color=None,
    qualifier: str = "",
) -> None:
    """One metric series: a line with markers; the legend names its last epoch and value. A
    per-output series (``output``, e.g. the target "price") is thinner, in ``color``."""
    stage, _ = _split_metric(name)
    style = dict(STAGE_STYLE.get(stage, dict(color=None, linestyle="-", marker=".")))
    epochs, values = zip(*points)
    ms = 10 if style["marker"] == "*" else 4
    width = 1.6
    if output is not None:
        style["color"], ms, width = color, ms * 0.7, 1.0
    if stage == "test":
        where = test_label or f"test (epoch {epochs[-1]})"
    else:
        where = f"{stage or name} (epoch {epochs[-1]})"
    what = f" {output}" if output is not None else qualifier
    if what:  # "val price (epoch 3)", "test mean (best epoch 2)"
        where = where.replace(" (", f"{what} (", 1) if " (" in where else f"{where}{what}"
    ax.plot(epochs, values, label=f"{where}: {values[-1]:.4g}", markersize=ms, linewidth=width, **style)


class _PlainTickFormatter(Formatter):
    """Tick labels that each state their own value in full: never an offset or a common factor
    ("1e-5+9.599e-1", "×1e−3") that a reader has to combine with the label.

    Fixed-point with as many decimals as the tick step needs; ticks of magnitude below 1e-4 (a
    small learning rate) as "%g" with as many significant digits as needed ("2.5e-05").
    """

    _format = "{:g}"
    _zero = 0.0

    def set_locs(self, locs) -> None:
        """Choose one format for this set of ticks (called by the axis before labelling them)."""
        ticks = sorted({float(v) for v in locs if math.isfinite(v)})
        if not ticks:
            self._format, self._zero = "{:g}", 0.0
            return
        step = min((b - a for a, b in zip(ticks, ticks[1:])), default=abs(ticks[0]) or 1.0)
        tol, self._zero = 1e-6 * step, 1e-9 * step
        if max(abs(v) for v in ticks) >= 1e-4:
            decimals = max(0, -math.floor(math.log10(step)))
            while decimals < 15 and any(abs(round(v, decimals) - v) > tol for v in ticks):
                decimals += 1
            self._format = f"{{:.{decimals}f}}"
        else:
            digits = 1
            while digits < 15 and any(abs(float(f"{v:.{digits}g}") - v) > tol for v in ticks):
                digits += 1
            self._format = f"{{:.{digits}g}}"

    def __call__(self, x, pos=None) -> str:
        return "0" if abs(x) <= self._zero else self._format.format(x)


def _plain_ticks(*axes) -> None:
    """Full tick labels (no offset, no common factor) on every linear axis of ``axes``."""
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "linear":
                axis.set_major_formatter(_PlainTickFormatter())


def _lr_scale(ax, points: list[tuple[int, float]]) -> None:
    """Log scale when the learning rate spans more than a factor of 10 (and stays positive)."""
    values = [v for _, v in points if math.isfinite(v)]
    if values and min(values) > 0 and max(values) > 10 * min(values):
        ax.set_yscale("log")


def _draw_panel(ax, family: str, series: dict, test_label: str | None) -> None:
    """A metric's series by stage, then its per-output series (up to MAX_OUTPUT_SERIES outputs,
    one colour each; with more, only the metric itself and a title saying how many are left out)."""
    outputs = list(dict.fromkeys(o for name in series if (o := _output_of(name, family)) is not None))
    drawn = outputs if len(outputs) <= MAX_OUTPUT_SERIES else []
    colors = dict(zip(drawn, OUTPUT_COLORS))
    qualifier = " mean" if drawn else ""  # the outputs' uniform average, next to the outputs
    for name, points in sorted(series.items(), key=lambda kv: _stage_rank(kv[0])):
        output = _output_of(name, family)
        if output is None:
            _draw_series(ax, name, points, test_label, qualifier=qualifier)
    for output in drawn:
        for name, points in sorted(series.items(), key=lambda kv: _stage_rank(kv[0])):
            if _output_of(name, family) == output:
                _draw_series(ax, name, points, test_label, output, colors[output])
    title = "learning rate" if family == LR_FAMILY else family
    if len(outputs) > len(drawn):
        title = f"{title} (mean; {len(outputs)} per-output series not drawn)"
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(family)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if family == LR_FAMILY:
        _lr_scale(ax, [p for pts in series.values() for p in pts])
    _plain_ticks(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8 if len(series) <= 6 else 7)


def plot_curves(history: dict[str, list[tuple[int, float]]], path, *, test_label: str | None = None) -> Path:
    """Learning curves: one panel per metric family, train / val / test as lines, x = epoch.

    ``history`` maps a metric name ("train/loss", "val/acc", ...) to ``[(epoch, value), ...]``. The
    family is the part after the stage prefix, so "train/loss" and "val/loss" share a panel; the
    per-output series of a regression with K ≥ 2 outputs ("val/mae_<target>") are drawn in their
    metric's panel ("mae"), one colour per output, next to the mean over the outputs (for more than
    MAX_OUTPUT_SERIES outputs only the mean, the title saying so). ``*_best`` keeps its own panel. The
    learning rate ("train/lr") gets a low strip of its own under the panels, on a log scale when it
    spans more than a factor of 10. Each legend entry names the series' last epoch and value; test
    series are labelled ``test_label`` (e.g. "test (best epoch 3)", default "test (epoch N)").
    Tick labels are written out in full (no offset notation). Empty series are skipped; with
    nothing to plot the figure says "no metrics logged".
    """
    families = _group_history(history)
    if not families:
        fig = _new_figure(5.0, 3.0)
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no metrics logged", ha="center", va="center", fontsize=14, color="0.4")
        ax.set_axis_off()
        fig.suptitle("learning curves")
        return _save(fig, path)

    lr = families.pop(LR_FAMILY) if len(families) > 1 and LR_FAMILY in families else None
    rows, cols = (1, len(families)) if len(families) <= 3 else _grid_shape(len(families))
    strip = LR_STRIP_HEIGHT if lr else 0.0
    fig = _new_figure(4.6 * cols, 3.4 * rows + strip)
    grid = fig.add_gridspec(rows + bool(lr), cols, height_ratios=[3.4] * rows + ([strip] if lr else []))
    for i, (family, series) in enumerate(families.items()):
        _draw_panel(fig.add_subplot(grid[i // cols, i % cols]), family, series, test_label)
    if lr:
        _draw_panel(fig.add_subplot(grid[rows, :]), LR_FAMILY, lr, test_label)
    fig.suptitle("learning curves")
    return _save(fig, path)


def _stage_rank(name: str) -> int:
    """train, val, test, then anything else."""
    stage, _ = _split_metric(name)
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


# ------------------------------------------------------------------------------- decision boundary
def _plane_grid(X: np.ndarray, resolution: int, margin: float = 0.1):
    """A resolution × resolution grid covering the points of X with a 10% margin on each side."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    lo, hi = lo - margin * span, hi + margin * span
    xs = np.linspace(lo[0], hi[0], resolution)
    ys = np.linspace(lo[1], hi[1], resolution)
    xx, yy = np.meshgrid(xs, ys)
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    grid = np.column_stack([xx.ravel(), yy.ravel()]).astype(dtype)
    return xx, yy, grid, (lo[0], hi[0], lo[1], hi[1])


def _scores(predict_fn: Callable, X: np.ndarray) -> np.ndarray:
    """predict_fn(X) as a float array; (m, 1) is flattened to (m,)."""
    s = _to_numpy(predict_fn(X)).astype(np.float64)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.shape[0] != X.shape[0]:
        raise ValueError(f"predict_fn returned {s.shape[0]} rows for {X.shape[0]} points")
    return s


def _labels(s: np.ndarray) -> np.ndarray:
    """Predicted class: argmax over columns, or the 0.5 threshold of a binary score."""
    return s.argmax(axis=1) if s.ndim == 2 else (s >= 0.5).astype(int)


def _scatter_points(ax, X, colors, *, marker, size, label=None, **kw) -> None:
    """Scatter (n, 2) points (nothing when n = 0)."""
    if len(X):
        ax.scatter(X[:, 0], X[:, 1], c=colors, s=size, label=label, zorder=3, **{**marker, **kw})


def _point_size(n: int) -> float:
    """Marker area shrinking with the number of points."""
    return float(np.clip(4000.0 / max(n, 1), 6.0, 40.0))


def _legend_handles(names: list[str], colors: list) -> list[Line2D]:
    """One coloured dot per class, then the train / test marker explanation."""
    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=7, color=c, label=n)
        for n, c in zip(names, colors)
    ]
    handles += [
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markersize=7,
            color="0.6",
            markeredgecolor="white",
            label="train",
        ),
        Line2D(
            [], [], linestyle="", marker="^", markersize=7, color="0.6", markeredgecolor="black", label="test"
        ),
    ]
    return handles


def _accuracy_text(predict_fn, X_train, y_train, X_test, y_test) -> str:
    """ "train acc 0.950 · test acc 0.930" from the model's own predictions on the points."""
    parts = []
    for stage, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        if len(X):
            acc = float((_labels(_scores(predict_fn, X)) == y.astype(int)).mean())
            parts.append(f"{stage} acc {acc:.3f}")
    return " · ".join(parts)


def _r2_text(predict_fn, X_train, y_train, X_test, y_test) -> str:
    """ "train R² 0.91 · test R² 0.88" from the model's own predictions on the points."""
    parts = []
    for stage, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        if len(X) > 1:
            pred = _scores(predict_fn, X).reshape(len(X), -1)[:, 0]
            ss_tot = float(((y - y.mean()) ** 2).sum())
            r2 = 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
            parts.append(f"{stage} R² {r2:.3f}")
    return " · ".join(parts)


def _draw_binary(fig, ax, xx, yy, s, Xs, ys, classes) -> None:
    """Playground background P(y = 1), the 0.5 contour, points coloured by class."""
    p = np.clip(s.reshape(xx.shape), 0.0, 1.0)
    cf = ax.contourf(xx, yy, p, levels=np.linspace(0.0, 1.0, 21), cmap=BINARY_CMAP, alpha=0.75)
    ax.contour(xx, yy, p, levels=[0.5], colors="black", linewidths=1.4)
    names, colors = _class_names(classes, 2), _class_colors(2)
    cb = fig.colorbar(cf, ax=ax, shrink=0.85, ticks=[0, 0.25, 0.5, 0.75, 1])
    cb.set_label(f"P(y = {names[1]})")
    _draw_class_points(ax, Xs, ys, colors, names)


def _draw_multiclass(ax, xx, yy, s, Xs, ys, classes) -> None:
    """Background coloured by argmax class, alpha by its probability; points coloured by class."""
    K = s.shape[1]
    names, colors = _class_names(classes, K), _class_colors(K)
    k = s.argmax(axis=1)
    confidence = s.max(axis=1)
    alpha = 0.12 + 0.55 * np.clip((confidence - 1.0 / K) / (1.0 - 1.0 / K), 0.0, 1.0)
    rgba = np.asarray(colors)[k].copy()
    rgba[:, 3] = alpha
    extent = (xx.min(), xx.max(), yy.min(), yy.max())
    ax.imshow(
        rgba.reshape(*xx.shape, 4),
        origin="lower",
        extent=extent,
        aspect="auto",
        interpolation="bilinear",
        zorder=0,
    )
    if K > 1:
        ax.contour(
            xx, yy, k.reshape(xx.shape), levels=np.arange(K) + 0.5, colors="black", linewidths=0.8, alpha=0.6
        )
    _draw_class_points(ax, Xs, ys, colors, names)


def _draw_class_points(ax, Xs, ys, colors, names) -> None:
    """Train and test points coloured by their true class, plus the legend."""
    (X_train, X_test), (y_train, y_test) = Xs, ys
    palette = np.asarray(colors)
    size = _point_size(len(X_train) + len(X_test))
    for X, y, marker, mult in ((X_train, y_train, TRAIN_MARKER, 1.0), (X_test, y_test, TEST_MARKER, 1.3)):
        idx = np.clip(y.astype(int), 0, len(palette) - 1)
        _scatter_points(ax, X, palette[idx] if len(X) else None, marker=marker, size=size * mult)
    ax.legend(handles=_legend_handles(names, colors), fontsize=8, loc="best", framealpha=0.85)


def _regression_norm(z: np.ndarray, y_train: np.ndarray, y_test: np.ndarray) -> TwoSlopeNorm:
    """Colour scale over the targets' range (the surface may extend beyond it), white at the train mean."""
    targets = np.concatenate([y_train.ravel(), y_test.ravel()]).astype(np.float64)
    values = targets[np.isfinite(targets)]
    if len(values) < 2:
        values = z[np.isfinite(z)]
    vmin, vmax = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    if vmax - vmin <= 1e-12 * max(1.0, abs(vmin)):
        vmin, vmax = vmin - 0.5, vmax + 0.5
    center = float(np.mean(y_train)) if len(y_train) else (vmin + vmax) / 2
    eps = 1e-6 * (vmax - vmin)
    return TwoSlopeNorm(vcenter=float(np.clip(center, vmin + eps, vmax - eps)), vmin=vmin, vmax=vmax)


def _draw_regression(fig, ax, xx, yy, s, Xs, ys) -> None:
    """Predicted surface on a diverging colormap; points coloured by their target on the same scale."""
    (X_train, X_test), (y_train, y_test) = Xs, ys
    z = s.reshape(len(s), -1)[:, 0].reshape(xx.shape)
    norm = _regression_norm(z, y_train, y_test)
    levels = MaxNLocator(nbins=20).tick_values(norm.vmin, norm.vmax)
    cf = ax.contourf(xx, yy, z, levels=levels, cmap=REGRESSION_CMAP, norm=norm, alpha=0.85, extend="both")
    size = 1.4 * _point_size(len(X_train) + len(X_test))
    for X, y, marker, label in (
        (X_train, y_train, dict(marker="o", edgecolors="0.25", linewidths=0.5), "train"),
        (X_test, y_test, dict(marker="^", edgecolors="black", linewidths=0.9), "test"),
    ):
        if len(X):
            ax.scatter(
                X[:, 0],
                X[:, 1],
                c=y,
                cmap=REGRESSION_CMAP,
                norm=norm,
                s=size,
                label=label,
                zorder=3,
                **marker,
            )
    cb = fig.colorbar(cf, ax=ax, shrink=0.85)
    cb.set_label("prediction (surface) / target (points)")
    ax.legend(fontsize=8, loc="best", framealpha=0.85)


def plot_decision_boundary(
    predict_fn: Callable,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    path,
    *,
    title: str = "",
    resolution: int = 200,
    classes: list[str] | None = None,
    regression: bool = False,
) -> Path:
    """The model over the raw 2-D input plane, TensorFlow-Playground style.

    ``predict_fn(G)`` gets grid points ``G`` of shape (m, 2) in the raw input space and returns
    (m,) scores in [0, 1] (P of the positive class: background from orange to blue, black 0.5
    contour), (m, K) class probabilities (background coloured by the argmax class, alpha by its
    probability) or, with ``regression=True``, (m,) real predictions (diverging colormap, points
    coloured by their target). Train points are circles, test points black-edged triangles.
    """
    X_train, X_test = _to_numpy(X_train), _to_numpy(X_test)
    y_train, y_test = _to_numpy(y_train).ravel(), _to_numpy(y_test).ravel()
    X_test = X_test.reshape(-1, 2) if X_test.size == 0 else X_test
    X_all = np.concatenate([X_train, X_test]) if len(X_test) else X_train
    if X_all.ndim != 2 or X_all.shape[1] != 2 or len(X_all) == 0:
        raise ValueError(f"decision boundaries need raw 2-D points of shape (n, 2), got {X_all.shape}")
    xx, yy, grid, _ = _plane_grid(X_all, resolution)
    s = _scores(predict_fn, grid)
    fig = _new_figure(6.4, 5.2)
    ax = fig.add_subplot()
    Xs, ys = (X_train, X_test), (y_train, y_test)
    if regression:
        _draw_regression(fig, ax, xx, yy, s, Xs, ys)
        subtitle = _r2_text(predict_fn, X_train, y_train, X_test, y_test)
    elif s.ndim == 1:
        _draw_binary(fig, ax, xx, yy, s, Xs, ys, classes)
        subtitle = _accuracy_text(predict_fn, X_train, y_train, X_test, y_test)
    else:
        _draw_multiclass(ax, xx, yy, s, Xs, ys, classes)
        subtitle = _accuracy_text(predict_fn, X_train, y_train, X_test, y_test)
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    _plain_ticks(ax)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    default = "regression surface" if regression else "decision boundary"
    ax.set_title(f"{title or default}\n{subtitle}" if subtitle else (title or default), fontsize=11)
    return _save(fig, path)


# -------------------------------------------------------------------------------- confusion matrix
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: entry [i, j] = number of samples of true class i predicted j."""
    t = _to_numpy(y_true).ravel().astype(np.int64)
    p = _to_numpy(y_pred).ravel().astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    for name, y in (("y_true", t), ("y_pred", p)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} has labels in [{y.min()}, {y.max()}], outside [0, {n_classes})")
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def plot_confusion_matrix(
    cm: np.ndarray, path, *, classes: list[str] | None = None, title: str = "confusion matrix (test)"
) -> Path:
    """Counts in cells (rows = true class, columns = predicted), accuracy in the title."""
    cm = _to_numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {cm.shape}")
    K = cm.shape[0]
    if classes is not None and len(classes) != K:
        raise ValueError(f"{len(classes)} class names for a {K} × {K} confusion matrix")
    names = _class_names(classes, K)
    total = cm.sum()
    acc = f"{np.trace(cm) / total:.3f}" if total > 0 else "n/a"
    side = float(np.clip(0.38 * K + 2.6, 4.6, 10.0))
    fig = _new_figure(side + 1.0, side)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(cm.max(), 1), interpolation="nearest")
    _annotate_cells(ax, cm)
    rotate = K > 8 or max(len(n) for n in names) > 6
    fontsize = 10 if K <= 10 else 8 if K <= 16 else 7
    ax.set_xticks(
        range(K), names, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=fontsize
    )
    ax.set_yticks(range(K), names, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\naccuracy {acc}  (n = {int(total)})", fontsize=11)
    fig.colorbar(im, ax=ax, shrink=0.8).set_label("count")
    return _save(fig, path)


def _annotate_cells(ax, cm: np.ndarray) -> None:
    """Write each count in its cell, white on dark cells, black on light ones; zeros faded."""
    K = cm.shape[0]
    fontsize = 10 if K <= 10 else 8 if K <= 15 else 7
    threshold = cm.max() / 2.0
    for i in range(K):
        for j in range(K):
            v = cm[i, j]
            color = "white" if v > threshold else ("0.6" if v == 0 else "black")
            text = f"{v:d}" if np.issubdtype(cm.dtype, np.integer) else f"{v:.3g}"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)


# -------------------------------------------------------------------------------------- Θ^(1) images
def _theta_mosaic(W: np.ndarray, image_shape: tuple[int, int], pad: int = 1) -> np.ndarray:
    """Tile the rows of W (each normalised to [-1, 1]) as images in a near-square grid; NaN padding."""
    h, w = image_shape
    rows, cols = _grid_shape(len(W))
    mosaic = np.full((pad + rows * (h + pad), pad + cols * (w + pad)), np.nan)
    for k, row in enumerate(W):
        scale = np.abs(row).max()
        img = (row / scale if scale > 0 else row).reshape(h, w)
        r, c = divmod(k, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        mosaic[top : top + h, left : left + w] = img
    return mosaic


def plot_theta_images(
    theta1: np.ndarray,
    image_shape: tuple[int, int],
    path,
    *,
    max_units: int = 100,
    title: str = r"rows of $\Theta^{(1)}$ (bias column dropped)",
) -> Path:
    """What the hidden units look for: each row Θ^(1)[j, 1:] shown as an image of ``image_shape``.

    Each unit is scaled by its own max |weight| so that grey = 0, white = most positive, black = most
    negative; at most ``max_units`` units are shown, in a near-square grid.
    """
    theta1 = _to_numpy(theta1).astype(np.float64)
    h, w = (int(d) for d in image_shape)
    if theta1.ndim != 2 or theta1.shape[1] - 1 != h * w:
        raise ValueError(
            f"Θ^(1) of shape {theta1.shape} does not hold {h}×{w} images: expected (s_2, {h * w + 1})"
        )
    W = theta1[: max(1, max_units), 1:]
    mosaic = _theta_mosaic(W, (h, w))
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="#4a6f9a")
    aspect = mosaic.shape[1] / mosaic.shape[0]
    side = 6.0
    fig = _new_figure(side * min(aspect, 1.6) + 1.2, side * min(1 / aspect, 1.6))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    units = "hidden unit" if len(theta1) == 1 else "hidden units"
    shown = f"{len(W)} of {len(theta1)} {units}" if len(W) < len(theta1) else f"{len(W)} {units}"
    ax.set_title(f"{title}\n{shown}, each {h}×{w}, scaled by its max |weight|", fontsize=11)
    fig.colorbar(im, ax=ax, shrink=0.8, ticks=[-1, 0, 1]).set_label("weight / max |weight| of the unit")
    return _save(fig, path)


# ----------------------------------------------------------------------------------------- callback
def _scalar(value) -> float | None:
    """float(value) for a Python number or a one-element tensor / array, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().cpu().item())
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.item())
    return None


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
      - ``theta.png``: ``datamodule.info.image_shape`` set; Θ^(1) is ``pl_module.net.theta(1)``.

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
        if every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be >= 0, got {every_n_epochs}")
        self.out_dir = out_dir
        self.every_n_epochs = int(every_n_epochs)
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
        info = getattr(datamodule, "info", None)
        out = self.plot_dir(trainer)
        task = getattr(pl_module, "task", None)
        if getattr(pl_module, "test_predictions", None) is not None and task in ("binary", "multiclass"):
            self._attempt("confusion.png", lambda: self._confusion(pl_module, info, out / "confusion.png"))
        has_raw = callable(getattr(datamodule, "raw_splits", None))
        if has_raw and callable(getattr(datamodule, "transform", None)) and task != "multilabel":
            self._attempt(
                "boundary.png", lambda: self._boundary(pl_module, datamodule, info, out / "boundary.png")
            )
        if getattr(info, "image_shape", None) is not None:
            self._attempt("theta.png", lambda: self._theta(pl_module, info, out / "theta.png"))

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

    @staticmethod
    def _confusion(pl_module, info, path: Path) -> Path:
        y_true, y_pred = (_to_numpy(a).ravel().astype(np.int64) for a in pl_module.test_predictions)
        classes = getattr(info, "classes", None)
        classes = list(classes) if classes is not None else None
        seen = int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
        K = len(classes) if classes else max(seen, 2 if pl_module.task == "binary" else seen)
        return plot_confusion_matrix(confusion_matrix(y_true, y_pred, K), path, classes=classes)

    @staticmethod
    def _boundary(pl_module, datamodule, info, path: Path) -> Path | None:
        splits = datamodule.raw_splits()
        X_train, y_train = (_to_numpy(a) for a in splits["train"])
        X_test, y_test = (_to_numpy(a) for a in splits["test"])
        if X_train.ndim != 2 or X_train.shape[1] != 2:
            return None  # only 2-D inputs have a picture
        classes = getattr(info, "classes", None)

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
            classes=None if classes is None else list(classes),
            regression=regression,
        )

    @staticmethod
    def _theta(pl_module, info, path: Path) -> Path:
        theta1 = pl_module.net.theta(1).detach().cpu().numpy()
        return plot_theta_images(theta1, tuple(info.image_shape), path)
