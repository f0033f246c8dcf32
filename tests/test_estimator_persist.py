"""est.save(path) / ThetaMLPClassifier.load(path): an .npz of plain arrays and JSON, never pickle.

Promises tested as properties: predictions round-trip bitwise (every predict method, every target
kind, both dtypes, lbfgs and early stopping); the parameters and the fitted state come back equal
and of the same types; a loaded estimator keeps training exactly as the saved one (partial_fit,
warm_start); and every tampered file is refused with one ValueError line naming the problem.
"""

import functools
import json
import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

import lecturenn
from lecturenn.estimators import ThetaMLPClassifier, ThetaMLPRegressor

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
FITTED = (
    "n_features_in_ n_outputs_ n_layers_ out_activation_ n_iter_ t_ loss_ loss_curve_ best_loss_ "
    "validation_scores_ best_validation_score_ _no_improvement_count"
).split()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@functools.cache
def fit_cases():
    """(name, fitted estimator, X) for every kind of target and the solvers with their own state."""
    X, y = X_IRIS, Y_IRIS
    labels = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]  # pandas-like str labels
    Xm, Ym = make_multilabel_classification(60, 5, n_classes=3, random_state=0)
    Xr, yr = make_regression(80, 4, n_targets=2, random_state=0)
    kw = dict(hidden_layer_sizes=(6, 5), max_iter=8, random_state=0)
    return [
        ("multiclass-adam", ThetaMLPClassifier(**kw).fit(X, y), X),
        ("binary-object-str", ThetaMLPClassifier(**kw, class_weight={0: 1.0, 1: 2.0}).fit(X, y > 0), X),
        ("str-labels-sgd", ThetaMLPClassifier(**kw, solver="sgd").fit(X, labels), X),
        ("multilabel-lbfgs", ThetaMLPClassifier(**kw, solver="lbfgs").fit(Xm, Ym), Xm),
        ("early-stopping-f64", ThetaMLPClassifier(**kw, early_stopping=True, dtype="float64").fit(X, y), X),
        ("regressor-lamb", ThetaMLPRegressor(**kw, solver="lamb", activation="tanh").fit(Xr, yr), Xr),
    ]


@pytest.mark.parametrize("case", range(6))
def test_round_trip_is_bitwise(tmp_path, case):
    name, est, X = fit_cases()[case]
    path = est.save(tmp_path / "model.npz")
    back = type(est).load(path)
    assert type(back) is type(est)
    assert np.array_equal(back.predict(X), est.predict(X)), name
    assert back.predict(X).dtype == est.predict(X).dtype
    assert back.score(X, est.predict(X)) == est.score(X, est.predict(X))
    if hasattr(est, "predict_proba"):
        assert np.array_equal(back.predict_proba(X), est.predict_proba(X))
        assert np.array_equal(back.predict_log_proba(X), est.predict_log_proba(X))
        assert back.classes_.dtype == est.classes_.dtype and np.array_equal(back.classes_, est.classes_)
    for a, b in zip(back.thetas_, est.thetas_):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    params, saved = back.get_params(), est.get_params()
    assert params == saved and all(type(params[k]) is type(saved[k]) for k in saved)  # a tuple stays a tuple
    for attr in FITTED:
        assert getattr(back, attr) == getattr(est, attr) or (
            np.isnan(getattr(back, attr)) and np.isnan(getattr(est, attr))
        ), attr
    # the Θ part is lecturenn.interop.files' format: load_thetas reads the same network
    net = lecturenn.load_thetas(path)
    assert all(np.array_equal(t.detach().numpy(), s) for t, s in zip(net.thetas, est.thetas_))


