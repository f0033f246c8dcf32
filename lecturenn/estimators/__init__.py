"""scikit-learn estimators around :class:`~lecturenn.network.ThetaMLP`.

:class:`ThetaMLPClassifier` and :class:`ThetaMLPRegressor` take ``MLPClassifier`` /
``MLPRegressor``'s parameters and behave like them in pipelines, grid searches and pickles, but
train the lecture's network — Θ^(l) with the bias in column 0, the regularised cost J(Θ), the
δ-backpropagation — on device-resident torch tensors (CPU or CUDA).

The training loop
-----------------
X and y are validated once by scikit-learn, moved to the device once, and then every epoch is
one ``randperm``, one gather of the rows and a slice per mini-batch. With ``backprop="manual"``
(the default) each mini-batch runs the lecture's algorithm directly, without an autograd tape::

    forward    z^(l+1) = [1, a^(l)] Θ^(l)ᵀ,  a^(l+1) = g(z^(l+1))     (the ones column lives in the buffer)
    output     δ^(L+1) = a^(L+1) − y   (2(a − y) for the identity head)
    recursion  δ^(l) = δ^(l+1) Θ^(l)_{:,1:} .* g'(z^(l))
    gradient   D^(l) = δ^(l+1)ᵀ [1, a^(l)] / n + (λ_batch / n) [0 | Θ^(l)_{:,1:}]

computed by :func:`lecturenn.backprop.cost_and_gradient` — the same forward_layers, output_error
and backward_layers as ``net.cost(X, Y, lam).backward()``, with the ones column kept in the
activation buffers — and with every Θ^(l) and D^(l) a view into one flat parameter / gradient
buffer, so the torch optimizer (fused ``Adam``, ``SGD`` with Nesterov momentum, ``LBFGS``) updates
all layers in one call (``tests/test_estimators.py`` checks the gradient against both of
ThetaMLP's backprops). ``backprop="autograd"`` trains through exactly
that call instead, with torch autograd differentiating ThetaMLP's forward. The epoch loss is
accumulated on the device and read once per epoch (one host sync per epoch, not per batch).
Small nets train on one CPU thread (see ``_engine.ONE_THREAD_BELOW``; the caller's thread count
is restored). ``python benchmarks/bench_estimator.py`` compares the speed with ``MLPClassifier``.

Regularisation: ``alpha`` is the lecture's λ
--------------------------------------------
J(Θ) = J_data + λ/(2N) Σ_l Σ_{i, j≥1} (Θ^(l)_ij)² over the N training rows. With ``solver="gd"``
or ``"lbfgs"`` (full batch) that is exactly the cost minimised, and for classifiers exactly
scikit-learn's ``alpha``. With mini-batches each batch of n rows is charged λ·n/N
(``regularization.batch_lam(alpha, n, N)``, the one rule), so its gradient is D_data + (λ/N)Θ
and one epoch's gradients average to the full-batch D = Δ/N + (λ/N)Θ: ``alpha`` means the same for every batch
size. scikit-learn divides alpha by the *batch* size instead, so its mini-batch penalty is N/n
times stronger than its full-batch one: ``MLPClassifier(alpha=a*n/N, batch_size=n)`` takes the
same steps as ``ThetaMLPClassifier(alpha=a, batch_size=n)`` when n divides N (tested).

Losses follow the lecture: cross-entropy summed over outputs and averaged over rows for the
sigmoid and softmax heads (identical to scikit-learn's log-loss), and J = (1/N) Σ_i ‖y_i − ŷ_i‖²
for regression. ``MLPRegressor`` reports half the mean over all N·K entries (J/(2K) without a
penalty) but steps along the gradient of (1/2N) Σ_i ‖y_i − ŷ_i‖² + its penalty, so
``MLPRegressor(alpha=a*n/(2N))`` and ``ThetaMLPRegressor(alpha=a)`` fit alike with Adam.
``loss="poisson"`` trains the poisson head's J = (1/N) Σ_ik (e^z − y z) + λ/(2N) ΣΘ², the gradient
scikit-learn's ``loss="poisson"`` steps along, and reports scikit-learn's ``loss_`` (the half
deviance, J plus a constant of the targets): here ``alpha`` is scikit-learn's as for classifiers.

Saving without pickle
---------------------
``est.save("model.npz")`` and ``ThetaMLPClassifier.load("model.npz")`` (``ThetaMLPRegressor.load``):
an ``.npz`` of plain arrays (Θ in :mod:`lecturenn.interop.files`' format) and a JSON string of the
parameters and fitted state, read with ``allow_pickle=False``; predictions round-trip bitwise and a
loaded estimator keeps training (``partial_fit``, ``warm_start``) exactly as the saved one would.
Format and checks: :mod:`lecturenn.estimators._persist`.

Differences from scikit-learn
-----------------------------
* ``dtype="float32"`` by default, whatever X's dtype (scikit-learn follows X; ``dtype=None`` does
  here too): float64 training is not 2× faster than ``MLPClassifier`` (numbers under ``dtype``).
  So float64 X with values beyond float32's range (~3.4e38) is refused by the input check
  ("Input X contains infinity or a value too large for dtype('float32')") rather than by
  scikit-learn's "non-finite parameter weights" after training.
* ``ThetaMLPRegressor``'s ``loss`` ("squared_error" or "poisson", as ``MLPRegressor``'s) is
  keyword-only: ``MLPRegressor`` takes it as its first positional parameter, before
  ``hidden_layer_sizes``.
* scikit-learn's ``test_mlp.py`` run against these estimators (the two names swapped, no assertion
  changed): 52 of 59 items pass. Besides the three dtype items above, four read
  scikit-learn's private training state; their public equivalents here:

  - ``test_fit`` assigns ``_coef_grads``, ``_coef_velocity``, … before ``partial_fit`` to check one
    hand-worked SGD step: assign ``coefs_`` / ``intercepts_`` after a fit instead; the hand-worked
    steps are ``tests/test_handworked.py``.
  - ``test_gradient`` calls ``_loss_grad_lbfgs``: ``est.net_.cost(X, Y, lam).backward()`` or
    ``lecturenn.gradient_check(est.net_, X, Y)``.
  - ``test_learning_rate_warmstart`` and ``test_adaptive_learning_rate`` read
    ``_optimizer.learning_rate``: ``"invscaling"``'s η is ``learning_rate_init / (t_ + 1) ** power_t``
    from the public ``t_``, and ``verbose=True`` prints each new ``"adaptive"`` η in scikit-learn's
    words ("Setting learning rate to ...").

  ``test_mlp_vs_poisson_glm_equivalent`` passes at the default seed but needs float64 for every
  seed: over ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED=0-29`` it passes 24 of 30 in float32 (L-BFGS stops
  where float32 J no longer resolves a step: 6e-4 from the GLM's predictions at worst, the test
  allows 1e-4) and 30 of 30 with ``dtype="float64"`` (2.3e-5 at worst).
* A single-class ``y`` fits and predicts that class, as scikit-learn; ``predict_proba`` then has
  scikit-learn's two columns [1 − p, p].
"""

from ._classifier import ThetaMLPClassifier
from ._regressor import ThetaMLPRegressor

__all__ = ["ThetaMLPClassifier", "ThetaMLPRegressor"]
