"""The shared base of :class:`ThetaMLPClassifier` and :class:`ThetaMLPRegressor`: parameters and
their validation, ``_fit`` (data, network, engine), prediction, fitted attributes, pickling. The
training loops are in :mod:`._fitting`, the shared docstrings in :mod:`._docs`."""

from __future__ import annotations

import contextlib
import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch import Tensor

from ..activations import ACTIVATIONS as _REGISTERED_ACTIVATIONS
from ..heads import HEADS
from ..memory import check_theta_fits
from ..network import ThetaMLP
from ..regularization import check_lam
from ..sample_weight import check_weight_values, prepare_sample_weight
from ..step_graph import check_cuda_graph_device
from ..validation import is_integer, is_number
from ._engine import (
    GRAPH_SOLVERS,
    Engine,
    as_tensor,
    copy_net,
    cpu_threads,
    resolve_device,
    resolve_dtype,
    to_cpu,
)
from ._fitting import NON_FINITE, FitLoops
from ._persist import with_added_params

#: Every registered activation's name and scikit-learn name ("logistic") -> its registered name (live).
ACTIVATIONS = _REGISTERED_ACTIVATIONS.aliases("sklearn")
STOCHASTIC_SOLVERS = ("gd", "sgd", "adam", "adagrad", "rmsprop", "adamw", "lamb")
SOLVERS = (*STOCHASTIC_SOLVERS, "lbfgs")
#: scikit-learn's learning-rate schedules of solver="sgd" (its SGDOptimizer)
LEARNING_RATES = ("constant", "invscaling", "adaptive")
#: scikit-learn's name of each head (``out_activation_``).
SK_OUT = {name: head.sklearn for name, head in HEADS.items()}
_SPARSE = ["csr", "csc"]


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _sample_weight(sample_weight, n: int):
    """``sample_weight`` checked (n finite numbers ≥ 0 with a positive sum; lecturenn.sample_weight)
    as a float64 numpy array; None, or weights that are all 1, give None."""
    if sample_weight is None:
        return None
    w = prepare_sample_weight(sample_weight, n, torch.float64, "cpu")
    check_weight_values(w)
    w = w.numpy()
    return None if (w == 1).all() else w  # all ones: exactly the unweighted cost (and its fast path)


def _activation_choices() -> str:
    """``one of [...], elu:ALPHA (...), leaky_relu:SLOPE (...)``: the names and parametrised forms."""
    forms = "".join(f", {form}" for form in _REGISTERED_ACTIVATIONS.forms())
    return f"one of {sorted(ACTIVATIONS)}{forms}"