def test_feature_names_and_class_weight_keys_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(X_IRIS, columns=["a", "b", "c", "d"])
    est = ThetaMLPClassifier((5,), max_iter=3, random_state=0, class_weight={0: 1, 1: 2.5, 2: 1}).fit(
        X, Y_IRIS
    )
    back = ThetaMLPClassifier.load(est.save(tmp_path / "m.npz"))
    assert back.feature_names_in_.dtype == object and list(back.feature_names_in_) == list("abcd")
    assert back.class_weight == {0: 1, 1: 2.5, 2: 1} and all(type(k) is int for k in back.class_weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a DataFrame with the same names: no warning
        assert np.array_equal(back.predict(X), est.predict(X))


@pytest.mark.parametrize("solver", ["adam", "sgd", "lamb"])
def test_loaded_estimator_keeps_training_exactly(tmp_path, solver):
    """partial_fit continues with the saved optimizer state and shuffling generator: the loaded copy
    and the original take bitwise the same steps; a warm-started fit too."""
    est = ThetaMLPClassifier((7,), solver=solver, max_iter=4, batch_size=32, random_state=1)
    est.fit(X_IRIS, Y_IRIS)
    back = ThetaMLPClassifier.load(est.save(tmp_path / "m.npz"))
    for _ in range(3):
        est.partial_fit(X_IRIS, Y_IRIS)
        back.partial_fit(X_IRIS, Y_IRIS)
    assert np.array_equal(back.predict_proba(X_IRIS), est.predict_proba(X_IRIS))
    assert back.t_ == est.t_ and back.loss_curve_ == est.loss_curve_
    est.set_params(warm_start=True).fit(X_IRIS, Y_IRIS)
    back.set_params(warm_start=True).fit(X_IRIS, Y_IRIS)
    assert np.array_equal(back.predict_proba(X_IRIS), est.predict_proba(X_IRIS))


def test_params_that_are_not_json_are_refused_and_nothing_is_written(tmp_path):
    est = ThetaMLPClassifier((3,), max_iter=2, random_state=np.random.RandomState(0)).fit(X_IRIS, Y_IRIS)
    with pytest.raises(
        ValueError, match=r"^cannot save: parameter random_state=RandomState.*set_params"
    ) as e:
        est.save(tmp_path / "m.npz")
    assert "\n" not in str(e.value) and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="path ending in .npz"):
        ThetaMLPClassifier((3,), max_iter=2).fit(X_IRIS, Y_IRIS).save(tmp_path / "m.pkl")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ThetaMLPClassifier().save(tmp_path / "m.npz")


# -- tampered files ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    est = ThetaMLPClassifier((6,), max_iter=3, random_state=0, n_iter_no_change=1).fit(X_IRIS, Y_IRIS)
    return est.save(tmp_path_factory.mktemp("good") / "good.npz")


def _arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _doc(arrays):
    return json.loads(str(arrays["estimator"]))


def _with_doc(arrays, change):
    doc = _doc(arrays)
    change(doc)
    return {**arrays, "estimator": np.array(json.dumps(doc))}


def _without(arrays, key):
    return {k: v for k, v in arrays.items() if k != key}


