"""What every figure shares: a pyplot-free Agg figure, saving (PNG, or the format a suffix names),
array conversion, class colours, ticks.

Every figure is a ``matplotlib.figure.Figure`` rendered by the Agg canvas — pyplot is never imported,
so nothing pops up, no global figure state is touched, and each figure is freed once it is saved.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import Formatter

__all__ = [
    "BLUE",
    "DPI",
    "ORANGE",
    "class_colors",
    "class_names",
    "grid_shape",
    "new_figure",
    "plain_ticks",
    "save",
    "to_numpy",
]

DPI = 110
# TensorFlow-Playground colours: class 0 orange, class 1 blue
ORANGE, BLUE = "#f59322", "#0877bd"


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with constrained layout, attached to an Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path, release: bool = True) -> Path:
    """Write ``fig`` to ``path`` (parents created) in the format its suffix names — ``.png``, ``.svg``,
    ``.pdf``, ... (matplotlib's writers); PNG for a path without a suffix — release it (``release``),
    return the Path. ``ValueError`` naming the suffix, before anything is written, for one matplotlib
    does not write (a ``.txt`` would otherwise get PNG bytes)."""
    path = Path(path)
    fmt = path.suffix.lower().removeprefix(".") or "png"
    formats = fig.canvas.get_supported_filetypes()
    if fmt not in formats:
        raise ValueError(
            f"cannot write a figure to {str(path)!r}: matplotlib writes no {path.suffix!r} files; "
            f"use one of {', '.join('.' + k for k in sorted(formats))}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format=fmt, facecolor="white")
    if release:
        fig.clear()
    return path


def to_numpy(x) -> np.ndarray:
    """np.ndarray from an array, a list or a (possibly CUDA, grad-requiring) tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.dtype == torch.bfloat16 else x).numpy()  # numpy has no bfloat16
    return np.asarray(x)


def class_colors(K: int) -> list:
    """K distinct colours: the Playground pair for 2 classes, tab10 / tab20 beyond."""
    if K <= 2:
        return [to_rgba(ORANGE), to_rgba(BLUE)][: max(K, 1)]
    cmap = matplotlib.colormaps["tab10" if K <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(K)]


def class_names(classes, K: int) -> list[str]:
    """Names for K classes: ``classes`` when given (and long enough), else "0", "1", ..."""
    if classes is not None and len(classes) >= K:
        return [str(c) for c in classes[:K]]
    return [str(k) for k in range(K)]


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding n panels."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


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


def plain_ticks(*axes) -> None:
    """Full tick labels (no offset, no common factor) on every linear axis of ``axes``."""
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "linear":
                axis.set_major_formatter(_PlainTickFormatter())
