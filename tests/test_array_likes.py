"""Every entry point that takes raw X or Y converts it one way (:mod:`lecturenn.arrays`).

A pandas Series or DataFrame is read by position whatever its index (here 19, 18, …, 10: a label
lookup would read nothing or the wrong rows), a list as its numbers, a Fortran-order or strided
numpy array as its values — each giving exactly what the plain C-order array gives. What holds no
numbers keeps its error.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import lecturenn as ln
from lecturenn.arrays import as_array, to_tensor
from lecturenn.heads import get_head
from lecturenn.perceptron import batch_perceptron, perceptron_rule
from lecturenn.theta import check_input

N = 10
INDEX = list(range(N + 9, 9, -1))  # 19 .. 10: neither 0-based nor increasing


def _strided(A: np.ndarray) -> np.ndarray:
    """The same values as a view with non-unit (negative) strides."""
    big = np.repeat(A[::-1], 2, axis=0)[::-2]
    assert not big.flags.c_contiguous and np.array_equal(big, A)
    return big


def forms(A: np.ndarray) -> dict:
    """``A`` (1-D or 2-D) as each array-like a user may hand over."""
    if A.ndim == 1:
        return {
            "series": pd.Series(A, index=INDEX),
            "list": A.tolist(),
            "strided": _strided(A),
            "read-only": _read_only(A),
        }
    return {
        "dataframe": pd.DataFrame(A, index=INDEX, columns=[f"c{j}" for j in range(A.shape[1])]),
        "list": A.tolist(),
        "fortran": np.asfortranarray(A),
        "strided": _strided(A),
        "read-only": _read_only(A),
    }


def _read_only(A: np.ndarray) -> np.ndarray:
    A = A.copy()
    A.flags.writeable = False  # what pandas >= 3 hands out from .to_numpy()
    return A


RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, 3))
Y_REG = RNG.normal(size=(N, 2))
Y_01 = (X[:, 0] + X[:, 1] > 0).astype(np.float64)
Y_PM = 2 * Y_01 - 1
Y_CLASS = RNG.integers(0, 3, size=N)
Y_MULTI = RNG.integers(0, 2, size=(N, 2)).astype(np.float64)

X_FORMS = sorted(forms(X))
Y1_FORMS = sorted(forms(Y_01))


@pytest.fixture(autouse=True)
def no_warnings():
    """Converting must not warn (torch warns on read-only numpy arrays it would share)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
        assert torch.equal(a, b)
    else:
        np.testing.assert_array_equal(a, b)


# -- the conversion itself ------------------------------------------------------------------------
@pytest.mark.parametrize("form", X_FORMS)
def test_to_tensor_is_the_plain_array(form):
    A = forms(X)[form]
    assert_same(to_tensor(A), torch.from_numpy(X.copy()))
    assert_same(to_tensor(A, torch.float32), torch.from_numpy(X.astype(np.float32)))
    out = as_array(A)
    assert isinstance(out, np.ndarray) and out.flags.c_contiguous and np.array_equal(out, X)


def test_to_tensor_never_shares_a_read_only_array():
    A = _read_only(X)
    T = to_tensor(A)
    T[0, 0] = 123.0  # would write into the caller's read-only data if shared
    assert A[0, 0] == X[0, 0]
    W = X.copy()
    assert to_tensor(W).data_ptr() == W.ctypes.data  # a writable array is not copied


def test_network_as_array_is_the_same_function():
    from lecturenn import network

    assert network.as_array is as_array


# -- theta.check_input and ThetaLinear -----------------------------------------------------------
@pytest.mark.parametrize("form", X_FORMS)
def test_check_input(form):
    ref = torch.zeros(2, 4, dtype=torch.float64)
    assert_same(check_input(forms(X)[form], 3, ref), check_input(X, 3, ref))


@pytest.mark.parametrize("form", X_FORMS)
def test_theta_linear(form):
    layer = ln.ThetaLinear(3, 2, "sigmoid", generator=0, dtype=torch.float64)
    assert_same(layer(forms(X)[form]), layer(torch.from_numpy(X)))


@pytest.mark.parametrize("form", Y1_FORMS)
def test_check_input_series_is_1d_as_the_array_is(form):
    ref = torch.zeros(2, N + 1)
    with pytest.raises(ValueError, match=r"X must be 2-D .*got shape \(10,\).*unsqueeze\(0\)"):
        check_input(forms(Y_01)[form], N, ref)


# -- Head.prepare_targets -------------------------------------------------------------------------
TARGET_CASES = {  # head: (Y as numpy, K)
    "identity-2": ("identity", Y_REG, 2),
    "identity-1": ("identity", Y_01 * 3.5, 1),
    "sigmoid-1": ("sigmoid", Y_01, 1),
    "sigmoid-2": ("sigmoid", Y_MULTI, 2),
    "softmax-indices": ("softmax", Y_CLASS, 3),
    "softmax-one-hot": ("softmax", np.eye(3)[Y_CLASS], 3),
}


@pytest.mark.parametrize("case", sorted(TARGET_CASES))
def test_prepare_targets(case):
    head_name, Y, K = TARGET_CASES[case]
    head = get_head(head_name)
    want = head.prepare_targets(torch.from_numpy(Y.copy()), N, K, torch.float32, torch.device("cpu"))
    for A in forms(Y).values():
        assert_same(head.prepare_targets(A, N, K, torch.float32, torch.device("cpu")), want)