TAMPERED = {
    "missing Theta2": (lambda a: _without(a, "Theta2"), "stored sizes [4, 6, 3] do not match"),
    "missing estimator": (lambda a: _without(a, "estimator"), "no 'estimator' entry"),
    "missing loss_curve_": (lambda a: _without(a, "loss_curve_"), "lacks 'loss_curve_'"),
    "wrong Θ shape": (lambda a: {**a, "Theta2": np.zeros((3, 5), np.float32)}, "do not chain"),
    "Θ against sizes": (lambda a: _with_doc(a, lambda d: d["fitted"].update(n_features_in_=3)), "sizes"),
    "Θ against hidden sizes": (
        lambda a: _with_doc(a, lambda d: d["params"].update(hidden_layer_sizes={"tuple": [7]})),
        "hidden_layer_sizes",
    ),
    "NaN weight": (lambda a: {**a, "Theta2": np.full_like(a["Theta2"], np.nan)}, "NaN or inf"),
    "wrong version": (lambda a: _with_doc(a, lambda d: d.update(version=2)), "version 2"),
    "other format": (lambda a: _with_doc(a, lambda d: d.update(format="evil")), "format"),
    "unknown class": (lambda a: _with_doc(a, lambda d: d.update({"class": "os.system"})), "os.system"),
    "garbage JSON": (lambda a: {**a, "estimator": np.array("{not json")}, "not valid JSON"),
    "JSON not a string": (lambda a: {**a, "estimator": np.zeros(3)}, "one JSON string"),
    "unknown parameter": (lambda a: _with_doc(a, lambda d: d["params"].update(evil=1)), "unknown"),
    "missing parameter": (lambda a: _with_doc(a, lambda d: d["params"].pop("alpha")), "missing"),
    "bad parameter value": (
        lambda a: _with_doc(a, lambda d: d["params"].update(activation="nope")),
        "activation",
    ),
    "untagged JSON object": (
        lambda a: _with_doc(a, lambda d: d["params"].update(class_weight={"0": 1})),
        "untagged",
    ),
    "fitted value of the wrong type": (
        lambda a: _with_doc(a, lambda d: d["fitted"].update(n_iter_="3")),
        "n_iter_",
    ),
    "classes against outputs": (lambda a: {**a, "classes_": np.arange(4)}, "classes_"),
    "unsorted classes": (lambda a: {**a, "classes_": np.array([2, 1, 0])}, "sorted"),
    "wrong head": (
        lambda a: _with_doc(a, lambda d: d["fitted"].update(out_activation_="logistic")),
        "head",
    ),
    "dtype against Θ": (lambda a: {**a, "Theta1": a["Theta1"].astype(np.float64)}, "float32"),
    "integer Θ": (lambda a: {**a, "Theta1": a["Theta1"].astype(np.int32)}, "int32"),
    "complex Θ": (lambda a: {**a, "Theta1": a["Theta1"].astype(np.complex64)}, "complex64"),
    "deep JSON": (lambda a: {**a, "estimator": np.array("[" * 100000 + "]" * 100000)}, "not valid JSON"),
    "2-D loss curve": (lambda a: {**a, "loss_curve_": np.zeros((2, 2))}, "1-D float64"),
    "extra entry": (lambda a: {**a, "payload": np.zeros(2)}, "unknown entries"),
    "optimizer state shape": (
        lambda a: {**a, "optimizer.0.exp_avg": np.zeros(5, np.float32)},
        "optimizer",
    ),
    "generator state": (lambda a: {**a, "generator_state": np.zeros(3, np.uint8)}, "generator"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_file_is_refused_with_one_line(good_file, tmp_path, case):
    change, words = TAMPERED[case]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **change(_arrays(good_file)))
    with pytest.raises(ValueError, match=str(bad).replace("\\", "\\\\")) as err:
        ThetaMLPClassifier.load(bad)
    assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_object_array_truncated_and_foreign_files_are_refused(good_file, tmp_path):
    evil = tmp_path / "evil.npz"
    np.savez(evil, **{**_arrays(good_file), "classes_": np.array([print, 1, 2], dtype=object)})  # pickled
    with pytest.raises(ValueError, match="object array.*never unpickles"):
        ThetaMLPClassifier.load(evil)
    data = good_file.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        short = tmp_path / f"short{cut}.npz"
        short.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="short") as err:
            ThetaMLPClassifier.load(short)
        assert "\n" not in str(err.value)
    pickled = tmp_path / "model.npz"
    pickled.write_bytes(pickle.dumps(ThetaMLPClassifier()))
    with pytest.raises(ValueError, match="never unpickles"):
        ThetaMLPClassifier.load(pickled)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(ValueError, match="garbage"):
        ThetaMLPClassifier.load(garbage)
    bare = lecturenn.save_thetas(ThetaMLPClassifier.load(good_file).net_, tmp_path / "bare.npz")
    with pytest.raises(ValueError, match="load_thetas"):
        ThetaMLPClassifier.load(bare)
    with pytest.raises(FileNotFoundError):
        ThetaMLPClassifier.load(tmp_path / "absent.npz")


def test_a_file_saved_for_cuda_loads_anywhere(good_file, tmp_path):
    """device='cuda' is a parameter, not a requirement of the file: it loads (on the CPU) without CUDA."""
    arrays = _with_doc(_arrays(good_file), lambda d: d["params"].update(device="cuda"))
    np.savez(tmp_path / "cuda.npz", **arrays)
    back = ThetaMLPClassifier.load(tmp_path / "cuda.npz")
    assert back.device == "cuda" and back.net_.thetas[0].device.type == "cpu"
    assert np.array_equal(back.predict(X_IRIS), ThetaMLPClassifier.load(good_file).predict(X_IRIS))


