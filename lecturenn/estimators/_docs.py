"""The estimators' shared docstring sections (scikit-learn's Parameters / Attributes layout)."""

PARAMS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units s_2, ..., s_L of the hidden layers (the input and output widths come from the data).
    activation : {"relu", "logistic", "sigmoid", "tanh", "identity", "softplus", "leaky_relu", "elu"}, \
default="relu"
        Hidden activation g, or any activation registered with ``lecturenn.register_activation``;
        ``"logistic"`` is scikit-learn's name for ``"sigmoid"``.
    solver : {"adam", "sgd", "gd", "lbfgs", "adagrad", "rmsprop", "adamw", "lamb"}, default="adam"
        ``"gd"`` is the lecture's batch gradient descent (one plain step per epoch on all rows,
        ``momentum`` unused); ``"sgd"`` mini-batch SGD with (Nesterov) momentum; ``"adam"``;
        ``"lbfgs"`` full-batch L-BFGS with a strong-Wolfe line search. The other mini-batch solvers
        are torch's (``epsilon`` as their ε): ``"adagrad"``; ``"rmsprop"`` (smoothing 0.99, no
        momentum); ``"adamw"`` (``beta_1``, ``beta_2``, decoupled weight decay 0.01, torch's
        default, on top of ``alpha``); ``"lamb"``, :class:`lecturenn.optim.LAMB` (``beta_1``,
        ``beta_2``, no weight decay; one trust ratio per Θ^(l)), for large ``batch_size``.
    alpha : float, default=1e-4
        The lecture's λ: J(Θ) = J_data + λ/(2N) Σ Θ_{:,1:}² over the N training rows. A
        mini-batch of n rows is charged λ·n/N, so the epoch's gradients average to the full-batch
        D = Δ/N + (λ/N)Θ and ``alpha`` means the same for every batch size. With a full batch
        (``"gd"``, ``"lbfgs"``) this is exactly scikit-learn's ``alpha`` for classifiers and
        ``loss="poisson"`` (for the squared error, which has no ½ here, ``alpha`` = 2 × scikit-learn's
        gives the same fit); scikit-learn's mini-batch solvers divide ``alpha`` by the batch size instead, so
        ``MLPClassifier(alpha=a·n/N, batch_size=n)`` takes the same steps as ``alpha=a`` here
        (when n divides N).
    batch_size : int or "auto", default="auto"
        Rows per mini-batch, ``min(200, n_samples)`` for ``"auto"``; unused by ``"gd"``/``"lbfgs"``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        The step size's schedule for ``solver="sgd"``, scikit-learn's: ``"invscaling"`` sets
        η = ``learning_rate_init`` / (t + 1)^``power_t`` after each epoch (t: training rows seen);
        ``"adaptive"`` keeps η while the loss (or validation score) improves and divides it by 5
        each time ``n_iter_no_change`` epochs pass without improvement, stopping once η ≤ 1e-6.
    learning_rate_init : float, default=1e-3
        Step size of every solver but ``"lbfgs"`` (the first one, with a schedule).
    power_t : float, default=0.5
        The exponent of ``"invscaling"``.
    max_iter : int, default=200
        Maximum epochs (``"lbfgs"``: maximum iterations).
    shuffle : bool, default=True
        Reshuffle the rows every epoch (mini-batch solvers).
    random_state : int, RandomState instance or None, default=None
        Seeds Θ's initialisation, the shuffling and the early-stopping split.
    tol : float, default=1e-4
        Stop when the loss (or validation score) has not improved by ``tol`` for
        ``n_iter_no_change`` consecutive epochs; ``"lbfgs"``: gradient tolerance.
    verbose : bool or int, default=False
        Print scikit-learn's lines: ``Iteration %d, loss = %.8f`` every epoch (``"lbfgs"``: every
        iteration, the values of ``loss_curve_``), ``Validation score: %f`` with ``early_stopping``,
        and the stopping / learning-rate messages.
    warm_start : bool, default=False
        ``fit`` continues from the fitted Θ (with a fresh optimizer) instead of re-initialising.
    momentum : float, default=0.9
        Momentum of ``"sgd"``.
    nesterovs_momentum : bool, default=True
        Nesterov momentum for ``"sgd"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified for single-output classifiers),
        stop when their score stops improving and keep the best Θ.
    validation_fraction : float, default=0.1
        Held-out fraction for ``early_stopping``.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int or np.inf, default=10
        Epochs without an improvement of ``tol`` before stopping (``np.inf``: never stop early).
    max_fun : int, default=15000
        Maximum loss evaluations of ``"lbfgs"``.
    backprop : {"manual", "autograd"}, default="manual"
        ``"manual"``: the lecture's δ-recursion, run straight into one flat gradient buffer (the
        fast path); ``"autograd"``: ``net_.cost(X_batch, Y_batch, alpha·n/N)`` differentiated by
        torch autograd (the same gradient, slower: the reference). ``net_`` is built with it.
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
        Where Θ and the data live during training; ``"auto"`` is CUDA when available.
    dtype : {"float32", "float64"} or None, default="float32"
        Floating-point type of Θ and of training; ``None`` follows X as scikit-learn does (float32
        X → float32, any other X → float64; a warm start or ``partial_fit`` continues in the fitted
        dtype). The default is float32 because float64 loses the speed-up: on digits (hidden
        (100,), batch 200, one thread, 7 interleaved rounds in one process, two runs) this
        estimator was 2.07–2.15× (adam) and 2.24–2.34× (sgd) faster per epoch than ``MLPClassifier``
        (float64) in float32, but only 1.28–1.39× and 1.13–1.38× in float64, at the same test
        accuracy (0.947–0.951).
        Predictions are evaluated in float64 (a float32 Θ upcast exactly), so a row's prediction
        does not depend on the other rows it is predicted with, and returned in float32 for
        float32 X (as scikit-learn's), else in float64.
    cuda_graph : bool, default=False
        Capture the whole mini-batch step (forward propagation, δ-recursion, optimizer update) in
        a CUDA graph per batch size and replay it (:mod:`lecturenn.step_graph`): the same updates
        as the eager step with one launch instead of ~20-40, for small, launch-bound networks. The
        first 3 steps of each batch size run eagerly (warm-up), then it is captured; a learning-rate
        change (``learning_rate="adaptive"``/``"invscaling"``) captures a new graph. Needs a CUDA
        ``device`` and solver ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"gd"``, no sample or class
        weights; anything else is a ``ValueError`` at fit. Not yet measured on a GPU.
"""

ATTRS_DOC = """
    thetas_ : list of ndarray
        Θ^(1..L), Θ^(l) of shape (s_{l+1}, s_l + 1) with the bias in column 0 (CPU copies).
    net_ : ThetaMLP
        The trained network (on the training device).
    coefs_, intercepts_ : list of ndarray
        The same weights in scikit-learn's layout (``Θ[:, 1:].T`` and ``Θ[:, 0]``).
    loss_ : float
        J(Θ) of the last epoch (mini-batch solvers: the mean of the batch costs over the epoch);
        for ``loss="poisson"`` scikit-learn's half deviance, J plus a constant of the targets.
    loss_curve_ : list of float
        ``loss_`` per epoch (``"lbfgs"``: per iteration).
    best_loss_ : float or None
        Lowest loss seen (None with ``early_stopping``).
    validation_scores_ : list of float or None
        Score on the held-out rows per epoch (``early_stopping`` only).
    best_validation_score_ : float or None
        Best of ``validation_scores_``.
    n_iter_ : int
        Epochs run by the last call of ``fit`` or ``partial_fit`` (``"lbfgs"``: iterations), as in
        scikit-learn: a warm-started ``fit`` counts its own epochs, ``partial_fit`` reports 1.
    t_ : int
        Training rows seen by the solver.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of str
        Column names, when X was a DataFrame with string column names.
    n_layers_ : int
        L + 1, the number of layers of units.
    n_outputs_ : int
        Output units K.
    out_activation_ : str
        The output head in scikit-learn's words: ``"logistic"``, ``"softmax"``, ``"identity"`` or
        ``"exp"`` (``loss="poisson"``).
"""
