r"""λ, the regularisation parameter: what it means, how a mini-batch is charged, one validator.

The lecture's regularised cost over the N training rows, with optional sample weights w_i ≥ 0
(W = Σ_i w_i; all w_i = 1 gives W = N and the lecture's J exactly):

    J(Θ) = (1/W) Σ_i w_i cost(h_Θ(x_i), y_i)  +  λ/(2W) Σ_l Σ_{i, j≥1} (Θ^(l)_ij)²

The bias column j = 0 is never regularised. With weights this is scikit-learn's weighted MLP loss
(``MLPClassifier.fit(X, y, sample_weight=w).loss_`` with ``alpha = λ``).

``net.cost(X, Y, lam)`` evaluates this J on the rows it is given, so λ there is "λ for this batch".
Training on mini-batches charges a batch B of weight W_B = Σ_{i∈B} w_i (its row count without
weights) the share :func:`batch_lam` = λ·W_B/W of the full penalty: its penalty term is then
λ_B/(2W_B) ΣΘ² = λ/(2W) ΣΘ², the same for every batch, so the mini-batch gradient is an unbiased
estimate of the full-batch D^(l) = Δ^(l)/W + (λ/W)[0 | Θ^(l)_{:,1:}] and λ means the same for any
batch size. This is the one place that rule lives; the LightningModule and the estimators call it.
"""

from __future__ import annotations

from .validation import check_number

__all__ = ["check_lam", "batch_lam"]


def check_lam(lam, name: str = "lam (λ)") -> float:
    """λ as a float: a finite real number >= 0 (a 1-element tensor counts); TypeError/ValueError naming
    ``name`` otherwise. The one validator of λ at every public boundary."""
    return check_number(lam, name, low=0)


def batch_lam(lam: float, batch_weight: float, total_weight: float) -> float:
    """λ_B = λ · W_B / W: the λ to pass to ``net.cost`` for a batch of weight ``batch_weight`` (its
    rows, or Σ w over them) out of ``total_weight`` (the training rows N, or Σ w over them), so that
    each batch carries the penalty λ/(2W) ΣΘ² of the full cost (module docstring). A batch that is the
    whole training set gets λ itself."""
    lam = check_lam(lam)
    total_weight = check_number(total_weight, "total_weight (W, the training set's weight)", low=0)
    batch_weight = check_number(batch_weight, "batch_weight (W_B)", low=0)
    if total_weight == 0:
        raise ValueError("total_weight (W, the training set's weight) must be > 0, got 0")
    return lam * batch_weight / total_weight