def test_a_classifier_file_is_refused_by_the_regressor(good_file):
    with pytest.raises(ValueError, match="holds a ThetaMLPClassifier.*ThetaMLPClassifier.load"):
        ThetaMLPRegressor.load(good_file)


# -- save refuses what load would refuse (set_params validates nothing until fit) --------------------------
def _fitted(**kw):
    return ThetaMLPClassifier((6,), max_iter=2, random_state=0, **kw).fit(X_IRIS, Y_IRIS)


# (parameter, value set after fit, words the refusal must hold): each a value load refuses to read back
REFUSED_AFTER_FIT = [
    ("cuda_graph", "bad", "cuda_graph must be True or False, got 'bad'"),
    ("cuda_graph", None, "cuda_graph must be True or False, got None"),
    ("cuda_graph", 1, "cuda_graph must be True or False, got 1"),
    ("hidden_layer_sizes", (0,), "hidden_layer_sizes must be > 0, got [0]"),
    ("hidden_layer_sizes", "x", "hidden_layer_sizes must be > 0"),
    ("hidden_layer_sizes", (5,), "hidden_layer_sizes=(5,)"),  # valid, but not the fitted network
    ("activation", "nope", "activation must be one of"),
    ("activation", ["relu"], "activation must be a name"),
    ("activation", "tanh", "activation='tanh'"),  # valid, but not the fitted network's
    ("solver", "nope", "solver must be one of"),
    ("solver", "sgd", "solver='sgd'"),  # the saved state is adam's
    ("alpha", -1, "alpha must be a finite number >= 0, got -1"),
    ("alpha", float("nan"), "alpha must be a finite number >= 0, got nan"),
    ("alpha", 1e300, "alpha must be at most"),
    ("batch_size", 0, "batch_size must be 'auto' or an int >= 1, got 0"),
    ("batch_size", 2.5, "batch_size must be 'auto' or an int >= 1, got 2.5"),
    ("learning_rate_init", 0, "learning_rate_init must be a finite number > 0, got 0"),
    ("learning_rate_init", float("inf"), "learning_rate_init must be a finite number > 0, got inf"),
    ("max_iter", 0, "max_iter must be an int >= 1, got 0"),
    ("dtype", "float16", "dtype must be 'float32' or 'float64', got 'float16'"),
    ("backprop", "x", "backprop must be 'manual' or 'autograd', got 'x'"),
    ("momentum", 2, "momentum must be a number in [0, 1], got 2"),
    ("shuffle", None, "shuffle must be True or False, got None"),
    ("n_iter_no_change", 0, "n_iter_no_change must be an int >= 1"),
    ("validation_fraction", 1.0, "validation_fraction must be a number in (0, 1), got 1.0"),
    ("random_state", np.random.RandomState(0), "parameter random_state=RandomState"),
]


