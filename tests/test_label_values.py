"""Class labels are reported as the user passed them, never after a conversion wrapped or rounded them.

A uint64 label ≥ 2**63 cast to int64 reads negative; Python ints beyond int64 in a list become rounded
floats (int64 and uint64 mixed) or an object array in numpy. Each refusal must name the value given,
and every label that fits must train the same as its int64 twin.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from lecturenn import ThetaMLP

BIG = 2**63 + 5  # 9223372036854775813: int64 would read it as -9223372036854775803
X4 = torch.randn(3, 4, dtype=torch.float64)


def _net(backprop="manual"):
    return ThetaMLP([4, 5, 3], output="softmax", backprop=backprop, dtype=torch.float64)


# (labels for 3 rows, K = 3; words the error must contain)
OUT_OF_RANGE = {
    "numpy uint64 >= 2**63": (np.array([0, 1, BIG], dtype=np.uint64), f"[0, {BIG}] (dtype uint64)"),
    "torch uint64 >= 2**63": (torch.tensor([0, 1, BIG], dtype=torch.uint64), f"[0, {BIG}] (dtype uint64)"),
    "only uint64 >= 2**63": (np.array([BIG, BIG, 2**64 - 1], dtype=np.uint64), f"[{BIG}, {2**64 - 1}]"),
    "list with 2**63": ([0, 1, 2**63], f"[0, {2**63}]"),
    "list with 2**64": ([0, 1, 2**64], f"the integer {2**64}, beyond int64 and uint64"),
    "numpy uint64 7": (np.array([0, 1, 7], dtype=np.uint64), "labels in [0, 7]"),
    "numpy uint32 2**32-1": (np.array([0, 1, 2**32 - 1], dtype=np.uint32), f"[0, {2**32 - 1}]"),
    "torch uint32 2**32-1": (torch.tensor([0, 1, 2**32 - 1], dtype=torch.uint32), f"[0, {2**32 - 1}]"),
    "numpy uint8 255": (np.array([0, 1, 255], dtype=np.uint8), "labels in [0, 255]"),
    "numpy int8 -3": (np.array([0, 1, -3], dtype=np.int8), "labels in [-3, 1]"),
    "list -1": ([0, 1, -1], "labels in [-1, 1]"),
    "float 3.0": ([0.0, 1.0, 3.0], "must be integers in [0, 3), got dtype torch.float64"),
    "float 3.5": ([0.0, 1.0, 3.5], "got dtype torch.float64"),
    "float 1e30": ([0.0, 1.0, 1e30], "got dtype torch.float64"),
    "float nan": ([0.0, 1.0, float("nan")], "got dtype torch.float64"),
    "bool": ([True, False, True], "got dtype torch.bool"),
}


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
def test_a_refused_label_is_named_as_given(case, weighted, backprop):
    Y, words = OUT_OF_RANGE[case]
    net = _net(backprop)
    weight = torch.ones(3, dtype=torch.float64) if weighted else None
    with pytest.raises((ValueError, TypeError)) as err:
        net.cost(X4, Y, sample_weight=weight)
    message = str(err.value)
    assert words in message and "\n" not in message, message
    assert "-9223372036854775" not in message  # never the wrapped int64 reading
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize(
    "Y",
    [
        np.array([0, 2, 1], dtype=np.uint64),
        torch.tensor([0, 2, 1], dtype=torch.uint64),
        np.array([0, 2, 1], dtype=np.uint32),
        np.array([0, 2, 1], dtype=np.int8),
        [0, 2, 1],
    ],
)
def test_labels_that_fit_cost_the_same_as_int64_labels(Y):
    net = _net()
    assert net.cost(X4, Y).item() == net.cost(X4, torch.tensor([0, 2, 1])).item()


def test_a_python_int_beyond_every_dtype_in_x_is_named():
    net = ThetaMLP([2, 3, 1], output="identity")
    with pytest.raises(TypeError, match=f"X must be a tensor.*the integer {2**64}, beyond int64"):
        net.cost([[2**64, 0]], [[0.0]])
    assert torch.isfinite(net.cost([[2**63, 0]], [[0.0]]))  # exactly 2**63 as a float, as before


# -- the estimators: labels are classes, any integers; refusals name the user's values ----------------------
def test_the_classifier_keeps_uint64_labels_as_given_like_scikit_learn():
    from sklearn.neural_network import MLPClassifier

    from lecturenn.estimators import ThetaMLPClassifier

    X = np.random.default_rng(0).normal(size=(12, 3))
    y = np.array([0, 1, BIG, 2**64 - 1] * 3, dtype=np.uint64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = ThetaMLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
        reference = MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)
    assert est.classes_.dtype == reference.classes_.dtype == np.uint64
    assert np.array_equal(est.classes_, reference.classes_)
    assert set(est.predict(X)) <= set(y.tolist()) and 0 <= est.score(X, y) <= 1
    fresh = ThetaMLPClassifier((4,), max_iter=2, random_state=0)
    with pytest.raises(ValueError, match=str(BIG)) as err:
        fresh.partial_fit(X, y, classes=[0, 1, 2, 3])
    assert "-9223372036854775" not in str(err.value)


@pytest.mark.parametrize(
    "column, names",
    [
        (np.array([0, 5, BIG], dtype=np.uint64), ["0", "5", str(BIG)]),
        (np.array([0.0, 5.0, 1e30]), ["0.0", "5.0", "1e+30"]),  # integral floats beyond int64 stay floats
        (np.array([0.0, 5.0, 7.0]), ["0", "5", "7"]),  # integral floats that fit are ints, as before
    ],
)
def test_a_table_class_column_keeps_its_labels(tmp_path, column, names):
    pd = pytest.importorskip("pandas")
    from lecturenn.data.tables import TableDataModule

    frame = pd.DataFrame({"a": np.arange(30.0), "label": np.tile(column, 10)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    dm = TableDataModule(str(tmp_path / "t.csv"), target="label", task="multiclass")
    dm.setup("fit")
    assert dm.info.classes == names
