"""Learning curves: one panel per metric family (loss, acc, mae, …), train / val / test over the epochs."""

from __future__ import annotations

import math
from pathlib import Path

from .canvas import grid_shape, new_figure, plain_ticks, save

__all__ = ["plot_curves"]

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
    plain_ticks(ax)
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
        fig = new_figure(5.0, 3.0)
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no metrics logged", ha="center", va="center", fontsize=14, color="0.4")
        ax.set_axis_off()
        fig.suptitle("learning curves")
        return save(fig, path)

    lr = families.pop(LR_FAMILY) if len(families) > 1 and LR_FAMILY in families else None
    rows, cols = (1, len(families)) if len(families) <= 3 else grid_shape(len(families))
    strip = LR_STRIP_HEIGHT if lr else 0.0
    fig = new_figure(4.6 * cols, 3.4 * rows + strip)
    grid = fig.add_gridspec(rows + bool(lr), cols, height_ratios=[3.4] * rows + ([strip] if lr else []))
    for i, (family, series) in enumerate(families.items()):
        _draw_panel(fig.add_subplot(grid[i // cols, i % cols]), family, series, test_label)
    if lr:
        _draw_panel(fig.add_subplot(grid[rows, :]), LR_FAMILY, lr, test_label)
    fig.suptitle("learning curves")
    return save(fig, path)


def _stage_rank(name: str) -> int:
    """train, val, test, then anything else."""
    stage, _ = _split_metric(name)
    return STAGES.index(stage) if stage in STAGES else len(STAGES)
