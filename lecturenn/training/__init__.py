"""Training: the LightningModule for ThetaMLP and the plotting callback (no Hydra here)."""

from .module import TASK_HEADS, ThetaMLPModule
from .plots import PlotCallback

__all__ = ["TASK_HEADS", "PlotCallback", "ThetaMLPModule"]
