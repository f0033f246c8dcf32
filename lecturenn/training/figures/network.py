"""The lecture's picture of backpropagation: units by layer, every connection Θ^(l)_ij, and each unit's
activation a^(l)_j and error δ^(l)_j — the "blame" that flows back along the connections.

The numbers come from the teaching path, :func:`lecturenn.teaching.backpropagate`, and are returned
with the figure (:class:`NetworkPicture`), so what is drawn is what backpropagation computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ...network import ThetaMLP
from ...teaching import backpropagate
from ...validation import check_integer
from .canvas import new_figure, plain_ticks, save, to_numpy

__all__ = ["MAX_UNITS", "NetworkPicture", "check_drawable", "plot_network"]

MAX_UNITS = 16  # units per layer (bias unit not counted) that a picture shows legibly
EDGE_CMAP = "RdBu"  # Θ: red negative, blue positive
DELTA_CMAP = "PuOr"  # δ: orange negative, purple positive
INPUT_FILL, BIAS_FILL = "#e8e8e8", "#ffffff"
SLOT_IN = 0.64  # inches between two units of a layer in a new figure
TOP, BOTTOM = 0.3, 0.85  # room above the top unit (Θ labels) and below the lowest (layer labels), in slots
EDGE_GID = "theta edges"  # the LineCollection of the Θ^(l)_ij edges (one segment per entry)


@dataclass(frozen=True)
class NetworkPicture:
    """What :func:`plot_network` drew, by the lecture's layer numbers (numpy float64).

    ``figure``  the matplotlib Figure (saved to ``path`` when one was given)
    ``a[l]``      a^(l) (s_l,), l = 1..L+1: the example's activations, or their mean over the rows
    ``delta[l]``  δ^(l) (s_l,), l = 2..L+1: the example's errors, or the mean over the rows of each
                  row's δ_i^(l) (the input layer has none)
    ``thetas[l]`` Θ^(l) (s_{l+1}, s_l + 1), l = 1..L, bias in column 0: the edges' weights
    ``example``   the row drawn, or None for the mean over all ``rows``
    ``rows``      n, the rows of X
    ``path``      where the figure was written, or None
    """

    figure: Figure
    a: dict[int, np.ndarray]
    delta: dict[int, np.ndarray]
    thetas: dict[int, np.ndarray]
    example: int | None
    rows: int
    path: Path | None


def check_drawable(net, max_units: int = MAX_UNITS) -> None:
    """``TypeError`` unless ``net`` is a :class:`~lecturenn.ThetaMLP`; ``ValueError`` naming the first layer
    with more than ``max_units`` units, or a net with batchnorm/dropout (not the lecture's network)."""
    if not isinstance(net, ThetaMLP):
        inner = next(
            (name for name in ("net_", "net") if isinstance(getattr(net, name, None), ThetaMLP)), None
        )
        fit = hasattr(net, "fit") and hasattr(net, "predict")
        hint = f"; pass its .{inner}" if inner else "; fit it and pass its .net_" if fit else ""
        raise TypeError(f"plot_network draws a lecturenn.ThetaMLP, got {type(net).__name__}{hint}")
    max_units = check_integer(max_units, "max_units", low=1)
    if net.thetas[0].device.type == "meta":
        raise ValueError("plot_network draws Θ's values, but this net is on the meta device (it has none)")
    for j, s in enumerate(net.sizes, start=1):
        if s > max_units:
            raise ValueError(
                f"plot_network shows at most max_units={max_units} units per layer, but layer {j} "
                f"({_layer_kind(j, len(net.sizes))}) has {s}: plot_network(..., max_units={s}) draws a "
                "large picture, or draw a smaller network"
            )
    if not net.plain:
        raise ValueError("plot_network draws the lecture's plain network; this one has batchnorm/dropout")


def _layer_kind(j: int, layers: int) -> str:
    return "input" if j == 1 else "output" if j == layers else "hidden"


def _values(net: ThetaMLP, X, Y, example) -> tuple[dict, dict, dict, int]:
    """a^(l), δ^(l) of one row (or their means over the rows) and Θ^(l), all from ``backpropagate``."""
    if example is not None:
        check_integer(example, "example (a row of X; None: the mean over the rows)", low=0)
    bp = backpropagate(net, X, Y)  # checks X, Y (shapes, NaN, labels) and Θ
    n = bp.a[1].shape[0]
    if example is not None:
        example = check_integer(example, f"example (a row of X, which has {n})", low=0, high=n - 1)

    def pick(t) -> np.ndarray:  # (n, s) -> (s,)
        t = to_numpy(t).astype(np.float64)
        return t[example] if example is not None else t.mean(axis=0)

    a = {l: pick(t) for l, t in bp.a.items()}
    delta = {l: pick(t) for l, t in bp.delta.items()}
    thetas = {l: to_numpy(net.theta(l)).astype(np.float64) for l in range(1, net.num_layers + 1)}
    return a, delta, thetas, n


def _num(v: float) -> str:
    """Two significant digits, short: 0.6, -0.0022, 2.2e-5, 123 (the exact values are returned)."""
    if v == 0:
        return "0"
    if 99.5 <= abs(v) < 1e6:
        return f"{v:.0f}"
    return f"{v:.2g}".replace("e-0", "e-").replace("e+0", "e+")


def _positions(sizes: list[int]) -> list[np.ndarray]:
    """y of each unit of each layer, bias unit first (top) in every layer but the last; centred columns."""
    out = []
    for j, s in enumerate(sizes, start=1):
        slots = s + (1 if j < len(sizes) else 0)
        out.append((slots - 1) / 2 - np.arange(slots, dtype=np.float64))
    return out


def _ink(rgba) -> str:
    """Black or white text, whichever reads on the fill ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _symmetric(values) -> Normalize:
    """A colour scale centred on 0 spanning ± the largest |value| (± 1 when all are 0)."""
    m = max((float(np.abs(v).max()) for v in values if v.size), default=0.0)
    m = m if m > 0 and np.isfinite(m) else 1.0
    return Normalize(-m, m)


def _draw(ax: Axes, net: ThetaMLP, a, delta, thetas) -> None:
    sizes, L = net.sizes, net.num_layers
    ys = _positions(sizes)
    slots = max(len(y) for y in ys)
    low, high = -(slots - 1) / 2 - 0.5 - BOTTOM, (slots - 1) / 2 + 0.5 + TOP
    ax.set_xlim(-0.4, L + 0.4)
    ax.set_ylim(low, high)
    ax.set_axis_off()
    # marker size from the spacing of the units on the page (points): circles stay round at any aspect
    fig = ax.figure
    height_pt = ax.get_position().height * fig.get_figheight() * 72
    width_pt = ax.get_position().width * fig.get_figwidth() * 72
    step_pt = min(height_pt / (high - low), width_pt / (L + 0.8) / 3)
    diameter = float(np.clip(0.74 * step_pt, 10.0, 40.0))
    font = float(np.clip(diameter / 5.2, 4.0, 7.5))
    longest = max(len(f"layer {len(sizes)}: output, {net.head.name} head"), 24)  # the widest layer label
    label_font = float(np.clip(width_pt / (L + 0.8) / (0.58 * longest), 5.5, 8.5))  # labels do not touch

    # edges: Θ^(l)_ij joins unit j of layer l (j = 0: the bias unit) to unit i of layer l + 1
    edge_norm = _symmetric(thetas.values())
    segments, weights = [], []
    for l in range(1, L + 1):
        y_from, y_to = ys[l - 1], ys[l]  # the bias is slot 0 of layer l; layer l+1's units are its slots
        first = 1 if l < L else 0  # the output layer has no bias slot
        for i in range(sizes[l]):
            for j in range(sizes[l - 1] + 1):
                segments.append([(l - 1, y_from[j]), (l, y_to[first + i])])
                weights.append(thetas[l][i, j])
    weights = np.asarray(weights)
    order = np.argsort(np.abs(weights), kind="stable")  # strong connections on top
    scale = float(edge_norm.vmax)
    densest = max(sizes[l] * (sizes[l - 1] + 1) for l in range(1, L + 1))  # edges between two columns
    widest = float(np.clip(4.2 * np.sqrt(60 / densest), 1.8, 4.2))  # thinner lines where they crowd
    edges = LineCollection(
        [segments[k] for k in order],
        colors=matplotlib.colormaps[EDGE_CMAP](edge_norm(weights[order])),
        linewidths=0.3 + widest * np.abs(weights[order]) / scale,
        zorder=1,
        capstyle="round",
    )
    edges.set_gid(EDGE_GID)
    ax.add_collection(edges)
    for l in range(1, L + 1):
        ax.text(l - 0.5, high, rf"$\Theta^{{({l})}}$: {sizes[l]}×{sizes[l - 1] + 1}",
                ha="center", va="top", fontsize=label_font, color="0.25")  # fmt: skip

    # units: circles filled by δ (grey: the inputs, which have none); the bias units a_0 = 1 as squares
    delta_norm = _symmetric(delta.values())
    delta_cmap = matplotlib.colormaps[DELTA_CMAP]
    for j, s in enumerate(sizes, start=1):
        y = ys[j - 1]
        if j <= L:  # the bias unit of layer j
            ax.scatter([j - 1], [y[0]], s=diameter**2 * 0.8, marker="s", c=BIAS_FILL, edgecolors="0.2",
                       linewidths=1.0, zorder=3)  # fmt: skip
            ax.text(j - 1, y[0], "+1", ha="center", va="center", fontsize=font + 0.5, zorder=4)
            y = y[1:]
        fills = [delta_cmap(delta_norm(d)) for d in delta[j]] if j in delta else [INPUT_FILL] * s
        ax.scatter(np.full(s, j - 1.0), y, s=diameter**2, c=fills, edgecolors="0.2", linewidths=0.8, zorder=3)
        for k in range(s):
            rgba = matplotlib.colors.to_rgba(fills[k])
            label = _num(a[j][k]) if j not in delta else f"{_num(a[j][k])}\n{_num(delta[j][k])}"
            ax.text(j - 1, y[k], label, ha="center", va="center", fontsize=font, color=_ink(rgba),
                    zorder=4, linespacing=1.15)  # fmt: skip
        kind = _layer_kind(j, len(sizes))
        shows = {
            "input": f"units: $a^{{({j})}} = x$",
            "hidden": f"units: $a^{{({j})}}$ over $\\delta^{{({j})}}$",
            "output": f"units: $a^{{({j})}} = h$ over $\\delta^{{({j})}}$",
        }[kind]
        g = {"input": "", "hidden": f", {net.activation.name}", "output": f", {net.head.name} head"}[kind]
        ax.text(j - 1, low, f"layer {j}: {kind}{g}\n{shows}", ha="center", va="bottom", fontsize=label_font)

    for norm, cmap, label in (
        (delta_norm, DELTA_CMAP, r"$\delta^{(l)}_j$: unit fill"),
        (edge_norm, EDGE_CMAP, r"$\Theta^{(l)}_{ij}$: edge colour, width ∝ |Θ|"),
    ):
        bar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.6, pad=0.01, aspect=28)
        bar.set_label(label, fontsize=8.5)
        bar.ax.tick_params(labelsize=7.5)
        plain_ticks(bar.ax)


def plot_network(
    net: ThetaMLP,
    X,
    Y,
    *,
    example: int | None = None,
    max_units: int = MAX_UNITS,
    ax: Axes | None = None,
    path=None,
    title: str | None = None,
) -> NetworkPicture:
    r"""Draw the network as the lecture does, with the numbers of one backpropagation on (X, Y).

    * units by layer; every layer but the output has its bias unit a_0 = 1 (a square "+1", on top);
    * one edge per entry Θ^(l)_ij (j = 0: from the bias unit): colour = sign and size (diverging
      colour map, colour bar), width ∝ |Θ^(l)_ij|; Σ_l s_{l+1}(s_l + 1) edges in all;
    * in each unit a^(l)_j (top) and δ^(l)_j (bottom; the input layer has no δ); the fill is δ
      (second colour bar), the error that unit j is blamed for:
      δ^(L+1) = a^(L+1) − y,  δ^(l) = (Θ^(l)_{:,1:})ᵀ δ^(l+1) .* g'(z^(l)).

    Everything comes from :func:`lecturenn.teaching.backpropagate` (λ does not change a or δ).
    δ_i^(l) is example i's error, n·∂J/∂z_i^(l) (J the mean cost over the n rows).

    Args:
        net: a plain :class:`~lecturenn.ThetaMLP` (no batchnorm/dropout).
        X: (n, s_1) inputs; Y: targets as ``net.cost`` takes them (class indices or (n, K)).
        example: draw row ``example`` (0 ≤ example < n); None (default): the mean over the n rows of
            a_i^(l) and of each row's δ_i^(l) — the mean δ^(l+1) is the bias column of D^(l).
        max_units: the most units (bias not counted) a layer may have; the picture gets unreadable
            beyond ~16.
        ax: a matplotlib Axes to draw into (colour bars are added to its figure); None: a new figure.
        path: where to write the figure (parents created): PNG, or the format its suffix names
            (``.svg``, ``.pdf``, ...); None: not saved.
        title: replaces the first line of the title.

    Returns:
        :class:`NetworkPicture`: the figure and the a, δ and Θ drawn, by layer number.

    Raises:
        TypeError: ``net`` is not a ThetaMLP, ``example`` not an integer, ``ax`` not an Axes.
        ValueError: a layer with more than ``max_units`` units (names the layer), batchnorm/dropout,
            X or Y that do not fit the net or hold NaN/inf (``backpropagate``'s checks), ``example``
            out of range.
    """
    check_drawable(net, max_units)
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    a, delta, thetas, n = _values(net, X, Y, example)
    if ax is None:
        slots = max(max(net.sizes[:-1]) + 1, net.sizes[-1])  # units of the tallest layer, bias included
        fig = new_figure(2.1 * (net.num_layers + 1) + 2.4, SLOT_IN * (slots + TOP + BOTTOM) + 1.3)
        ax = fig.add_subplot()
    fig = ax.figure
    _draw(ax, net, a, delta, thetas)
    rows = "row" if n == 1 else "rows"
    what = (
        f"row X[{example}] of {n} (0-based)"
        if example is not None
        else f"mean over {n} {rows} (a, and each row's δ, averaged)"
    )
    head = title or f"backpropagation in ThetaMLP({net.sizes})"
    ax.set_title(f"{head}\n{what}", fontsize=10)
    saved = None
    if path is not None:
        saved = save(fig, path, release=False)
    return NetworkPicture(fig, a, delta, thetas, example, n, saved)
