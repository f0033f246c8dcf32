"""Issue 11 §3, inputs: the estimators, ``ThetaMLP`` and the data modules' ``transform`` take what
scikit-learn takes — DataFrames (X and a 2-D y), Series whatever their index, lists, Fortran-order
and strided numpy arrays — through one conversion, :func:`lecturenn.network.as_array`, and give
the same numbers as for a plain C-order array.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from lecturenn import ThetaMLP, backpropagate
from lecturenn.data import TableDataModule
from lecturenn.estimators import ThetaMLPClassifier, ThetaMLPRegressor
from lecturenn.network import as_array

N = 60
COLUMNS = ["a", "b", "c"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few epochs on purpose
        yield


def data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 3))
    labels = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0], axis=1).astype(int)
    targets = np.stack([X[:, 0] - X[:, 1], 2 * X[:, 2]], axis=1)
    return X, labels, targets


def small(cls, **kwargs):
    return cls((5,), max_iter=4, random_state=0, **{"batch_size": 16, **kwargs})


def same_fit(a, b):
    for ta, tb in zip(a.thetas_, b.thetas_):
        np.testing.assert_array_equal(ta, tb)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_classifier_takes_a_dataframe_multilabel_y(solver):
    X, labels, _ = data()
    Xf, Yf = pd.DataFrame(X, columns=COLUMNS), pd.DataFrame(labels, columns=["p", "q"])
    clf = small(ThetaMLPClassifier, solver=solver).fit(Xf, Yf)  # was: RuntimeError view size ...
    same_fit(clf, small(ThetaMLPClassifier, solver=solver).fit(X, labels))
    assert list(clf.feature_names_in_) == COLUMNS and clf.n_features_in_ == 3
    assert clf.predict(Xf).shape == (N, 2) and clf.predict_proba(Xf).shape == (N, 2)
    assert 0 <= clf.score(Xf, Yf) <= 1


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_regressor_takes_a_dataframe_multioutput_y(solver):
    X, _, targets = data()
    Xf, Yf = pd.DataFrame(X, columns=COLUMNS), pd.DataFrame(targets, columns=["u", "v"])
    reg = small(ThetaMLPRegressor, solver=solver).fit(Xf, Yf)  # was: RuntimeError view size ...
    same_fit(reg, small(ThetaMLPRegressor, solver=solver).fit(X, targets))
    assert list(reg.feature_names_in_) == COLUMNS
    assert reg.predict(Xf).shape == (N, 2)
    assert np.isfinite(reg.score(Xf, Yf))


def test_early_stopping_and_partial_fit_take_dataframes():
    X, labels, targets = data()
    Xf = pd.DataFrame(X, columns=COLUMNS)
    small(ThetaMLPRegressor, early_stopping=True).fit(Xf, pd.DataFrame(targets))
    small(ThetaMLPClassifier, early_stopping=True).fit(Xf, pd.DataFrame(labels))
    reg = small(ThetaMLPRegressor)
    for _ in range(2):
        reg.partial_fit(Xf, pd.DataFrame(targets, columns=["u", "v"]))
    assert reg.n_iter_ == 1 and reg.t_ == 2 * len(X) and list(reg.feature_names_in_) == COLUMNS
    clf = small(ThetaMLPClassifier)
    clf.partial_fit(Xf, pd.DataFrame(labels))
    clf.partial_fit(Xf, pd.DataFrame(labels))
    assert clf.predict(Xf).shape == (N, 2)


@pytest.mark.parametrize("kind", ["series-index", "fortran", "strided", "list"])
def test_other_array_likes_fit_as_the_plain_array(kind):
    X, labels, targets = data()
    wide = np.asfortranarray(np.repeat(X, 2, axis=1))
    convert = {
        "series-index": lambda X, y: (X, pd.Series(y, index=np.arange(100, 100 + N))),
        "fortran": lambda X, y: (np.asfortranarray(X), np.asfortranarray(y)),
        "strided": lambda X, y: (wide[:, ::2], np.repeat(y, 2, axis=0)[::2]),
        "list": lambda X, y: (X.tolist(), y.tolist()),
    }[kind]
    for cls, y in ((ThetaMLPClassifier, labels[:, 0]), (ThetaMLPRegressor, targets[:, 0])):
        same_fit(small(cls).fit(*convert(X, y)), small(cls).fit(X, y))
    if kind != "series-index":  # 2-D y in the same forms
        for cls, Y in ((ThetaMLPClassifier, labels), (ThetaMLPRegressor, targets)):
            same_fit(small(cls).fit(*convert(X, Y)), small(cls).fit(X, Y))


@pytest.fixture
def net():
    return ThetaMLP([3, 4, 1], hidden="tanh", output="identity", generator=0, dtype=torch.float64)


def test_cost_takes_a_series_with_any_index_and_a_dataframe(net):
    X, _, targets = data()
    y = targets[:, 0]
    expected = net.cost(torch.from_numpy(X), torch.from_numpy(y), 0.1)
    series = pd.Series(y, index=np.arange(10, 10 + N))  # was: TypeError ... object type 'Series'
    assert net.cost(X, series, 0.1) == expected
    frame = pd.DataFrame(X, columns=COLUMNS)  # was: TypeError ... expected sequence of length 60
    assert net.cost(frame, series, 0.1) == expected
    assert net.cost(np.asfortranarray(X), pd.DataFrame(y), 0.1) == expected
    assert net.cost(X.tolist(), y.tolist(), 0.1) == expected
    assert torch.equal(net(frame), net(torch.from_numpy(X)))
    assert torch.equal(net.propagate(frame).h, net(torch.from_numpy(X)))
    grads = backpropagate(net, frame, series, 0.1).D
    reference = backpropagate(net, torch.from_numpy(X), torch.from_numpy(y), 0.1).D
    assert all(torch.equal(grads[k], reference[k]) for k in reference)


def test_cost_takes_class_ids_in_a_series_with_any_index():
    X, labels, _ = data()
    net = ThetaMLP([3, 4, 2], output="softmax", generator=0, dtype=torch.float64)
    ids = labels[:, 0]
    expected = net.cost(torch.from_numpy(X), torch.from_numpy(ids))
    assert net.cost(pd.DataFrame(X), pd.Series(ids, index=np.arange(N)[::-1])) == expected


def test_bad_inputs_still_get_the_network_messages(net):
    with pytest.raises(TypeError, match="X must be a tensor or array of numbers"):
        net.cost(pd.DataFrame({"a": ["x"], "b": ["y"], "c": ["z"]}), [0.0])
    with pytest.raises(ValueError, match=r"X has 2 features \(columns\) but the input layer has s_1 = 3"):
        net(pd.DataFrame(np.ones((4, 2))))
    with pytest.raises(TypeError, match="X must be a tensor or array of numbers"):
        net([[1.0, 2.0, 3.0], [1.0]])  # ragged


def test_as_array_is_positional_and_c_ordered():
    s = pd.Series([1.0, 2.0, 3.0], index=[7, 8, 9])
    assert as_array(s).tolist() == [1.0, 2.0, 3.0]
    F = as_array(np.asfortranarray(np.ones((3, 2))))
    assert F.flags.c_contiguous
    t = torch.ones(2)
    assert as_array(t) is t
    a = np.ones((2, 2))
    assert as_array(a) is a  # no copy when nothing is to change


def test_transform_takes_dataframes_and_series(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"])
    frame["y"] = (frame.a > 0).astype(int)
    frame.to_csv(tmp_path / "t.csv", index=False)
    dm = TableDataModule(str(tmp_path / "t.csv"), target="y")
    rows = frame[["a", "b"]].iloc[5:9]  # index 5..8
    expected = dm.transform(rows.to_numpy())
    assert torch.equal(dm.transform(rows), expected)
    assert torch.equal(dm.transform(rows.iloc[0]), expected[:1])  # one row as a Series
    assert torch.equal(dm.transform(np.asfortranarray(rows.to_numpy())), expected)
