"""ThetaMLPClassifier: binary (one sigmoid output), multi-class (softmax) and multi-label (K sigmoids)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from torch import Tensor

from ._base import BaseThetaMLP, _sample_weight
from ._docs import ATTRS_DOC, PARAMS_DOC

__all__ = ["ThetaMLPClassifier"]


class ThetaMLPClassifier(ClassifierMixin, BaseThetaMLP):
    """The lecture's multilayer perceptron as a scikit-learn classifier.

    Binary targets train one sigmoid output (K = 1), multi-class targets a softmax head with one
    output per class, and a 2-D 0/1 indicator matrix (multi-label) K sigmoid outputs; the cost is
    the cross-entropy J(Θ) with the lecture's regularisation (see ``alpha``).
    {params}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted (for multi-label targets: the label indices 0..K-1).
    {attrs}
    See Also
    --------
    ThetaMLPRegressor : the same network with an identity head and the squared error.
    sklearn.neural_network.MLPClassifier : the estimator whose interface this one follows.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from lecturenn.estimators import ThetaMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = ThetaMLPClassifier((16,), solver="lbfgs", random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
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
        class_weight=None,
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
        self.class_weight = class_weight

    def _head(self, n_outputs: int) -> str:
        return "softmax" if self._multiclass else "sigmoid"

    def _encode_targets(self, y, incremental, first_pass, classes, dtype):
        """Targets as (n, K) floats for the head: a 0/1 column (binary), one-hot rows (multi-class)
        or the indicator matrix itself (multi-label); sets ``classes_`` on a first fit."""
        kind = type_of_target(y, input_name="y")
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            check_classification_targets(y)  # scikit-learn's "Unknown label type" for continuous y
            raise ValueError(
                f"{type(self).__name__} supports binary, multi-class and multi-label (0/1 indicator) "
                f"targets, got {kind!r}"
            )
        multilabel = kind == "multilabel-indicator"
        name = type(self).__name__
        if first_pass:
            if multilabel:
                self.classes_ = np.arange(y.shape[1])
            elif incremental:  # the first partial_fit call: the classes come from `classes`
                self.classes_ = unique_labels(classes)
            else:
                self.classes_, inverse = np.unique(y, return_inverse=True)
            self._multilabel = multilabel
            self._multiclass = not multilabel and len(self.classes_) > 2
        elif multilabel != self._multilabel:
            fitted = "multi-label" if self._multilabel else "single-label"
            raise ValueError(f"{name} was fitted on {fitted} targets, but y is {kind!r}")
        if multilabel:
            if y.shape[1] != len(self.classes_):
                raise ValueError(f"y has {y.shape[1]} labels (columns) but {name} has {len(self.classes_)}")
            return (y.toarray() if sp.issparse(y) else np.asarray(y)).astype(dtype)
        if not first_pass or incremental:
            found = unique_labels(y)
            if self.warm_start and not incremental:
                if set(found) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous "
                        f"call to fit. Previously got {self.classes_}, `y` has {found}"
                    )
            elif len(np.setdiff1d(found, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                    f"'y' has {found}."
                )
            inverse = np.searchsorted(self.classes_, y)
        if not self._multiclass:  # 1 for classes_[1]; a single class: all 0 (scikit-learn's LabelBinarizer)
            return (inverse == 1).astype(dtype).reshape(-1, 1)
        Y = np.zeros((len(inverse), len(self.classes_)), dtype=dtype)
        Y[np.arange(len(inverse)), inverse] = 1  # one-hot rows
        return Y

    def _row_weights(self, y, sample_weight, incremental: bool):
        """``sample_weight`` times ``class_weight``'s weight of each row's class (scikit-learn's
        ``compute_sample_weight``: "balanced" gives class c the weight n / (n_classes · n_c))."""
        w = _sample_weight(sample_weight, len(y))
        if self.class_weight is None:
            return w
        if incremental and isinstance(self.class_weight, str):
            raise ValueError(
                f"class_weight={self.class_weight!r} is computed from the whole training set, so "
                "partial_fit cannot use it; pass a dict {class: weight} instead"
            )
        if not isinstance(self.class_weight, (dict, str)) or (
            isinstance(self.class_weight, str) and self.class_weight != "balanced"
        ):
            raise ValueError(
                "class_weight must be None, 'balanced' or a dict {class: weight}, "
                f"got {self.class_weight!r}"
            )
        cw = compute_sample_weight(self.class_weight, y)
        return cw if w is None else w * cw

    def _val_score(self, z: Tensor, Y: Tensor, weight: Tensor | None = None) -> Tensor:
        """Accuracy on held-out rows (subset accuracy for multi-label), weighted by ``weight``
        when given (scikit-learn's ``accuracy_score(sample_weight=)``), on the device."""
        if self._multiclass:
            right = (z.argmax(dim=1) == Y.argmax(dim=1)).double()
        elif len(self.classes_) == 1:  # predict() always says the one class
            right = torch.ones(len(z), dtype=torch.float64, device=z.device)
        else:
            right = ((z > 0) == (Y > 0.5)).all(dim=1).double()
        return right.mean() if weight is None else (right * weight).sum() / weight.sum()

    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and the class labels y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows (sparse input is densified).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multi-label classification.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights w_i ≥ 0 with Σw > 0: J = (1/Σw) Σ_i w_i cost_i + λ/(2Σw) ΣΘ², scikit-learn's
            weighted loss (integer weights act as repeated rows); multiplied by ``class_weight``.

        Returns
        -------
        self : ThetaMLPClassifier
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current Θ and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels (or a 0/1 indicator matrix).
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, as in :meth:`fit`.
        classes : array-like of shape (n_classes,), default=None
            Every class that can occur; required on the first call (not for multi-label y).

        Returns
        -------
        self : ThetaMLPClassifier
            The updated estimator.
        """
        first = not hasattr(self, "classes_") or not hasattr(self, "net_")
        if first and classes is None and type_of_target(y) != "multilabel-indicator":
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if not first and classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(
                f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                f"was: {self.classes_!r}"
            )
        if first:
            for name in ("classes_", "net_"):
                self.__dict__.pop(name, None)
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Predicted classes (a 0/1 indicator matrix for multi-label classifiers).
        """
        z = self._logits(X)
        if self._multiclass:
            return self.classes_[z.argmax(dim=1).numpy()]
        if self._multilabel:
            return (z > 0).numpy().astype(int)
        if len(self.classes_) == 1:  # trained on a single class (as scikit-learn, which allows it)
            return np.repeat(self.classes_, len(z))
        return self.classes_[(z[:, 0] > 0).long().numpy()]

    def predict_proba(self, X):
        """Class probabilities h_Θ(x).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``: softmax rows for multi-class, [1 − p, p]
            for binary, one independent sigmoid per label for multi-label.
        """
        z, dtype = self._logits_and_dtype(X)
        return self._proba(z).numpy().astype(dtype, copy=False)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`: ``log(predict_proba(X))`` wherever that probability
        is > 0 (scikit-learn's definition, so the two stay consistent even where a probability
        rounds to 1), and the log-softmax / log-sigmoid of the logits where it underflows to 0
        (finite, where the log of the rounded probability would be −inf).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            log h_Θ(x) in the order of ``classes_``.
        """
        z, dtype = self._logits_and_dtype(X)
        proba = self._proba(z).numpy().astype(dtype, copy=False)  # predict_proba's values
        if self._multiclass:
            stable = torch.log_softmax(z, dim=1)
        elif self._multilabel:
            stable = F.logsigmoid(z)
        else:
            stable = torch.cat([F.logsigmoid(-z), F.logsigmoid(z)], dim=1)
        with np.errstate(divide="ignore"):  # log(0): replaced by the finite stable value
            return np.where(proba > 0, np.log(proba), stable.numpy().astype(dtype, copy=False))

    def _proba(self, z: Tensor) -> Tensor:
        """h_Θ from the logits z (float64): see :meth:`predict_proba`."""
        if self._multiclass:
            return torch.softmax(z, dim=1)
        p = torch.sigmoid(z)
        if self._multilabel:
            return p
        return torch.cat([torch.sigmoid(-z), p], dim=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


ThetaMLPClassifier.__doc__ = ThetaMLPClassifier.__doc__.replace("{params}", PARAMS_DOC).replace(
    "{attrs}", ATTRS_DOC
)
ThetaMLPClassifier.__module__ = "lecturenn.estimators"
