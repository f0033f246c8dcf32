"""Issue 12 §7: the figures live in lecturenn.training.figures (one module each), the callback only
orchestrates; a figure drawn after trainer.test is one RunFigure entry; the old import paths still work."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import lecturenn.training.figures as figures
import lecturenn.training.plots as plots

PACKAGE = Path(figures.__file__).parent


def test_every_figure_module_and_the_callback_stay_small():
    files = [*PACKAGE.glob("*.py"), Path(plots.__file__)]
    assert len(files) >= 6
    for path in files:
        assert len(path.read_text().splitlines()) < 400, path.name


def test_the_figure_functions_are_importable_from_both_places():
    from lecturenn.training import PlotCallback
    from lecturenn.training.figures import plot_curves

    assert PlotCallback is plots.PlotCallback
    for name in figures.__all__:
        assert getattr(plots, name) is getattr(figures, name), name
    assert plots.plot_curves is plot_curves


def test_the_callback_module_draws_nothing_itself():
    # no matplotlib import in the callback: every figure is drawn in lecturenn.training.figures
    assert "matplotlib" not in Path(plots.__file__).read_text()


def _callback_run(tmp_path, monkeypatch, extra):
    """on_test_end of a PlotCallback on a fake trainer / module, with TEST_FIGURES + ``extra``."""
    monkeypatch.setattr(plots, "TEST_FIGURES", (*plots.TEST_FIGURES, *extra))
    callback = plots.PlotCallback(out_dir=str(tmp_path))
    trainer = SimpleNamespace(
        is_global_zero=True,
        sanity_checking=False,
        ckpt_path=None,
        current_epoch=0,
        callback_metrics={"test/loss": torch.tensor(0.5)},
        datamodule=SimpleNamespace(info=None),
        checkpoint_callbacks=[],
    )
    module = SimpleNamespace(task="regression")  # offers none of the built-in figures' inputs
    callback.on_test_end(trainer, module)
    return callback


def test_a_registered_figure_is_drawn_after_test(tmp_path, monkeypatch):
    calls = []

    def draw(pl_module, datamodule, path):
        calls.append((pl_module.task, path.name))
        path.write_bytes(b"png")
        return path

    offered = plots.RunFigure("mine.png", lambda m, dm: True, draw)
    not_offered = plots.RunFigure("other.png", lambda m, dm: False, draw)
    callback = _callback_run(tmp_path, monkeypatch, [offered, not_offered])
    assert calls == [("regression", "mine.png")]
    assert [p.name for p in callback.written] == ["curves.png", "mine.png"]
    assert callback.history["test/loss"] == [(0, 0.5)]


def test_a_registered_figure_that_fails_only_warns(tmp_path, monkeypatch):
    def draw(pl_module, datamodule, path):
        raise RuntimeError("boom")

    with pytest.warns(UserWarning, match=r"could not write broken.png: RuntimeError: boom"):
        callback = _callback_run(
            tmp_path, monkeypatch, [plots.RunFigure("broken.png", lambda m, dm: 1, draw)]
        )
    assert [p.name for p in callback.written] == ["curves.png"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (0.25, 0.25),
        (np.float32(0.5), 0.5),
        (np.int64(2), 2.0),
        (torch.tensor(1.5), 1.5),
        (torch.tensor([2.5]), 2.5),
        (np.array([4.0]), 4.0),
        (True, None),  # a bool is no metric
        (torch.tensor(True), None),
        (torch.tensor([1.0, 2.0]), None),
        ("0.5", None),
    ],
)
def test_scalar_reads_numbers_not_bools(value, expected):
    assert plots._scalar(value) == expected


def test_scalar_keeps_a_diverged_point():
    assert math.isnan(plots._scalar(float("nan")))
    assert plots._scalar(torch.tensor(float("inf"))) == math.inf


def test_every_n_epochs_is_a_count():
    with pytest.raises(ValueError, match=r"every_n_epochs must be an integer >= 0, got -1"):
        plots.PlotCallback(every_n_epochs=-1)
    for bad in (True, 1.5, "2"):
        with pytest.raises(TypeError, match=r"every_n_epochs must be an integer >= 0"):
            plots.PlotCallback(every_n_epochs=bad)
    assert plots.PlotCallback(every_n_epochs=np.int64(2)).every_n_epochs == 2
