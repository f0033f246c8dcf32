"""Confusion matrix: counts (rows = true class, columns = predicted) and the accuracy in the title."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .canvas import class_names, new_figure, save, to_numpy

__all__ = ["confusion_matrix", "plot_confusion_matrix"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: entry [i, j] = number of samples of true class i predicted j."""
    t = to_numpy(y_true).ravel().astype(np.int64)
    p = to_numpy(y_pred).ravel().astype(np.int64)
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
    cm = to_numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {cm.shape}")
    K = cm.shape[0]
    if classes is not None and len(classes) != K:
        raise ValueError(f"{len(classes)} class names for a {K} × {K} confusion matrix")
    names = class_names(classes, K)
    total = cm.sum()
    acc = f"{np.trace(cm) / total:.3f}" if total > 0 else "n/a"
    side = float(np.clip(0.38 * K + 2.6, 4.6, 10.0))
    fig = new_figure(side + 1.0, side)
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
    return save(fig, path)


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
