"""ThetaMLPClassifier: binary (one sigmoid output), multi-class (softmax) and multi-label (K sigmoids)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from torch import Tensor

from ._base import BaseThetaMLP
from ._docs import ATTRS_DOC, PARAMS_DOC
from ._engine import resolve_dtype

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

    def _head(self, n_outputs: int) -> str:
        return "softmax" if self._multiclass else "sigmoid"

    def _encode_targets(self, y, incremental, first_pass, classes=None):
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
        dtype = resolve_dtype(self.dtype)[1]
        name = type(self).__name__
        if first_pass:
            if multilabel:
                self.classes_ = np.arange(y.shape[1])
            elif incremental:  # the first partial_fit call: the classes come from `classes`
                self.classes_ = unique_labels(classes)
            else:
                self.classes_, inverse = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                what = "the data contains only one class" if classes is None else "`classes` holds one class"
                raise ValueError(f"{name} needs at least 2 classes, but {what}: {self.classes_[0]!r}")
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
        if not self._multiclass:
            return (inverse == 1).astype(dtype).reshape(-1, 1)  # 1 for classes_[1]
        Y = np.zeros((len(inverse), len(self.classes_)), dtype=dtype)
        Y[np.arange(len(inverse)), inverse] = 1  # one-hot rows
        return Y

    def _val_score(self, z: Tensor, Y: Tensor) -> Tensor:
        """Accuracy on held-out rows (subset accuracy for multi-label), on the device."""
        if self._multiclass:
            return (z.argmax(dim=1) == Y.argmax(dim=1)).double().mean()
        return ((z > 0) == (Y > 0.5)).all(dim=1).double().mean()

    def fit(self, X, y):
        """Fit the network to X and the class labels y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows (sparse input is densified).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multi-label classification.

        Returns
        -------
        self : ThetaMLPClassifier
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing from the current Θ and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels (or a 0/1 indicator matrix).
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
        return self._fit(X, y, incremental=True, classes=classes)

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
        z = self._logits(X)
        if self._multiclass:
            return torch.softmax(z, dim=1).numpy()
        p = torch.sigmoid(z)
        if self._multilabel:
            return p.numpy()
        return torch.cat([torch.sigmoid(-z), p], dim=1).numpy()

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed stably from the logits.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            log h_Θ(x) in the order of ``classes_``.
        """
        z = self._logits(X)
        if self._multiclass:
            return torch.log_softmax(z, dim=1).numpy()
        if self._multilabel:
            return F.logsigmoid(z).numpy()
        return torch.cat([F.logsigmoid(-z), F.logsigmoid(z)], dim=1).numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


ThetaMLPClassifier.__doc__ = ThetaMLPClassifier.__doc__.replace("{params}", PARAMS_DOC).replace(
    "{attrs}", ATTRS_DOC
)
ThetaMLPClassifier.__module__ = "lecturenn.estimators"
