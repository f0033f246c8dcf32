"""The learning-rate range test's curve: smoothed training loss against the rate, the suggestion marked."""

from __future__ import annotations

import math
from pathlib import Path

from .canvas import new_figure, plain_ticks, save

__all__ = ["plot_lr_find"]

SKIP_BEGIN, SKIP_END = 10, 1  # the points Lightning's suggestion ignores (_LRFinder.suggestion)


def plot_lr_find(
    lrs, losses, suggestion: float, path, mode: str = "exponential", stopped_early: bool = False
) -> Path:
    """Loss (smoothed, as recorded by Lightning's finder) against the learning rate — a log x axis for
    an exponential sweep — with the suggested rate marked by a red dot and a dashed line. The points
    Lightning's suggestion skips (the first 10, the last) are drawn pale; non-finite losses are left out.

    Args:
        lrs, losses: equal-length sequences, one entry per step of the test.
        suggestion: the suggested rate (one of ``lrs``).
        path: the PNG to write.
        mode: ``"exponential"`` (log x axis) or ``"linear"``.
        stopped_early: say in the title that the loss diverged before the last step.
    """
    points = [(float(x), float(y)) for x, y in zip(lrs, losses)]
    n = len(points)
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    used = [(k, x, y) for k, (x, y) in enumerate(points) if math.isfinite(y)]
    inside = [(x, y) for k, x, y in used if SKIP_BEGIN <= k < n - SKIP_END]
    ax.plot([x for _, x, _ in used], [y for _, _, y in used], color="tab:blue", alpha=0.35, linewidth=1.2)
    if inside:
        ax.plot(*zip(*inside), color="tab:blue", linewidth=1.8, label="smoothed loss")
    at = next((y for x, y in points if x == suggestion), None)
    ax.axvline(suggestion, color="tab:red", linestyle="--", linewidth=1)
    if at is not None and math.isfinite(at):
        label = f"suggested lr = {suggestion:.3g}"
        ax.plot([suggestion], [at], "o", color="tab:red", markersize=8, label=label)
    if mode == "exponential":
        ax.set_xscale("log")
    ax.set_xlabel("learning rate" + (" (log scale)" if mode == "exponential" else ""))
    ax.set_ylabel("training loss J (smoothed)")
    end = f"; loss diverged, stopped after {n} steps" if stopped_early else f"; {n} steps"
    ax.set_title(f"learning-rate range test ({mode}{end})", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    plain_ticks(ax)
    return save(fig, path)
