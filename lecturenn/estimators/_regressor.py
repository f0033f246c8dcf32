"""ThetaMLPRegressor: one output per target; the identity head and the lecture's squared error, or
(``loss="poisson"``) the poisson head h = e^z and the Poisson deviance."""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import xlogy
from sklearn.base import RegressorMixin
from sklearn.utils.metaestimators import available_if
from torch import Tensor

from ..heads import HEADS
from ._base import BaseThetaMLP
from ._docs import ATTRS_DOC, PARAMS_DOC

__all__ = ["ThetaMLPRegressor"]

#: ``loss`` -> the output head it trains (scikit-learn's ``out_activation_``: "identity", "exp").
LOSS_HEADS = {"squared_error": "identity", "poisson": "poisson"}


class ThetaMLPRegressor(RegressorMixin, BaseThetaMLP):
    """The lecture's multilayer perceptron as a scikit-learn regressor.

    One output per target column. ``loss="squared_error"`` (default): an identity head and the
    lecture's squared-error cost J(Θ) = (1/N) Σ_i ‖y_i − ŷ_i‖² + λ/(2N) Σ Θ_{:,1:}² (no ½, so
    δ^(L+1) = 2(a − y)); ``loss_`` is this J (``MLPRegressor``'s ``loss_`` is half the mean over all
    N·K entries). ``loss="poisson"``: the poisson head ŷ = e^z (``out_activation_ = "exp"``) for
    targets y ≥ 0 (counts, rates) and the Poisson negative log-likelihood
    J(Θ) = (1/N) Σ_i Σ_k (ŷ_ik − y_ik log ŷ_ik) + λ/(2N) Σ Θ_{:,1:}² (log y! dropped; δ^(L+1) = a − y);
    ``loss_`` is scikit-learn's half Poisson deviance
    (1/N) Σ_i Σ_k (y_ik log(y_ik/ŷ_ik) − y_ik + ŷ_ik) + λ/(2N) ΣΘ² = J(Θ) + (1/N) Σ_ik (y log y − y),
    which is ``MLPRegressor(loss="poisson")``'s ``loss_`` for the same weights (``alpha`` = λ, as for
    the classifiers; with sample weights every 1/N is 1/Σw and every sum weighted). Targets are used
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

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        loss="squared_error",
        solver="adam",
        alpha=1e-4,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=1e-3,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        backprop="manual",
        device="auto",
        dtype="float32",
        cuda_graph=False,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            backprop=backprop,
            device=device,
            dtype=dtype,
            cuda_graph=cuda_graph,
        )
        self.loss = loss

    def _validate_params(self, device: bool = True) -> None:
        if isinstance(self.hidden_layer_sizes, str) and self.hidden_layer_sizes in LOSS_HEADS:
            raise ValueError(  # MLPRegressor("poisson", ...): its first positional parameter is loss
                f"hidden_layer_sizes must be an int or a sequence of ints, got {self.hidden_layer_sizes!r}; "
                f"pass loss={self.hidden_layer_sizes!r} by keyword (ThetaMLPRegressor's first parameter "
                "is hidden_layer_sizes, MLPRegressor's is loss)"
            )
        super()._validate_params(device)
        if not (isinstance(self.loss, str) and self.loss in LOSS_HEADS):
            raise ValueError(f"loss must be one of {list(LOSS_HEADS)}, got {self.loss!r}")

    def _head(self, n_outputs: int) -> str:
        return LOSS_HEADS[self.loss]

    def _encode_targets(self, y, incremental, first_pass, classes, dtype):
        if self.loss == "poisson" and (np.asarray(y) < 0).any():  # as given (-1e-300 is -0.0 in float32)
            # scikit-learn's message
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
        Y = np.asarray(y, dtype=dtype)
        return Y.reshape(-1, 1) if Y.ndim == 1 else Y

    def _loss_offset(self, Y: np.ndarray, w: np.ndarray | None) -> float:
        """``loss="poisson"``: (1/W) Σ_i w_i Σ_k (y_ik log y_ik − y_ik) (0 log 0 = 0), the constant
        that turns J's Σ (ŷ − y log ŷ) into scikit-learn's half deviance Σ (y log(y/ŷ) − y + ŷ)."""
        if self.loss != "poisson":
            return 0.0
        Y = np.asarray(Y, dtype=np.float64)
        per_row = (xlogy(Y, Y) - Y).sum(axis=1)  # (n,)
        return float(np.average(per_row, weights=w))

    def _val_score(self, z: Tensor, Y: Tensor, weight: Tensor | None = None) -> Tensor:
        """R² of the predictions h(z) on held-out rows (uniform average over outputs; weighted as
        scikit-learn's ``r2_score(sample_weight=)`` when ``weight`` is given), on the device."""
        z = HEADS[self._head(z.shape[1])].h(z)  # ŷ: z itself for the identity head, e^z for poisson
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
            Real targets; ``loss="poisson"``: y ≥ 0 (``ValueError`` otherwise, nothing trained).
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
            Real targets; ``loss="poisson"``: y ≥ 0.
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
            Predictions ŷ = h(z^(L+1)) — z itself, or e^z for ``loss="poisson"`` — (float32 for
            float32 X, as in scikit-learn, else float64); 1-D for a single target.
        """
        z, dtype = self._logits_and_dtype(X)
        z = self.net_.head.h(z).numpy().astype(dtype, copy=False)
        return z.ravel() if z.shape[1] == 1 else z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


_LOSS_DOC = """    loss : {"squared_error", "poisson"}, default="squared_error"
        The cost and output head, as above. Keyword-only here: ``MLPRegressor`` takes it as its
        first positional parameter, but ``ThetaMLPRegressor((32,))`` keeps meaning hidden layers.
"""
ThetaMLPRegressor.__doc__ = ThetaMLPRegressor.__doc__.replace(
    "{params}", PARAMS_DOC.replace("    solver :", _LOSS_DOC + "    solver :", 1)
).replace("{attrs}", ATTRS_DOC)
ThetaMLPRegressor.__module__ = "lecturenn.estimators"