@pytest.mark.parametrize("how", ["set_params", "setattr"])
def test_save_refuses_every_value_load_would_refuse_and_writes_nothing(tmp_path, how):
    """Property: for each value, either save refuses (one line naming the parameter and its value;
    the file already at path is untouched, nothing else written) or load reads the file back."""
    fitted = _fitted()
    path = tmp_path / "m.npz"
    for name, value, words in REFUSED_AFTER_FIT:
        est = pickle.loads(pickle.dumps(fitted))
        est.set_params(**{name: value}) if how == "set_params" else setattr(est, name, value)
        path.write_bytes(b"an older file")
        with pytest.raises(ValueError, match=r"^cannot save: ") as err:
            est.save(path)
        message = str(err.value)
        assert words in message and "\n" not in message, (name, value, message)
        assert "set_params" in message, message  # what to do
        assert path.read_bytes() == b"an older file" and [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_save_refuses_a_regressor_loss_load_would_refuse(tmp_path):
    Xr, yr = make_regression(40, 3, random_state=0)
    est = ThetaMLPRegressor((4,), max_iter=2, random_state=0).fit(Xr, abs(yr))
    for value, words in [("bad", "loss must be one of"), ("poisson", "loss='poisson'")]:
        with pytest.raises(ValueError, match=r"^cannot save: .*set_params") as err:
            pickle.loads(pickle.dumps(est)).set_params(loss=value).save(tmp_path / "r.npz")
        assert words in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "fit_kw, after",
    [
        ({}, {"cuda_graph": True}),  # valid before a fit on a GPU: it is a parameter, not a requirement
        ({"hidden_layer_sizes": 6}, {}),
        ({"hidden_layer_sizes": [6]}, {"batch_size": 16, "verbose": 2, "alpha": 0}),
        ({"activation": "logistic", "dtype": None}, {"random_state": None, "n_iter_no_change": np.inf}),
        ({"activation": "leaky_relu:0.2", "class_weight": "balanced"}, {"device": "cpu"}),
        ({"backprop": "autograd", "solver": "sgd"}, {"learning_rate": "adaptive", "momentum": 0.5}),
        ({"solver": "adam"}, {"solver": "lbfgs", "max_fun": 7}),  # no optimizer state for L-BFGS
    ],
)
def test_every_valid_kind_of_parameter_value_round_trips(tmp_path, fit_kw, after):
    kw = {"hidden_layer_sizes": (6,), **fit_kw}
    est = ThetaMLPClassifier(max_iter=2, random_state=0, **kw).fit(X_IRIS, Y_IRIS).set_params(**after)
    back = ThetaMLPClassifier.load(est.save(tmp_path / "m.npz"))
    params, saved = back.get_params(), est.get_params()
    assert params.keys() == saved.keys()
    for k in saved:
        assert type(params[k]) is type(saved[k]) and (params[k] == saved[k] or params[k] != params[k]), k
    assert np.array_equal(back.predict_proba(X_IRIS), est.predict_proba(X_IRIS))


# -- a pickle made before a parameter existed ---------------------------------------------------------------
def _old_pickle(est) -> bytes:
    """What pickle.dumps gave before cuda_graph existed: the same state without that attribute."""
    old = pickle.loads(pickle.dumps(est))
    del old.cuda_graph
    blob = pickle.dumps(old)
    assert b"cuda_graph" not in blob
    return blob


@pytest.mark.parametrize("fitted", [False, True])
def test_an_old_pickle_gets_the_added_parameters_defaults(fitted):
    """pickle, joblib and deepcopy of an estimator that lacks an added parameter fill in the value
    an old save file means (_persist.ADDED_PARAMS): one rule for both."""
    from lecturenn.estimators._persist import ADDED_PARAMS

    est = _fitted() if fitted else ThetaMLPClassifier((6,), max_iter=2, random_state=0)
    old = pickle.loads(_old_pickle(est))
    joblib = pytest.importorskip("joblib")
    import copy
    import io

    buffer = io.BytesIO()
    joblib.dump(old, buffer)
    buffer.seek(0)
    for back in (old, joblib.load(buffer), copy.deepcopy(old)):
        assert back.get_params()["cuda_graph"] is False == ADDED_PARAMS["cuda_graph"]
        assert "ThetaMLPClassifier" in repr(back)
        if fitted:
            assert np.array_equal(back.predict(X_IRIS), est.predict(X_IRIS))
        back.fit(X_IRIS, Y_IRIS)  # trains as before (cuda_graph=False)
    # an old pickle that did have a value keeps it
    est.cuda_graph = True
    assert pickle.loads(pickle.dumps(est)).cuda_graph is True


def test_save_onto_a_symlink_writes_through_it(tmp_path):
    """As np.savez(path) does: the link stays a link, its target gets the file (the temporary file is
    made beside the target, so the rename cannot cross file systems)."""
    fitted = _fitted()
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "real.npz"
    target.write_bytes(b"an older file")
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    fitted.save(link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    back = ThetaMLPClassifier.load(target)
    np.testing.assert_array_equal(back.coefs_[0], fitted.coefs_[0])
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["real.npz"]
