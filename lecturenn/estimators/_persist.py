"""Saving a fitted estimator without pickle: ``est.save(path)`` and ``ThetaMLPClassifier.load(path)``
/ ``ThetaMLPRegressor.load(path)``.

The file is a NumPy ``.npz`` archive of plain arrays — written by ``np.savez``, read back with
``np.load(path, allow_pickle=False)`` — so loading never executes code (no pickle, no ``eval``, no
object arrays)::

    Theta1 … ThetaL, architecture   lecturenn.interop.files' Θ format: Θ^(l) (s_{l+1}, s_l + 1), bias in
                                    column 0, in Θ's dtype; ``lecturenn.load_thetas(path)`` reads the net
    estimator                       a JSON string: {"format": "lecturenn.estimator", "version": 1,
                                    "class": "ThetaMLPClassifier", "params": get_params(), "fitted": {…}}
    classes_                        the class labels in their dtype (classifiers; str labels that were an
                                    object array are stored as unicode and come back as an object array)
    feature_names_in_               the DataFrame's column names (when fitted on one)
    loss_curve_, validation_scores_ float64, one entry per epoch
    generator_state                 the torch generator that shuffles the rows (uint8)
    optimizer.<i>.<key>             the solver's state tensors (mini-batch solvers), with their
                                    ``param_groups`` in the JSON

so predictions round-trip bitwise, and ``partial_fit`` / a warm-started ``fit`` of the loaded
estimator continue exactly as the saved one would have. The hyperparameters must be plain JSON
values (None, bool, int, float, str, and tuples, lists and dicts of them — tuples and dicts are
tagged in the JSON so they come back as tuples and dicts with their key types); ``save`` refuses
others (a ``RandomState`` instance, a ``torch.device``) with one line before writing anything, and so
is every file ``load`` would refuse (a parameter set to a bad value after fit, or to one that no
longer describes the fitted network): save runs load's checks on what it is about to write. ``load``
checks every entry — the format and version, the class, the parameters, Θ's shapes against the
architecture and the data sizes, finite weights, the labels against the output layer — and refuses
anything else with one ``ValueError`` line naming the file and the problem.
"""

from __future__ import annotations

import json
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomically
from ..interop.files import net_from_arrays, npz_arrays, read_npz
from ..validation import require_file

FORMAT = "lecturenn.estimator"
VERSION = 1
_COMMON = {  # fitted attribute -> the JSON types it may have
    "n_features_in_": (int,),
    "n_outputs_": (int,),
    "n_layers_": (int,),
    "out_activation_": (str,),
    "n_iter_": (int,),
    "t_": (int,),
    "loss_": (float, int),
    "best_loss_": (float, int, type(None)),
    "best_validation_score_": (float, int, type(None)),
    "_no_improvement_count": (int,),
    "dtype": (str,),
}
#: parameters added since format version 1 -> the value a file without them means
ADDED_PARAMS = {"cuda_graph": False}
_LABEL_KINDS = "biufUS"  # bool, integers, floats, unicode and byte strings: plain arrays
#: optimizer state that is a count or a sum of squares (Adam, AdamW, LAMB, Adagrad, RMSprop)
_NON_NEGATIVE = {"step", "exp_avg_sq", "max_exp_avg_sq", "sum", "square_avg"}
_KERNEL = {"fused", "foreach", "capturable", "differentiable"}  # which kernel: depends on the machine


def with_added_params(params: dict, names) -> dict:
    """``params`` (a file's parameters, or an unpickled estimator's ``__dict__``) with each parameter
    of :data:`ADDED_PARAMS` that the class has (``names``) and ``params`` lacks at the value an older
    file or pickle means: one rule for ``load``, ``pickle.loads``, ``joblib.load`` and ``deepcopy``."""
    return {**{k: v for k, v in ADDED_PARAMS.items() if k in names and k not in params}, **params}