class BaseThetaMLP(FitLoops, BaseEstimator):
    """Shared parameters, validation and training loop of the two estimators."""

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
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backprop = backprop
        self.device = device
        self.dtype = dtype
        self.cuda_graph = cuda_graph

    # -- parameters -----------------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if is_integer(sizes):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise ValueError(
                f"hidden_layer_sizes must be an int or a sequence of ints, got {sizes!r}"
            ) from None
        if not all(is_integer(s) and s >= 1 for s in sizes):
            raise ValueError(  # the prefix is scikit-learn's MLP message
                f"hidden_layer_sizes must be > 0, got {list(sizes)}: each layer size is a positive integer."
            )
        return [int(s) for s in sizes]

    def _validate_params(self, device: bool = True) -> None:
        """Check every constructor argument (scikit-learn convention: in fit, not in __init__);
        ``device=False``: not whether the device exists here (a saved file loads on any machine)."""

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)!r}")

        self._hidden_sizes()
        # a non-str is a TypeError, a family's bad NAME:VALUE (leaky_relu:-1) a ValueError naming its form
        need(self.activation in ACTIVATIONS, "activation", _activation_choices())
        need(self.solver in SOLVERS, "solver", f"one of {list(SOLVERS)}")
        try:  # alpha is λ: the one λ validator (ValueError for every bad value, scikit-learn's convention)
            check_lam(self.alpha, "alpha")
        except TypeError as err:
            raise ValueError(str(err)) from None
        if self.dtype is not None:  # dtype=None: checked in fit, once X's dtype is known
            self._check_alpha(resolve_dtype(self.dtype)[0])
        need(
            (isinstance(self.batch_size, str) and self.batch_size == "auto")
            or (is_integer(self.batch_size) and self.batch_size >= 1),
            "batch_size",
            "'auto' or an int >= 1",
        )
        need(
            isinstance(self.learning_rate, str) and self.learning_rate in LEARNING_RATES,
            "learning_rate",
            f"one of {list(LEARNING_RATES)}",
        )
        need(is_number(self.power_t), "power_t", "a finite number")
        need(
            is_number(self.learning_rate_init) and self.learning_rate_init > 0,
            "learning_rate_init",
            "a finite number > 0",
        )
        need(is_integer(self.max_iter) and self.max_iter >= 1, "max_iter", "an int >= 1")
        need(is_number(self.tol) and self.tol >= 0, "tol", "a finite number >= 0")
        need(is_number(self.momentum) and 0 <= self.momentum <= 1, "momentum", "a number in [0, 1]")
        need(
            is_number(self.validation_fraction) and 0 < self.validation_fraction < 1,
            "validation_fraction",
            "a number in (0, 1)",
        )
        need(is_number(self.beta_1) and 0 <= self.beta_1 < 1, "beta_1", "a number in [0, 1)")
        need(is_number(self.beta_2) and 0 <= self.beta_2 < 1, "beta_2", "a number in [0, 1)")
        need(is_number(self.epsilon) and self.epsilon > 0, "epsilon", "a finite number > 0")
        need(
            (is_integer(self.n_iter_no_change) and self.n_iter_no_change >= 1)
            or (isinstance(self.n_iter_no_change, float) and self.n_iter_no_change == np.inf),
            "n_iter_no_change",
            "an int >= 1 or np.inf (never stop early)",
        )
        need(is_integer(self.max_fun) and self.max_fun >= 1, "max_fun", "an int >= 1")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping", "cuda_graph"):
            need(isinstance(getattr(self, name), (bool, np.bool_)), name, "True or False")
        need(isinstance(self.verbose, (bool, np.bool_, Integral)), "verbose", "a bool or an int")
        need(self.backprop in ("manual", "autograd"), "backprop", "'manual' or 'autograd'")
        if device:
            resolve_device(self.device)
        if self.dtype is not None:
            resolve_dtype(self.dtype)

    def _check_alpha(self, dtype: torch.dtype) -> None:
        largest = torch.finfo(dtype).max
        if not check_lam(self.alpha, "alpha") <= largest:
            name = str(dtype).removeprefix("torch.")
            raise ValueError(
                f"alpha must be at most {largest:.3g}, the largest {name} (or dtype='float64'), "
                f"got {self.alpha!r}"
            )

    # -- targets (subclasses) -------------------------------------------------------------------
    def _encode_targets(self, y, incremental: bool, first_pass: bool, classes, dtype) -> np.ndarray:
        raise NotImplementedError

    def _val_score(self, z: Tensor, Y: Tensor, weight: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def _loss_offset(self, Y: np.ndarray, w: np.ndarray | None) -> float:
        """A constant (in Θ) that ``loss_`` adds to J(Θ) on the training rows Y (n, K) with weights w
        (the Poisson regressor's deviance form, see ThetaMLPRegressor); 0 here."""
        return 0.0

    def _row_weights(self, y, sample_weight, incremental: bool):
        """The rows' weights as a float64 numpy array, or None (the regressor: ``sample_weight``)."""
        return _sample_weight(sample_weight, len(y))

    # -- fitting --------------------------------------------------------------------------------
    def _fit(self, X, y, incremental: bool = False, classes=None, sample_weight=None):
        self._validate_params()
        hidden = self._hidden_sizes()
        device = resolve_device(self.device)
        if incremental and self.solver not in STOCHASTIC_SOLVERS:
            raise ValueError(f"partial_fit is only available for stochastic solvers, not {self.solver!r}")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "net_") or (not self.warm_start and not incremental)
        if self.dtype is not None:
            npdtype = resolve_dtype(self.dtype)[1]
        elif first_pass:  # scikit-learn's rule: float32 X trains in float32, any other X in float64
            npdtype = (np.float64, np.float32)
        else:  # continue in the fitted network's dtype
            npdtype = resolve_dtype(self.net_.thetas[0].dtype)[1]

        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=_SPARSE,
            multi_output=True,
            y_numeric=not is_classifier(self),
            dtype=npdtype,
            reset=first_pass,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        tdtype, npdtype = resolve_dtype(X.dtype)
        self._check_alpha(tdtype)
        w = self._row_weights(y, sample_weight, incremental)  # None, or float64 (n,), checked
        graph = self._graph_backend(device, w)  # cuda_graph=True: refused here, before any work
        Y = self._encode_targets(y, incremental, first_pass, classes, npdtype)  # (n, K) floats
        n_outputs = Y.shape[1]
        sizes = [X.shape[1], *hidden, n_outputs]
        rng = check_random_state(self.random_state)

        if first_pass:
            check_theta_fits(
                sizes, tdtype.itemsize, device, f"hidden_layer_sizes={self.hidden_layer_sizes!r}"
            )
            self.n_outputs_ = n_outputs
            self.n_layers_ = len(sizes)
            seed = int(rng.randint(np.iinfo(np.int32).max))
            self._generator = torch.Generator().manual_seed(seed)
            self.net_ = ThetaMLP(
                sizes,
                hidden=ACTIVATIONS[self.activation],
                output=self._head(n_outputs),
                backprop=self.backprop,
                generator=self._generator,
                dtype=tdtype,
            ).to(device)
            self._engine = None
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        else:
            self._check_continuation(sizes, tdtype)
            if not hasattr(self, "_generator"):
                self._generator = torch.Generator().manual_seed(int(rng.randint(np.iinfo(np.int32).max)))
            if self.net_.thetas[0].device != device:
                self.net_ = copy_net(self.net_, device)
        self.net_.validate_inputs = False  # the data were validated above, once
        self.out_activation_ = SK_OUT[self.net_.head.name]

        engine = getattr(self, "_engine", None)
        rebuild = engine is None or not engine.drives(self.net_, self.solver) or not incremental
        if rebuild or (engine.graph is None) != (graph is None):
            saved = getattr(self, "_optimizer_state", None) if incremental else None
            if not rebuild:  # partial_fit after cuda_graph was switched: same state, new optimizer flags
                saved = engine.optimizer.state_dict()
            engine = self._engine = Engine(self.net_, self.solver, self, self.backprop, graph)
            if saved is not None:
                with contextlib.suppress(ValueError, KeyError, RuntimeError):
                    engine.optimizer.load_state_dict(saved)
        self._optimizer_state = None

        N = X.shape[0]
        batch = N if self.solver in ("gd", "lbfgs") else self._batch_size(N)
        with cpu_threads(device, sizes, batch):
            if self.solver == "lbfgs":
                self._fit_lbfgs(engine, X, Y, device, tdtype, w)
            else:
                self._fit_stochastic(engine, X, Y, y, device, tdtype, batch, incremental, rng, w)
            if not all(bool(torch.isfinite(t).all()) for t in engine.thetas):
                raise ValueError(NON_FINITE)
        self.thetas_ = [t.detach().cpu().numpy().copy() for t in self.net_.thetas]
        # a new holder: the optimizer wrote Θ through the flat parameter, unseen by Θ's version
        self._predict_cache = {}
        return self

    def _graph_backend(self, device: torch.device, w) -> str | None:
        """None for ``cuda_graph=False``; else the StepGraph backend, once the option is checked:
        ``ValueError`` (one line) off CUDA, for a solver whose step cannot be captured, or with
        sample/class weights (each batch's λ_B = λ·W_B/W is a host number a capture would freeze).
        Tests on the CPU set ``_cuda_graph_backend = "record"`` (:mod:`lecturenn.step_graph`)."""
        if not self.cuda_graph:
            return None
        backend = getattr(self, "_cuda_graph_backend", "cuda")
        if backend == "cuda":
            check_cuda_graph_device(device)
        if self.solver not in GRAPH_SOLVERS:
            raise ValueError(
                f"cuda_graph=True captures the mini-batch step of solver {list(GRAPH_SOLVERS)}, not "
                f"solver={self.solver!r}: set cuda_graph=False or choose one of those"
            )
        if w is not None:
            raise ValueError(
                "cuda_graph=True does not support sample_weight or class_weight (each batch's λ_B "
                "depends on its weights, a number a captured step would freeze): set cuda_graph=False"
            )
        return backend

    def _check_continuation(self, sizes: list[int], tdtype: torch.dtype) -> None:
        """warm_start / partial_fit continue from net_: the architecture must not have changed."""
        net = self.net_
        old = [list(net.sizes), net.activation.name, net.head.name, net.thetas[0].dtype]
        new = [sizes, ACTIVATIONS[self.activation], self._head(sizes[-1]), tdtype]
        if old != new:
            raise ValueError(
                "warm_start / partial_fit continue from the fitted network, but (sizes, activation, "
                f"output head, dtype) changed from {old} to {new}; set warm_start=False to refit"
            )

    def _batch_size(self, N: int) -> int:
        if self.batch_size == "auto":
            return min(200, N)
        if self.batch_size > N:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                stacklevel=4,
            )
        return int(np.clip(self.batch_size, 1, N))

    # -- prediction -----------------------------------------------------------------------------
    def _logits(self, X) -> Tensor:
        """z^(L+1) (n, K) of validated X, as a float64 CPU tensor (see :meth:`_logits_and_dtype`)."""
        return self._logits_and_dtype(X)[0]

    def _logits_and_dtype(self, X) -> tuple[Tensor, type]:
        """(z^(L+1) (n, K) of validated X as a float64 CPU tensor, the dtype of the predictions:
        float32 for float32 X, as in scikit-learn, else float64).

        Evaluated in float64 (from float32 Θ, exactly upcast, when ``dtype="float32"``): BLAS's
        float32 kernels for one row and for many round differently (by ~1 ulp), and a row's
        prediction should not depend on which other rows are predicted with it.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=_SPARSE, dtype=(np.float64, np.float32), reset=False)
        net = self._float64_net()
        device = net.thetas[0].device
        out = []
        with torch.no_grad():
            for i in range(0, X.shape[0], 65536):
                out.append(net.logits(as_tensor(X[i : i + 65536], device, torch.float64)).cpu())
        return (torch.cat(out) if len(out) > 1 else out[0]), X.dtype.type

    def _float64_net(self) -> ThetaMLP:
        """``net_`` itself when Θ is float64, else a float64 copy made once and reused until Θ
        changes: every fit and ``partial_fit`` drops the copy, and an in-place edit of
        ``net_.thetas`` bumps the tensor's version counter (``Tensor._version``, part of the key)."""
        net = self.net_
        if net.thetas[0].dtype == torch.float64:
            return net
        key = (id(net), tuple((t.data_ptr(), t._version) for t in net.thetas))
        # a dict made by fit and filled here, so that predict leaves __dict__ as it was
        cache = self.__dict__.setdefault("_predict_cache", {})
        if cache.get("key") != key:
            cache.update(key=key, net=copy_net(net, dtype=torch.float64))
        return cache["net"]

    # -- fitted attributes in scikit-learn's layout ---------------------------------------------
    @property
    def coefs_(self) -> list[np.ndarray]:
        """scikit-learn's weights: ``coefs_[l-1] = Θ^(l)[:, 1:]ᵀ`` (s_l, s_{l+1}), read-only views of
        ``thetas_`` (an in-place edit would change nothing, so it raises); assign a whole list to
        change the model: ``est.coefs_ = [W1, W2]`` writes Θ^(l)[:, 1:] = W_lᵀ."""
        if not hasattr(self, "thetas_"):
            raise AttributeError("coefs_ exists after fit")
        return [_read_only(t[:, 1:].T) for t in self.thetas_]

    @coefs_.setter
    def coefs_(self, value) -> None:
        self._assign("coefs_", value, lambda t: t[:, 1:].T)

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """scikit-learn's biases: ``intercepts_[l-1] = Θ^(l)[:, 0]``, read-only; assign a whole list
        to change the model (as for :attr:`coefs_`)."""
        if not hasattr(self, "thetas_"):
            raise AttributeError("intercepts_ exists after fit")
        return [_read_only(t[:, 0]) for t in self.thetas_]

    @intercepts_.setter
    def intercepts_(self, value) -> None:
        self._assign("intercepts_", value, lambda t: t[:, 0])

    def _assign(self, name: str, value, part) -> None:
        """Write a list of scikit-learn-layout arrays into Θ (``net_``, the training state and
        ``thetas_``): each must have the current shape and finite values."""
        if not hasattr(self, "thetas_"):
            raise AttributeError(f"{name} can be assigned after fit (the architecture comes from the data)")
        arrays = list(value) if isinstance(value, (list, tuple)) else None
        if arrays is None or len(arrays) != len(self.thetas_):
            raise ValueError(f"{name} must be a list of {len(self.thetas_)} arrays, one per layer")
        new = []
        for l, (theta, array) in enumerate(zip(self.thetas_, arrays), start=1):
            array = np.asarray(array, dtype=np.float64)
            target = part(theta)
            if array.shape != target.shape:
                raise ValueError(f"{name}[{l - 1}] must have shape {target.shape}, got {array.shape}")
            if not np.isfinite(array).all():
                raise ValueError(f"{name}[{l - 1}] contains NaN or inf")
            new.append(array)
        with torch.no_grad():
            for theta_np, p, array in zip(self.thetas_, self.net_.thetas, new):
                part(theta_np)[...] = array
                p.copy_(torch.from_numpy(theta_np))  # Θ^(l) itself: the engine's flat storage too
        self._predict_cache = {}

    def _check_solver(self) -> bool:
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not stochastic."
            )
        return True

    # -- saving without pickle (the file format: ._persist) ---------------------------------------
    def save(self, path):
        """Write the fitted estimator to ``path`` (``.npz``) without pickle: Θ, the hyperparameters
        (plain JSON values only) and the fitted state; ``type(est).load(path)`` reads it back with
        bitwise-equal predictions and can keep training. See :mod:`lecturenn.estimators._persist`.

        Returns the path written. ``ValueError`` (nothing written) for a parameter that is not a plain
        JSON value or that ``load`` would refuse (a bad value set after fit, or one that no longer
        describes the fitted network), ``NotFittedError`` before fit."""
        from ._persist import save

        return save(self, path)

    @classmethod
    def load(cls, path):
        """The estimator saved at ``path`` by :meth:`save` (never executes code: ``allow_pickle=False``).

        ``ValueError`` with one line naming the problem for a file that is not such a file — a
        tampered, truncated or foreign one, a different format version, or one holding the other
        estimator class."""
        from ._persist import load

        return load(cls, path)

    # -- pickling: Θ and the architecture (not the module), the optimizer as a state dict --------
    def __getstate__(self):
        # ThetaMLP holds its activation's functions, which pickle cannot store, so the net travels
        # as its config and CPU copies of Θ, and is rebuilt (on the CPU) when unpickled
        state = dict(super().__getstate__())
        engine = state.pop("_engine", None)
        state.pop("_predict_cache", None)  # refilled by the first predict after unpickling
        if engine is not None:
            state["_optimizer_state"] = to_cpu(engine.optimizer.state_dict())
        net = state.pop("net_", None)
        if net is not None:
            thetas = [t.detach().cpu().clone() for t in net.thetas]
            state["_net_state"] = {"config": net.config, "thetas": thetas}
        generator = state.pop("_generator", None)
        if generator is not None:
            state["_generator_state"] = generator.get_state()
        return state

    def __setstate__(self, state):
        # a pickle from before a parameter existed: that parameter at the value it then meant
        state = with_added_params(dict(state), self._get_param_names())
        net_state = state.pop("_net_state", None)
        generator_state = state.pop("_generator_state", None)
        super().__setstate__(state)
        if net_state is not None:
            thetas = net_state["thetas"]
            net = ThetaMLP(**net_state["config"], init="zeros", dtype=thetas[0].dtype)
            with torch.no_grad():
                for p, theta in zip(net.thetas, thetas):
                    p.copy_(theta)
            net.validate_inputs = False
            self.net_ = net
            self._predict_cache = {}
        if generator_state is not None:
            self._generator = torch.Generator()
            self._generator.set_state(generator_state)
        self._engine = None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
