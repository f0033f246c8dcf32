"""The model over the raw 2-D input plane, TensorFlow-Playground style: classes or a regression surface."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .canvas import BLUE, ORANGE, class_colors, class_names, new_figure, plain_ticks, save, to_numpy

__all__ = ["plot_decision_boundary"]

BINARY_CMAP = LinearSegmentedColormap.from_list("playground", [ORANGE, "#ffffff", BLUE])  # white at p = 0.5
REGRESSION_CMAP = "RdBu_r"
TRAIN_MARKER = dict(marker="o", edgecolors="white", linewidths=0.6)
TEST_MARKER = dict(marker="^", edgecolors="black", linewidths=0.8)


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
    s = to_numpy(predict_fn(X)).astype(np.float64)
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
    names, colors = class_names(classes, 2), class_colors(2)
    cb = fig.colorbar(cf, ax=ax, shrink=0.85, ticks=[0, 0.25, 0.5, 0.75, 1])
    cb.set_label(f"P(y = {names[1]})")
    _draw_class_points(ax, Xs, ys, colors, names)


def _draw_multiclass(ax, xx, yy, s, Xs, ys, classes) -> None:
    """Background coloured by argmax class, alpha by its probability; points coloured by class."""
    K = s.shape[1]
    names, colors = class_names(classes, K), class_colors(K)
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
    X_train, X_test = to_numpy(X_train), to_numpy(X_test)
    y_train, y_test = to_numpy(y_train).ravel(), to_numpy(y_test).ravel()
    X_test = X_test.reshape(-1, 2) if X_test.size == 0 else X_test
    X_all = np.concatenate([X_train, X_test]) if len(X_test) else X_train
    if X_all.ndim != 2 or X_all.shape[1] != 2 or len(X_all) == 0:
        raise ValueError(f"decision boundaries need raw 2-D points of shape (n, 2), got {X_all.shape}")
    xx, yy, grid, _ = _plane_grid(X_all, resolution)
    s = _scores(predict_fn, grid)
    fig = new_figure(6.4, 5.2)
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
    plain_ticks(ax)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    default = "regression surface" if regression else "decision boundary"
    ax.set_title(f"{title or default}\n{subtitle}" if subtitle else (title or default), fontsize=11)
    return save(fig, path)