# -- JSON values: tuples and dicts tagged, so that they come back as they were -------------------------
def _plain(value, name: str):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, tuple):
        return {"tuple": [_plain(v, name) for v in value]}
    if isinstance(value, list):
        return [_plain(v, name) for v in value]
    if isinstance(value, dict):
        return {"dict": [[_plain(k, name), _plain(v, name)] for k, v in value.items()]}
    raise TypeError(name)


def _unplain(value):
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    if isinstance(value, dict):
        if list(value) == ["tuple"] and isinstance(value["tuple"], list):
            return tuple(_unplain(v) for v in value["tuple"])
        if list(value) == ["dict"] and isinstance(value["dict"], list):
            if not all(isinstance(kv, list) and len(kv) == 2 for kv in value["dict"]):
                raise ValueError("a tagged dict must hold [key, value] pairs")
            return {_hashable(_unplain(k)): _unplain(v) for k, v in value["dict"]}
        raise ValueError(f"an untagged JSON object {value!r}")
    return value


def _hashable(key):
    if isinstance(key, list):
        raise ValueError(f"a dict key cannot be a list: {key!r}")
    return key


# -- saving ----------------------------------------------------------------------------------------------
def _label_array(values: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """(a plain array of ``values``, whether it was an object array of str)."""
    if values.dtype.kind in _LABEL_KINDS:
        return values, False
    if values.dtype == object and all(isinstance(v, str) for v in values.ravel()):
        return values.astype(str), True
    raise ValueError(
        f"cannot save: {name} has dtype {values.dtype} with values such as {values.ravel()[:3].tolist()!r}; "
        "only numbers, bools and strings can be stored without pickle"
    )


def save(est, path) -> Path:
    """Write the fitted ``est`` to ``path`` (a ``.npz``); see the module docstring. Returns the path."""
    from sklearn.utils.validation import check_is_fitted

    from ._base import STOCHASTIC_SOLVERS

    check_is_fitted(est)
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"save writes a NumPy .npz archive: give a path ending in .npz, got {str(path)!r}")
    params = {}
    for name, value in est.get_params(deep=False).items():
        try:
            params[name] = _plain(value, name)
        except TypeError:
            raise ValueError(
                f"cannot save: parameter {name}={value!r} is not a plain JSON value (None, bool, int, "
                f"float, str, or a tuple/list/dict of them); est.set_params({name}=...) with one first"
            ) from None
    fitted = {key: _plain(getattr(est, key), key) for key in _COMMON if key != "dtype"}
    fitted["dtype"] = str(est.net_.thetas[0].dtype).removeprefix("torch.")
    arrays = npz_arrays(est.net_)
    arrays["loss_curve_"] = np.asarray(est.loss_curve_, dtype=np.float64)
    if est.validation_scores_ is not None:
        arrays["validation_scores_"] = np.asarray(est.validation_scores_, dtype=np.float64)
    if hasattr(est, "classes_"):
        arrays["classes_"], fitted["classes_object"] = _label_array(np.asarray(est.classes_), "classes_")
        fitted["multilabel"] = bool(est._multilabel)
    if hasattr(est, "feature_names_in_"):
        arrays["feature_names_in_"], _ = _label_array(est.feature_names_in_, "feature_names_in_")
    if getattr(est, "_generator", None) is not None:
        arrays["generator_state"] = est._generator.get_state().numpy()
    doc = {"format": FORMAT, "version": VERSION, "class": type(est).__name__, "params": params}
    optimizer = _optimizer_state(est) if est.solver in STOCHASTIC_SOLVERS else None
    if optimizer is not None:
        groups, tensors = optimizer
        doc["optimizer"] = groups
        arrays.update(tensors)
    doc["fitted"] = fitted
    arrays["estimator"] = np.array(json.dumps(doc))
    _check_loads(type(est), arrays)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save to {str(path)!r}: {str(path.parent)!r} is no directory")
    write_atomically(path, lambda f: np.savez(f, **arrays))  # a failed save leaves no half-written file
    return path


