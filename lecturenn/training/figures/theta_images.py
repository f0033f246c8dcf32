"""What the hidden units look for: the rows of Θ^(1) (bias column dropped) shown as images."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from .canvas import grid_shape, new_figure, save, to_numpy

__all__ = ["plot_theta_images"]


def _theta_mosaic(W: np.ndarray, image_shape: tuple[int, int], pad: int = 1) -> np.ndarray:
    """Tile the rows of W (each normalised to [-1, 1]) as images in a near-square grid; NaN padding."""
    h, w = image_shape
    rows, cols = grid_shape(len(W))
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
    theta1 = to_numpy(theta1).astype(np.float64)
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
    fig = new_figure(side * min(aspect, 1.6) + 1.2, side * min(1 / aspect, 1.6))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    units = "hidden unit" if len(theta1) == 1 else "hidden units"
    shown = f"{len(W)} of {len(theta1)} {units}" if len(W) < len(theta1) else f"{len(W)} {units}"
    ax.set_title(f"{title}\n{shown}, each {h}×{w}, scaled by its max |weight|", fontsize=11)
    fig.colorbar(im, ax=ax, shrink=0.8, ticks=[-1, 0, 1]).set_label("weight / max |weight| of the unit")
    return save(fig, path)