def test_prepare_targets_wrong_shape_is_named_for_a_dataframe():
    head = get_head("identity")
    Y = pd.DataFrame(Y_REG[:4], index=INDEX[:4])
    with pytest.raises(ValueError, match=r"Y has shape \(4, 2\); the identity head expects .*\(10, 2\)"):
        head.prepare_targets(Y, N, 2, torch.float32, torch.device("cpu"))


# -- ThetaMLP (X and Y) and the gradient check ---------------------------------------------------
@pytest.mark.parametrize("form", X_FORMS)
def test_theta_mlp_cost(form):
    net = ln.ThetaMLP([3, 4, 2], output="identity", generator=0, dtype=torch.float64)
    want = net.cost(X, Y_REG, 0.1)
    assert_same(net.cost(forms(X)[form], forms(Y_REG)[form], 0.1), want)


@pytest.mark.parametrize("form", X_FORMS)
def test_gradient_check(form):
    net = ln.ThetaMLP([3, 3, 3], "tanh", "softmax", generator=0)
    want = ln.gradient_check(net, X, Y_CLASS, lam=0.5)
    y_form = form if form in Y1_FORMS else "series"  # a DataFrame or Fortran X: a Series y
    got = ln.gradient_check(net, forms(X)[form], forms(Y_CLASS)[y_form], lam=0.5)
    assert got.relative_difference == want.relative_difference
    for l in want.numerical:
        assert_same(got.numerical[l], want.numerical[l])
        assert_same(got.analytic[l], want.analytic[l])
    assert net.thetas[0].grad is None  # the net itself is left alone


@pytest.mark.parametrize("form", Y1_FORMS)
def test_gradient_check_series_targets(form):
    net = ln.ThetaMLP([3, 2, 1], output="sigmoid", generator=1)
    want = ln.gradient_check(net, X, Y_01)
    got = ln.gradient_check(net, pd.DataFrame(X, index=INDEX), forms(Y_01)[form])
    assert got.relative_difference == want.relative_difference and got.passed


@pytest.mark.parametrize("bad", [None, "abc", [[1.0, 2.0, 3.0], [4.0]]], ids=["None", "str", "ragged"])
def test_gradient_check_names_x_that_holds_no_numbers(bad):
    net = ln.ThetaMLP([3, 2, 1], output="sigmoid", generator=1)
    with pytest.raises(TypeError, match=r"X must be a tensor or array of numbers"):
        ln.gradient_check(net, bad, Y_01)


# -- the perceptrons ------------------------------------------------------------------------------
@pytest.mark.parametrize("x_form", X_FORMS)
@pytest.mark.parametrize("y_form", Y1_FORMS)
@pytest.mark.parametrize("fn, y", [(perceptron_rule, Y_01), (batch_perceptron, Y_PM)], ids=["rule", "batch"])
def test_perceptrons(fn, y, x_form, y_form):
    # Python numbers (a list X) take torch's default dtype, as torch.tensor(list) gives them
    plain = torch.tensor(X.tolist()) if x_form == "list" else X
    want = fn(plain, y, max_epochs=20)
    got = fn(forms(X)[x_form], forms(y)[y_form], max_epochs=20)
    assert_same(got.theta, want.theta)
    assert got.errors_per_epoch == want.errors_per_epoch
    assert_same(got.predict(forms(X)[x_form]), want.predict(X))


@pytest.mark.parametrize("bad", [None, "abc", [[1.0, 2.0], [3.0]], np.array([["a", "b"]] * 2)])
def test_perceptron_names_x_and_y_that_hold_no_numbers(bad):
    with pytest.raises(TypeError, match=r"X must be a tensor or array of numbers"):
        perceptron_rule(bad, [0, 1])
    with pytest.raises(TypeError, match=r"y must be a tensor or array of labels"):
        perceptron_rule(np.zeros((2, 2)), bad)


def test_perceptron_y_series_of_the_wrong_length_is_named():
    with pytest.raises(ValueError, match="y has length 9 but X has 10 rows"):
        perceptron_rule(pd.DataFrame(X, index=INDEX), pd.Series(Y_01[:9], index=INDEX[:9]))


# -- the LightningModule's inference helpers -----------------------------------------------------
def _module(data_info=None):
    from lecturenn.training import ThetaMLPModule

    return ThetaMLPModule(3, 2, "regression", hidden_sizes=[4], init_seed=0, data_info=data_info)


def _info() -> dict:
    from lecturenn.data import DataInfo

    return DataInfo(
        task="regression",
        n_features=3,
        n_outputs=2,
        feature_names=["a", "b", "c"],
        target_names=["u", "v"],
        classes=None,
        x_mean=[1.0, -2.0, 0.5],
        x_std=[2.0, 0.5, 1.0],
        y_mean=[10.0, 0.0],
        y_std=[3.0, 1.0],
        image_shape=None,
        raw_features=3,
    ).to_dict()


@pytest.mark.parametrize("info", [None, "data_info"])
@pytest.mark.parametrize("form", X_FORMS)
def test_module_standardize_and_predict_scores(form, info):
    model = _module(_info() if info else None)  # without data info: the identity transform
    want = model.standardize(X)
    assert_same(model.standardize(forms(X)[form]), want)
    Z = want.numpy().astype(np.float64)
    scores = model.predict_scores(want)
    np.testing.assert_array_equal(model.predict_scores(forms(Z)[form]), scores)
    assert scores.shape == (N, 2)