def _check_loads(cls, arrays: dict) -> None:
    """Refuse, before anything is written, what ``cls.load`` would refuse to read back: load's own
    checks (:func:`_from_arrays`) on the arrays about to be written. Catches a parameter set to a
    bad value after fit (``set_params`` validates nothing, scikit-learn's convention) and one that no
    longer describes the fitted network (``hidden_layer_sizes``, ``activation``, the solver of the
    saved optimizer state). Costs a copy of Θ in memory."""

    def bad(what: str) -> ValueError:
        return ValueError(
            f"cannot save: {what}; load would refuse such a file: set the parameter back to a valid "
            "value (the one it was fitted with) with est.set_params(...), or fit again"
        )

    stored = dict(arrays)  # _from_arrays pops the JSON entries, not the arrays themselves
    arch = json.loads(str(stored.pop("architecture")))
    _from_arrays(cls, stored, arch, "the file", bad)


def _optimizer_state(est):
    """({"param_groups": …, "scalars": …}, {"optimizer.<i>.<key>": array}) of the solver's state, or
    None when there is none or it is not plain (then a loaded estimator starts a fresh optimizer)."""
    engine = getattr(est, "_engine", None)
    state = engine.optimizer.state_dict() if engine is not None else getattr(est, "_optimizer_state", None)
    if not state:
        return None
    tensors, scalars = {}, {}
    try:
        for i, entry in state["state"].items():
            for key, value in entry.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{int(i)}.{key}"] = value.detach().cpu().numpy().copy()
                else:
                    scalars.setdefault(str(int(i)), {})[key] = _plain(value, key)
        groups = _plain(state["param_groups"], "param_groups")
    except (TypeError, KeyError, AttributeError):
        return None
    return {"param_groups": groups, "scalars": scalars}, tensors


# -- loading ---------------------------------------------------------------------------------------------
def load(cls, path):
    """The estimator saved at ``path`` by :func:`save`, as a ``cls``; see the module docstring."""
    path = Path(path)
    where = repr(str(path))
    require_file(path)
    arrays, arch = read_npz(path)

    def bad(what: str) -> ValueError:
        return ValueError(f"{where}: {what}; not a file written by {cls.__name__}.save (or it was changed)")

    return _from_arrays(cls, arrays, arch, where, bad)


def _from_arrays(cls, arrays: dict, arch: dict, where: str, bad):
    """Every check of :func:`load` on the file's ``arrays`` (``estimator`` is popped) and ``arch``,
    and the estimator they describe; ``bad(what)`` makes the error. :func:`save` runs it on what it
    is about to write, so that save refuses (with its own words) whatever load would refuse."""
    doc = _document(arrays, cls, where, bad)
    est = _estimator(cls, doc["params"], bad)
    fitted = doc["fitted"]
    for key, array in arrays.items():  # Θ exactly as saved: every Θ^(l) in the stored dtype
        if key.startswith("Theta") and array.dtype.name != fitted["dtype"]:
            raise bad(f"{key} has dtype {array.dtype}, but the file says {fitted['dtype']!r}")
    try:
        net = net_from_arrays(arrays, arch, where, backprop=est.backprop)
    except ValueError as err:
        raise bad(str(err).removeprefix(f"{where}: ")) from None
    _check_net(est, net, fitted, bad)
    _restore(est, net, fitted, arrays, doc.get("optimizer"), bad)
    return est


