"""ThetaMLPRegressor: an identity head, one output per target, the lecture's squared error."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.metaestimators import available_if
from torch import Tensor

from ._base import BaseThetaMLP
from ._docs import ATTRS_DOC, PARAMS_DOC

__all__ = ["ThetaMLPRegressor"]


class ThetaMLPRegressor(RegressorMixin, BaseThetaMLP):
    """The lecture's multilayer perceptron as a scikit-learn regressor.

    An identity head with one output per target column and the lecture's squared-error cost
    J(Θ) = (1/N) Σ_i ‖y_i − ŷ_i‖² + λ/(2N) Σ Θ_{:,1:}² (no ½, so δ^(L+1) = 2(a − y)); ``loss_`` is
    this J (``MLPRegressor``'s ``loss_`` is half the mean over all N·K entries). Targets are used
    as given (not standardised), as in scikit-learn.
    {params}
    Attributes
    ----------
    {attrs}
    See Also
    --------
    ThetaMLPClassifier : the same network with a sigmoid or softmax head.
    sklearn.neural_network.MLPRegressor : the estimator whose interface this one follows.

    Examples
    --------
    >>> import numpy as np
    >>> from lecturenn.estimators import ThetaMLPRegressor
    >>> X = np.linspace(-3, 3, 200).reshape(-1, 1)
    >>> reg = ThetaMLPRegressor((32,), activation="tanh", solver="lbfgs", random_state=0)
    >>> reg.fit(X, np.sin(X).ravel()).score(X, np.sin(X).ravel()) > 0.99
    True
    """

    def _head(self, n_outputs: int) -> str:
        return "identity"

    def _encode_targets(self, y, incremental, first_pass, classes, dtype):
        Y = np.asarray(y, dtype=dtype)
        return Y.reshape(-1, 1) if Y.ndim == 1 else Y

    def _val_score(self, z: Tensor, Y: Tensor, weight: Tensor | None = None) -> Tensor:
        """R² on held-out rows (uniform average over outputs; weighted as scikit-learn's
        ``r2_score(sample_weight=)`` when ``weight`` is given), on the device."""
        if weight is None:
            ss_res = (Y - z).pow(2).sum(dim=0, dtype=torch.float64)
            ss_tot = (Y - Y.mean(dim=0)).pow(2).sum(dim=0, dtype=torch.float64)
        else:
            w, Y = weight.to(torch.float64)[:, None], Y.double()
            mean = (w * Y).sum(dim=0) / w.sum()
            ss_res = (w * (Y - z.double()).pow(2)).sum(dim=0)
            ss_tot = (w * (Y - mean).pow(2)).sum(dim=0)
        r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300), (ss_res == 0).double())
        return r2.mean()

    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and the targets y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows (sparse input is densified).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Real targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights w_i ≥ 0 with Σw > 0: J = (1/Σw) Σ_i w_i cost_i + λ/(2Σw) ΣΘ², scikit-learn's
            weighted loss (integer weights act as repeated rows).

        Returns
        -------
        self : ThetaMLPRegressor
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current Θ and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Real targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights w_i ≥ 0 with Σw > 0: J = (1/Σw) Σ_i w_i cost_i + λ/(2Σw) ΣΘ², scikit-learn's
            weighted loss (integer weights act as repeated rows).

        Returns
        -------
        self : ThetaMLPRegressor
            The updated estimator.
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X):
        """Predict targets h_Θ(x).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictions (float32 for float32 X, as in scikit-learn, else float64); 1-D for a
            single target.
        """
        z, dtype = self._logits_and_dtype(X)
        z = z.numpy().astype(dtype, copy=False)
        return z.ravel() if z.shape[1] == 1 else z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


ThetaMLPRegressor.__doc__ = ThetaMLPRegressor.__doc__.replace("{params}", PARAMS_DOC).replace(
    "{attrs}", ATTRS_DOC
)
ThetaMLPRegressor.__module__ = "lecturenn.estimators"
