"""ThetaMLP ⇄ scikit-learn's ``MLPClassifier`` / ``MLPRegressor``.

Weights
-------
scikit-learn stores layer l as ``coefs_[l-1]`` (s_l, s_{l+1}) and ``intercepts_[l-1]`` (s_{l+1},)
and computes z^(l+1) = a^(l) @ coefs_[l-1] + intercepts_[l-1]. With the bias in column 0::

    Θ^(l) = [ intercepts_[l-1] | coefs_[l-1]ᵀ ]        (s_{l+1}, s_l + 1)

The names come from the registries (the entries' ``sklearn`` field, :mod:`lecturenn.activations`,
:mod:`lecturenn.heads`), so an entry registered with ``sklearn=...`` converts too; one without it
is refused by ``to_sklearn`` with a ``ValueError`` naming it:

=====================  ==================  =====================================================
scikit-learn           lecturenn           notes
=====================  ==================  =====================================================
activation="logistic"  hidden="sigmoid"
activation="tanh"      hidden="tanh"
activation="relu"      hidden="relu"
activation="identity"  hidden="identity"
(none)                 hidden="softplus"   ``to_sklearn`` raises ``ValueError``
out_activation_        output=
  "logistic"             "sigmoid"         binary (K = 1) and multi-label (K > 1) classifiers
  "softmax"              "softmax"         multi-class classifiers (K ≥ 3 classes)
  "identity"             "identity"        ``MLPRegressor(loss="squared_error")``
  "exp"                  "poisson"         ``MLPRegressor(loss="poisson")``
=====================  ==================  =====================================================

A regressor's ``loss`` follows from its ``out_activation_`` as scikit-learn sets it
(:data:`REGRESSOR_LOSS`), so ``to_sklearn`` of a net with the poisson head is an
``MLPRegressor(loss="poisson")``, whose warm-started ``fit`` then trains the Poisson deviance.

dtype is kept: a float64 fit gives a float64 ThetaMLP, a float32 fit (X as float32) a float32 one.
Predictions agree to round-off (≤ 1e-12 in float64): ``net(X)`` is ``est.predict_proba(X)`` for
multi-class and multi-label classifiers, ``est.predict_proba(X)[:, 1:]`` for binary ones (scikit-learn
returns [1 − p, p], the sigmoid head returns p), and ``est.predict(X)`` (a (n,) array when K = 1)
for regressors.

Cost
----
scikit-learn's ``alpha`` is the lecture's λ, with the same 1/(2n) (``loss += 0.5·alpha·ΣW²/n``, the
intercepts not penalised). So for a classifier fitted with ``solver="lbfgs"`` (whose ``loss_`` is
the objective at the final weights)::

    est.loss_ == net.cost(X, Y, lam=est.alpha)

with Y the labels as scikit-learn encodes them: binary — a 0/1 column, 1 for ``est.classes_[1]``;
multi-class — class indices into ``est.classes_`` (``np.searchsorted(est.classes_, y)``; one-hot
rows work as well); multi-label — the 0/1 indicator matrix. Verified on iris (multi-class, tanh)
and breast_cancer (binary, logistic): equal to the last bit (difference 0.0 in float64).

``MLPRegressor``'s squared loss is the *half mean over all n·K entries*,
loss_ = (1/(2nK)) Σ_i ‖y_i − ŷ_i‖² + (alpha/(2n)) ΣW², while the lecture's identity-head J has
(1/n) Σ_i ‖y_i − ŷ_i‖² + (λ/(2n)) ΣW². Multiplying loss_ by 2K gives J with λ = 2K·alpha::

    est.loss_ == net.cost(X, Y, lam=2 * K * est.alpha) / (2 * K)        (K = est.n_outputs_)

Verified on diabetes (standardised y) for K = 1 and K = 2 to float64 round-off (|Δ| ≈ 6e-17).
(Mini-batch solvers report a running average of per-batch losses instead, so compare with lbfgs.)

``MLPRegressor(loss="poisson")``'s loss is the *half Poisson deviance*, loss_ = (1/n) Σ_ik
(y_ik log(y_ik/ŷ_ik) − y_ik + ŷ_ik) + (alpha/(2n)) ΣW², and the poisson head's J drops only the
constant of the targets, so λ = alpha::

    est.loss_ == net.cost(X, Y, lam=est.alpha) + (xlogy(Y, Y) - Y).sum() / n      (scipy's xlogy)

(tests/test_poisson_head.py; ``ThetaMLPRegressor(loss="poisson")`` reports this same ``loss_``).

``to_sklearn`` returns an estimator that *looks fitted*: ``predict``, ``predict_proba``, ``score``
work, ``n_iter_ = 0``, and with ``warm_start=True`` a later ``fit`` continues from Θ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..activations import ACTIVATIONS
from ..heads import HEADS
from ..network import ThetaMLP

__all__ = ["from_sklearn", "to_sklearn"]


#: scikit-learn's MLPRegressor: ``out_activation_`` -> the ``loss`` that gives it (the inverse of
#: ``BaseMultilayerPerceptron._initialize``: loss="poisson" -> "exp", otherwise "identity").
REGRESSOR_LOSS = {"identity": "squared_error", "exp": "poisson"}


def _sklearn_names(registry) -> list[str]:
    return sorted({e.sklearn for e in registry.values() if e.sklearn})  # aliases share a name


def from_sklearn(est, backprop: str = "manual") -> ThetaMLP:
    """A fitted ``MLPClassifier`` / ``MLPRegressor`` as a ThetaMLP with the same weights and dtype.

    Θ^(l) = [intercepts_[l-1] | coefs_[l-1]ᵀ]; hidden activation and output head are mapped as in
    the module docstring. Raises ``NotFittedError`` for an unfitted estimator, ``TypeError`` for
    anything that is not a scikit-learn MLP, ``ValueError`` for an output activation ThetaMLP has
    no head for.
    """
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(est, (MLPClassifier, MLPRegressor)):
        raise TypeError(f"from_sklearn expects an MLPClassifier or MLPRegressor, got {type(est).__name__}")
    check_is_fitted(est, ["coefs_", "intercepts_", "out_activation_"])
    act = ACTIVATIONS.find("sklearn", est.activation)
    if act is None:
        raise ValueError(
            f"scikit-learn activation {est.activation!r} has no lecturenn activation "
            f"(registered: {_sklearn_names(ACTIVATIONS)})"
        )
    head = HEADS.find("sklearn", est.out_activation_)
    if head is None:
        raise ValueError(
            f"out_activation_ = {est.out_activation_!r} has no lecturenn output head "
            f"(supported: {_sklearn_names(HEADS)})"
        )
    thetas = [
        torch.from_numpy(np.ascontiguousarray(np.column_stack([b, W.T])))
        for W, b in zip(est.coefs_, est.intercepts_)
    ]
    return ThetaMLP.from_thetas(thetas, act.name, head.name, backprop)


def to_sklearn(net: ThetaMLP, classes: Sequence | None = None):
    """The ThetaMLP as a fitted-looking ``MLPClassifier`` (a head serving classification tasks:
    sigmoid, softmax) or ``MLPRegressor`` (a head serving regression: identity, or poisson as
    ``loss="poisson"``) whose ``predict`` /
    ``predict_proba`` match ``net`` to round-off.

    Args:
        net: a ThetaMLP without batch normalisation (dropout is a no-op at prediction time and is
            dropped). An activation or head without a scikit-learn name (softplus, or one registered
            without ``sklearn=``) has no scikit-learn equivalent (``ValueError`` naming it).
        classes: class labels in output order. Default ``range(K)``; for the binary sigmoid head
            (K = 1) ``[0, 1]``, the output unit being the probability of ``classes[1]``. Must be
            ``None`` for regressors. ``classes_`` keeps the order given (scikit-learn's own fits
            sort it).

    The estimator's hyper-parameters (``hidden_layer_sizes``, ``activation``) describe ``net``; the
    remaining ones keep scikit-learn's defaults (set ``alpha`` = λ, ``solver``, … with
    ``set_params`` before a ``warm_start`` fit).
    """
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import LabelBinarizer

    if not isinstance(net, ThetaMLP):
        raise TypeError(f"to_sklearn expects a ThetaMLP, got {type(net).__name__}")
    if net.norms is not None:
        raise ValueError(
            "to_sklearn: this net uses batch normalisation, which scikit-learn's MLP does not have"
        )
    checks = [(net.activation, ACTIVATIONS, "hidden activation", "activation")]
    checks.append((net.head, HEADS, "output head", "out_activation_"))
    for entry, registry, role, attribute in checks:
        if entry.sklearn is None:
            raise ValueError(
                f"to_sklearn: the {role} {entry.name!r} has no scikit-learn equivalent "
                f"(MLPClassifier/MLPRegressor {attribute} is one of {_sklearn_names(registry)})"
            )
    head, K = net.head, net.sizes[-1]
    params = {"hidden_layer_sizes": tuple(net.sizes[1:-1]), "activation": net.activation.sklearn}
    if "regression" in head.tasks:
        if classes is not None:
            raise ValueError(f"classes must be None for a regression net ({head.name} head)")
        if head.sklearn not in REGRESSOR_LOSS:
            raise ValueError(
                f"to_sklearn: the regression head {head.name!r} has scikit-learn name {head.sklearn!r}, but "
                f"an MLPRegressor's out_activation_ is one of {sorted(REGRESSOR_LOSS)} (its loss: "
                f"{REGRESSOR_LOSS}); register the head with one of those or sklearn=None"
            )
        est = MLPRegressor(**params, loss=REGRESSOR_LOSS[head.sklearn])
    elif head.tasks:
        est = MLPClassifier(**params)
        n_classes = 2 if K == 1 else K  # one output unit: the probability of classes[1]
        labels = np.arange(n_classes) if classes is None else np.asarray(classes)
        if labels.ndim != 1 or len(labels) != n_classes:
            kind = "binary (K = 1 output)" if K == 1 else f"K = {K} outputs"
            raise ValueError(
                f"classes must be a list of {n_classes} labels for this {kind} net, got {classes!r}"
            )
        if len(np.unique(labels)) != n_classes:
            raise ValueError(f"classes must be distinct, got {classes!r}")
        binarizer = LabelBinarizer()
        if "multilabel" in head.tasks and K > 1:  # indicator columns, sklearn's classes_ = range(K)
            binarizer.fit(np.eye(K, dtype=int))
            binarizer.classes_ = labels
        else:
            # fit on the labels in output order, then restore that order (fit sorts them)
            binarizer.fit(labels)
            binarizer.classes_ = labels
        est._label_binarizer = binarizer
        est.classes_ = labels
    else:
        raise ValueError(
            f"to_sklearn: the output head {head.name!r} serves no task, so it is neither a classifier's "
            "nor a regressor's output (register it with tasks=...)"
        )
    coefs, intercepts = [], []
    for theta in net.thetas:
        t = theta.detach().cpu().numpy()
        coefs.append(np.ascontiguousarray(t[:, 1:].T))
        intercepts.append(np.ascontiguousarray(t[:, 0]))
    est.coefs_ = coefs
    est.intercepts_ = intercepts
    est.n_features_in_ = net.sizes[0]
    est.n_outputs_ = K
    est.n_layers_ = len(net.sizes)
    est.out_activation_ = head.sklearn
    # what fit() leaves behind, so that score() and a warm_start fit work
    est.n_iter_ = 0
    est.t_ = 0
    est.loss_curve_ = []
    est.best_loss_ = np.inf
    est.validation_scores_ = None
    est.best_validation_score_ = None
    est._no_improvement_count = 0
    est._best_coefs = [c.copy() for c in coefs]
    est._best_intercepts = [b.copy() for b in intercepts]
    return est
