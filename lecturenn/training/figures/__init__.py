"""The figures of a training run, one module each; every function writes one figure and returns its Path
(PNG, or the format the path's suffix names: .svg, .pdf, ...).

* :mod:`.curves` — learning curves (``plot_curves``)
* :mod:`.boundary` — decision boundary / regression surface over a 2-D input (``plot_decision_boundary``)
* :mod:`.confusion` — confusion matrix (``confusion_matrix``, ``plot_confusion_matrix``)
* :mod:`.theta_images` — the rows of Θ^(1) as images (``plot_theta_images``)
* :mod:`.lr_find` — loss against learning rate from the range test (``plot_lr_find``, ``tuner=lr_find``)
* :mod:`.network` — the network with Θ, a and δ from ``backpropagate`` (``plot_network``, ``ln.plot_network``)
* :mod:`.canvas` — what they share (a pyplot-free Agg figure, PNG saving, class colours, tick labels)

A new figure: a module here with a ``plot_*(…, path) -> Path`` function, exported below, and — to
draw it in every run — one entry in ``lecturenn.training.plots.TEST_FIGURES``.
"""

from .boundary import plot_decision_boundary
from .canvas import DPI
from .confusion import confusion_matrix, plot_confusion_matrix
from .curves import plot_curves
from .lr_find import plot_lr_find
from .network import NetworkPicture, plot_network
from .theta_images import plot_theta_images

__all__ = [
    "DPI",
    "NetworkPicture",
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_decision_boundary",
    "plot_lr_find",
    "plot_network",
    "plot_theta_images",
]