def _document(arrays: dict, cls, where: str, bad) -> dict:
    """The ``estimator`` JSON, checked: format, version, class, and every field with its type."""
    if "estimator" not in arrays:
        raise bad("it has no 'estimator' entry (a bare Θ file? read it with lecturenn.load_thetas)")
    raw = arrays.pop("estimator")
    if raw.dtype.kind != "U" or raw.size != 1:
        raise bad(
            f"'estimator' must be one JSON string, got an array of dtype {raw.dtype}, shape {raw.shape}"
        )
    try:
        doc = json.loads(str(raw.ravel()[0]))
    except (json.JSONDecodeError, RecursionError) as err:
        raise bad(f"'estimator' is not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(f"'estimator' does not say format {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise bad(f"format version {doc.get('version')!r}, but this lecturenn reads version {VERSION}")
    other = doc.get("class")
    if other != cls.__name__:
        if other in ("ThetaMLPClassifier", "ThetaMLPRegressor"):
            raise ValueError(f"{where}: it holds a {other}, not a {cls.__name__}: load it with {other}.load")
        raise bad(f"it names class {other!r}, not {cls.__name__}")
    fitted = doc.get("fitted")
    if not isinstance(doc.get("params"), dict) or not isinstance(fitted, dict):
        raise bad("'estimator' lacks its 'params' or 'fitted' object")
    need = dict(_COMMON)
    if "classes_" in arrays or cls.__name__ == "ThetaMLPClassifier":
        need.update(classes_object=(bool,), multilabel=(bool,))
    for key, types in need.items():
        if key not in fitted:
            raise bad(f"'fitted' lacks {key!r}")
        value = fitted[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise bad(f"fitted {key} = {value!r} has the wrong type")
    extra = sorted(set(fitted) - set(need))
    if extra:
        raise bad(f"'fitted' has unknown entries {extra}")
    for key in ("n_features_in_", "n_outputs_", "n_layers_", "n_iter_", "t_", "_no_improvement_count"):
        if fitted[key] < 0:
            raise bad(f"fitted {key} = {fitted[key]} is negative")
    return doc


def _estimator(cls, params: dict, bad):
    """A new ``cls`` with the stored parameters, validated as ``fit`` would; a parameter added after
    a file was written (:data:`ADDED_PARAMS`) gets its default."""
    names = set(cls._get_param_names())
    params = with_added_params(params, names)
    missing, extra = sorted(names - set(params)), sorted(set(params) - names)
    if missing or extra:
        raise bad(f"parameters missing {missing}, unknown {extra}")
    try:
        est = cls(**{k: _unplain(v) for k, v in params.items()})
        est._validate_params(device=False)  # saved on a GPU, loaded on a CPU: fit moves it back
    except (ValueError, TypeError) as err:
        raise bad(f"bad parameter ({err})") from None
    return est


def _check_net(est, net, fitted: dict, bad) -> None:
    """Θ must be the network that ``est``'s parameters and the fitted sizes describe."""
    from ._base import ACTIVATIONS, SK_OUT

    dtypes = {t.dtype for t in net.thetas}
    name = str(net.thetas[0].dtype).removeprefix("torch.")
    if len(dtypes) != 1 or name not in ("float32", "float64") or name != fitted["dtype"]:
        raise bad(f"Θ must be all float32 or all float64 as 'dtype' = {fitted['dtype']!r} says, got {dtypes}")
    want = [fitted["n_features_in_"], *est._hidden_sizes(), fitted["n_outputs_"]]
    if list(net.sizes) != want or fitted["n_layers_"] != len(want):
        raise bad(
            f"Θ's sizes {list(net.sizes)} differ from n_features_in_, hidden_layer_sizes="
            f"{est.hidden_layer_sizes!r} and n_outputs_: {want} (n_layers_ = {fitted['n_layers_']})"
        )
    if net.activation.name != ACTIVATIONS[est.activation]:
        raise bad(f"the hidden activation {net.activation.name!r} is not activation={est.activation!r}")
    if SK_OUT.get(net.head.name) != fitted["out_activation_"]:
        raise bad(f"the output head {net.head.name!r} is not out_activation_={fitted['out_activation_']!r}")


def _restore(est, net, fitted: dict, arrays: dict, optimizer, bad) -> None:
    """Set the fitted attributes of ``est`` from the checked file."""
    classifier = "classes_object" in fitted
    known = {f"Theta{l}" for l in range(1, len(net.thetas) + 1)}
    known |= {"loss_curve_", "validation_scores_", "classes_", "feature_names_in_", "generator_state"}
    extra = sorted(k for k in arrays if k not in known and not k.startswith("optimizer."))
    if extra:
        raise bad(f"unknown entries {extra}")
    curve = _floats(arrays, "loss_curve_", bad)
    if curve is None:
        raise bad("it lacks 'loss_curve_'")
    scores = _floats(arrays, "validation_scores_", bad)
    if classifier:
        _restore_classes(est, net, fitted, arrays, bad)
    elif "classes_" in arrays:
        raise bad("a regressor has no 'classes_'")
    elif net.head.name != est._head(net.sizes[-1]):
        raise bad(
            f"loss={est.loss!r} trains the {est._head(net.sizes[-1])} output head, not {net.head.name!r}"
        )
    if "feature_names_in_" in arrays:
        names = arrays["feature_names_in_"]
        if names.dtype.kind != "U" or names.shape != (fitted["n_features_in_"],):
            raise bad(
                f"feature_names_in_ must be {fitted['n_features_in_']} strings, got {names.dtype} "
                f"{names.shape}"
            )
        est.feature_names_in_ = names.astype(object)
    for key in _COMMON:
        if key != "dtype":
            setattr(est, key, fitted[key])
    est.loss_curve_ = curve.tolist()
    est.validation_scores_ = None if scores is None else scores.tolist()
    net.validate_inputs = False
    est.net_ = net
    est.thetas_ = [t.detach().numpy().copy() for t in net.thetas]
    est._engine, est._predict_cache = None, {}
    est._optimizer_state = _optimizer_from(est, optimizer, arrays, bad)
    if "generator_state" in arrays:
        state = arrays["generator_state"]
        est._generator = torch.Generator()
        try:
            if state.dtype != np.uint8 or state.ndim != 1:
                raise RuntimeError(f"dtype {state.dtype}, shape {state.shape}")
            est._generator.set_state(torch.from_numpy(state.copy()))
        except RuntimeError as err:
            raise bad(f"generator_state is not a torch generator state ({err})") from None


def _floats(arrays: dict, key: str, bad) -> np.ndarray | None:
    if key not in arrays:
        return None
    values = arrays[key]
    if values.dtype != np.float64 or values.ndim != 1:
        raise bad(f"{key} must be a 1-D float64 array, got {values.dtype} of shape {values.shape}")
    return values


def _restore_classes(est, net, fitted: dict, arrays: dict, bad) -> None:
    if "classes_" not in arrays:
        raise bad("a classifier file lacks 'classes_'")
    classes = arrays["classes_"]
    if classes.ndim != 1 or classes.dtype.kind not in _LABEL_KINDS or len(classes) < 1:
        raise bad(f"classes_ must be a 1-D array of numbers or strings, got {classes.dtype} {classes.shape}")
    if fitted["classes_object"]:
        if classes.dtype.kind != "U":
            raise bad("classes_object is set but classes_ are not strings")
        classes = classes.astype(object)
    if len(np.unique(classes)) != len(classes) or not np.array_equal(np.sort(classes), classes):
        raise bad(f"classes_ must be sorted and distinct, got {classes.tolist()!r}")
    multilabel, K, n = fitted["multilabel"], net.sizes[-1], len(classes)
    multiclass = not multilabel and n > 2
    if multilabel:
        ok = K == n and np.array_equal(classes, np.arange(n))
    else:
        ok = K == (n if multiclass else 1)
    head = "softmax" if multiclass else "sigmoid"
    if not ok or net.head.name != head:
        kind = "multi-label" if multilabel else ("multi-class" if multiclass else "binary")
        raise bad(f"{n} {kind} classes_ do not fit an output layer of {K} {net.head.name} units")
    est.classes_, est._multilabel, est._multiclass = classes, multilabel, multiclass


def _optimizer_from(est, stored, arrays: dict, bad):
    """The solver's state dict (tensors), checked against Θ, or None."""
    keys = [k for k in arrays if k.startswith("optimizer.")]
    if stored is None:
        if keys:
            raise bad(f"optimizer arrays {keys[:3]} without their 'optimizer' entry")
        return None
    try:
        groups = _unplain(stored["param_groups"])
        scalars = stored["scalars"]
        state: dict[int, dict] = {}
        for key in keys:
            _, i, name = key.split(".", 2)
            value = arrays[key]
            if value.dtype.kind != "f" or not np.isfinite(value).all():
                raise ValueError(f"{key} must hold finite floats")
            state.setdefault(int(i), {})[name] = torch.from_numpy(value.copy())
        for i, entries in scalars.items():
            state.setdefault(int(i), {}).update({k: _unplain(v) for k, v in entries.items()})
        probe = make_probe(est)  # the optimizer load_state_dict must accept, on zeros of Θ's shapes
        fresh = [{k: v for k, v in g.items() if k != "params"} for g in probe.param_groups]
        probe.load_state_dict({"state": state, "param_groups": groups})
        shapes = [p.shape for g in probe.param_groups for p in g["params"]]
        for g, f in zip(probe.param_groups, fresh, strict=True):
            # options (amsgrad, maximize, nesterov, …) as the estimator sets them; numbers in the
            # ranges the optimizer's own constructor checks (lr may have been lowered by a schedule)
            flags = [k for k, v in f.items() if k not in _KERNEL and isinstance(v, (bool, str, type(None)))]
            changed = sorted(((set(g) ^ set(f)) - {"params"}) | {k for k in flags if g.get(k) != f[k]})
            if changed:
                raise ValueError(f"param_groups' {changed} differ from those of solver={est.solver!r}")
            if not (isinstance(g["lr"], (int, float)) and 0 < g["lr"] < float("inf")):
                raise ValueError(f"lr = {g['lr']!r}")
            numbers = {k: v for k, v in g.items() if k != "params" and k not in _KERNEL}
            type(probe)([torch.zeros(1, dtype=probe.param_groups[0]["params"][0].dtype)], **numbers)
        for i, entries in state.items():
            if not 0 <= i < len(shapes):  # the fused kernels trust the shapes: check every tensor
                raise ValueError(f"state for parameter {i}, but the solver has {len(shapes)}")
            for name, value in entries.items():
                want = () if name == "step" else tuple(shapes[i])
                if not isinstance(value, torch.Tensor) and value is not None:
                    raise ValueError(f"optimizer.{i}.{name} = {value!r} is not an array")
                if isinstance(value, torch.Tensor) and tuple(value.shape) != want:
                    raise ValueError(f"optimizer.{i}.{name} has shape {tuple(value.shape)}, not {want}")
                if name in _NON_NEGATIVE and isinstance(value, torch.Tensor) and (value < 0).any():
                    raise ValueError(f"optimizer.{i}.{name} must be >= 0")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as err:
        raise bad(f"bad optimizer state ({err})") from None
    return {"state": state, "param_groups": groups}


def make_probe(est):
    """A throw-away optimizer of ``est``'s solver over zeros shaped like its parameters."""
    from ._engine import make_optimizer

    thetas = est.net_.thetas if hasattr(est, "net_") else None
    shapes = [t.shape for t in thetas]
    dtype = thetas[0].dtype
    if est.solver == "lamb":
        params = [torch.nn.Parameter(torch.zeros(s, dtype=dtype)) for s in shapes]
    else:
        params = [torch.nn.Parameter(torch.zeros(sum(int(np.prod(s)) for s in shapes), dtype=dtype))]
    return make_optimizer(est.solver, params, est)
