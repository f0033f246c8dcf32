"""Issue 11 §3, tables: the edges of a user's table where a run used to go wrong without a word
(a repeated column read as a feature, a class no training row holds) or die with a traceback (a
split too small for R²). Each is one ``DataError`` line: what is wrong, where, and what to do.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("omegaconf")  # skipped where omegaconf is missing (a bare GPU box)

from omegaconf import OmegaConf

from lecturenn.data import (
    DataError,
    NpyStreamDataModule,
    ParquetStreamDataModule,
    PlaygroundDataModule,
    TableDataModule,
)
from lecturenn.data.split import min_rows, split_sizes


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def csv(tmp_path, text: str, name: str = "t.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def random_rows(n: int, header: str, columns: int, seed: int = 0, labels=(0, 1)) -> str:
    """A CSV of n rows: ``columns - 1`` random features and a random label last."""
    rng = np.random.default_rng(seed)
    rows = [
        ",".join([*(f"{v:.6f}" for v in rng.random(columns - 1)), str(rng.choice(labels))]) for _ in range(n)
    ]
    return header + "\n" + "\n".join(rows) + "\n"


# ---- 1. repeated column names ----------------------------------------------------------------------
def test_a_repeated_target_column_is_refused_not_read_as_a_feature(tmp_path):
    # pandas reads the second 'label' as 'label.1': a feature equal to a (random) label, so a
    # model would score 1.0 on labels it cannot know
    path = csv(tmp_path, random_rows(60, "a,b,label,label", 4))
    with pytest.raises(DataError) as err:
        TableDataModule(path, target="label").setup()
    assert one_line(err) == (
        "t.csv: column name 'label' occurs 2 times in the header (pandas would read the second one as "
        "another column, 'label.1'); rename or drop the copies so that every column has its own name"
    )


def test_a_repeated_feature_column_is_refused(tmp_path):
    path = csv(tmp_path, random_rows(60, "a,a,label", 3))
    with pytest.raises(DataError, match=r"t\.csv: column name 'a' occurs 2 times in the header") as err:
        TableDataModule(path, target="label").setup()
    one_line(err)


def test_a_real_column_named_like_a_pandas_copy_is_no_false_alarm(tmp_path):
    path = csv(tmp_path, random_rows(60, "a,label.1,label", 3))
    dm = TableDataModule(path, target="label")
    dm.setup()
    assert dm.info.feature_names == ["a", "label.1"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": ["y1", "y1"]}, "t.csv: target names column 'y1' 2 times; name each target column once"),
        (
            {"target": "y1", "features": ["a", "a"]},
            "t.csv: features names column 'a' 2 times; name each feature once",
        ),
        (
            {"target": "y1", "features": ["a", "y1"]},
            "t.csv: column 'y1' is both a feature and a target; leave it out of features=[...]",
        ),
    ],
)
def test_a_column_named_twice_in_target_or_features_is_refused(tmp_path, kwargs, message):
    path = csv(tmp_path, random_rows(60, "a,b,y2,y1", 4))
    with pytest.raises(DataError) as err:
        TableDataModule(path, **kwargs).setup()
    assert one_line(err) == message


def test_an_npz_target_group_and_its_member_are_one_column_named_twice(tmp_path):
    np.savez(tmp_path / "t.npz", X=np.ones((30, 2)), y=np.zeros((30, 2)))
    with pytest.raises(DataError, match=r"t\.npz: target names column 'y\[0\]' 2 times"):
        TableDataModule(str(tmp_path / "t.npz"), target=["y", "y[0]"], task="regression").setup()


def test_npz_feature_names_repeated_are_named(tmp_path):
    names = np.array(["a", "b", "a"])
    np.savez(tmp_path / "t.npz", X=np.ones((30, 3)), y=np.arange(30) % 2, feature_names=names)
    with pytest.raises(DataError) as err:
        TableDataModule(str(tmp_path / "t.npz"), target="y").setup()
    assert one_line(err) == (
        "t.npz: name 'a' occurs 2 times in feature_names and target_names; "
        "give every column of X and y its own name"
    )


@pytest.fixture
def repeated_parquet(tmp_path):
    """A Parquet file whose schema repeats 'label' (pyarrow writes it; pandas cannot read it)."""
    n = np.arange(40)
    table = pa.table([n * 1.0, n * 2.0, n % 2, (n // 2) % 2], names=["a", "b", "label", "label"])
    pq.write_table(table, tmp_path / "dup.parquet")
    return str(tmp_path / "dup.parquet")


@pytest.mark.parametrize("target", ["label", "a"])
def test_a_parquet_table_with_a_repeated_name_is_refused(repeated_parquet, target):
    message = (
        "dup.parquet: column name 'label' occurs 2 times; rename or drop the copies so that every "
        "column has its own name"
    )
    with pytest.raises(DataError) as err:  # was: a screenful of pyarrow's FieldRef text
        TableDataModule(repeated_parquet, target=target).setup()
    assert one_line(err) == message
    with pytest.raises(DataError) as err:  # was: KeyError 'Field "label" exists 2 times in schema'
        ParquetStreamDataModule(repeated_parquet, target=target, block_rows=4).setup()
    assert one_line(err) == message


@pytest.fixture
def table_parquet(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    frame["y1"], frame["y2"] = frame.a + frame.b, frame.b - frame.c
    frame["label"] = np.where(frame.a > 0, "pos", "neg")
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=100)
    return str(tmp_path / "t.parquet")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"target": ["y1", "y1"]},
            "t.parquet: target names column 'y1' 2 times; name each target column once",
        ),
        (
            {"target": "label", "features": ["a", "a"]},
            "t.parquet: features names column 'a' 2 times; name each feature once",
        ),
        (
            {"target": "label", "features": ["a", "label"]},
            "t.parquet: column 'label' is both a feature and a target; leave it out of features=[...]",
        ),
    ],
)
def test_streamed_parquet_refuses_a_column_named_twice(table_parquet, kwargs, message):
    with pytest.raises(DataError) as err:
        ParquetStreamDataModule(table_parquet, block_rows=50, **kwargs).setup()
    assert one_line(err) == message


# ---- 2. several target columns ---------------------------------------------------------------------
def two_targets(tmp_path, y1, y2) -> str:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=len(y1)), "b": rng.normal(size=len(y1)), "y1": y1, "y2": y2})
    frame.to_csv(tmp_path / "two.csv", index=False)
    return str(tmp_path / "two.csv")


@pytest.mark.parametrize("as_config", [False, True])
def test_two_real_target_columns_are_a_regression_with_two_outputs(tmp_path, as_config):
    rng = np.random.default_rng(2)
    path = two_targets(tmp_path, rng.normal(size=80), rng.normal(size=80) * 10 + 3)
    target = OmegaConf.create({"t": ["y1", "y2"]}).t if as_config else ["y1", "y2"]  # data.target=[y1,y2]
    dm = TableDataModule(path, target=target)
    dm.setup()
    info = dm.info
    assert (info.task, info.n_outputs, info.target_names) == ("regression", 2, ["y1", "y2"])
    assert info.feature_names == ["a", "b"] and len(info.y_mean) == 2
    X, Y = dm.train
    assert tuple(Y.shape) == (len(X), 2)
    frame = pd.read_csv(path)  # both columns standardised on their own train statistics
    raw = dm.inverse_transform_y(Y).double().numpy()
    assert np.allclose(raw, frame[["y1", "y2"]].to_numpy()[dm._rows["train"]], atol=1e-5)


def test_two_zero_one_target_columns_stay_multilabel(tmp_path):
    rng = np.random.default_rng(3)
    path = two_targets(tmp_path, rng.integers(0, 2, 80), rng.integers(0, 2, 80))
    dm = TableDataModule(path, target=["y1", "y2"])
    dm.setup()
    assert (dm.info.task, dm.info.n_outputs, dm.info.classes) == ("multilabel", 2, None)


def test_streamed_parquet_with_two_real_targets_is_a_regression_with_two_outputs(table_parquet):
    dm = ParquetStreamDataModule(table_parquet, target=["y1", "y2"], features=["a", "b", "c"], block_rows=50)
    dm.setup()
    assert (dm.info.task, dm.info.n_outputs) == ("regression", 2)
    X, Y = next(iter(dm.train_dataloader()))
    assert Y.shape[1] == 2


# ---- 4. a class that no training block holds ---------------------------------------------------------
def sorted_classes(tmp_path, n=1000, rare=100):
    """A label-sorted .npy pair: classes 0 and 1 at random, then class 2 only in the last ``rare`` rows."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(n, 3))
    y = np.sort(rng.integers(0, 2, n))
    y[n - rare :] = 2
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return str(tmp_path / "X.npy"), str(tmp_path / "y.npy")


def test_a_class_whose_blocks_all_fall_outside_train_is_refused(tmp_path):
    features, targets = sorted_classes(tmp_path)
    refused = 0
    for seed in range(10):  # class 2 is one block of 10: in val/test for about 3 seeds in 10
        dm = NpyStreamDataModule(features, targets, block_rows=100, seed=seed)
        try:
            dm.setup()
        except DataError as err:
            refused += 1
            assert str(err) == (
                "y.npy: class '2' has no row in the training split (the split takes whole blocks of "
                "block_rows=100 rows, so a file sorted by label can leave all of a class in val/test "
                "blocks); shuffle the file's rows, or lower block_rows"
            )
        else:  # accepted: the training blocks hold class 2's rows
            assert any(stop > 900 for _, stop in dm.row_ranges("train"))
    assert 0 < refused < 10


def test_streamed_parquet_labels_are_checked_too(tmp_path):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(600, 2)), columns=["a", "b"])
    frame["kind"] = np.where(np.arange(600) < 500, np.where(rng.random(600) < 0.5, "x", "y"), "z")
    frame.to_parquet(tmp_path / "s.parquet", row_group_size=100)
    outcomes = set()
    for seed in range(8):
        dm = ParquetStreamDataModule(str(tmp_path / "s.parquet"), target="kind", block_rows=100, seed=seed)
        try:
            dm.setup()
            outcomes.add("ok")
        except DataError as err:
            assert str(err).startswith("s.parquet: class 'z' has no row in the training split")
            outcomes.add("refused")
    assert outcomes == {"ok", "refused"}


def test_a_multilabel_label_never_on_in_train_is_refused(tmp_path):
    rng = np.random.default_rng(6)
    Y = np.zeros((1000, 2))
    Y[:, 0] = rng.integers(0, 2, 1000)
    Y[900:, 1] = 1  # label 1 is on only in the last block
    np.save(tmp_path / "X.npy", rng.normal(size=(1000, 3)))
    np.save(tmp_path / "Y.npy", Y)
    outcomes = set()
    for seed in range(10):
        dm = NpyStreamDataModule(str(tmp_path / "X.npy"), str(tmp_path / "Y.npy"), block_rows=100, seed=seed)
        try:
            dm.setup()
            outcomes.add(dm.info.task)
        except DataError as err:
            assert str(err).startswith("Y.npy: label column 'y[1]' has no 1 in the training split")
            outcomes.add("refused")
    assert outcomes == {"multilabel", "refused"}


# ---- 5. too few rows for the split ---------------------------------------------------------------------
def regression_csv(tmp_path, n: int) -> str:
    rng = np.random.default_rng(7)
    body = "\n".join(f"{a:.4f},{a * 2 + 0.1 * e:.4f}" for a, e in zip(rng.normal(size=n), rng.normal(size=n)))
    return csv(tmp_path, "a,y\n" + body + "\n", "r.csv")


@pytest.mark.parametrize(
    "n, message",
    [
        (3, "cannot make a split of 3 rows into train/val/test = 1/1/1"),
        (12, "cannot make a split of 12 rows into train/val/test = 9/1/2"),
    ],
)
def test_a_regression_table_too_small_for_r2_is_refused_with_the_rows_needed(tmp_path, n, message):
    with pytest.raises(DataError) as err:  # was: a traceback from R² at the end of validation
        TableDataModule(regression_csv(tmp_path, n), target="y").setup()
    assert one_line(err) == (
        f"{message} (val_fraction=0.1, test_fraction=0.2): a regression's R² needs at least 2 rows in "
        "val and in test; use at least 15 rows, or change val_fraction/test_fraction"
    )
    dm = TableDataModule(regression_csv(tmp_path, 15), target="y")  # the number it names is enough
    dm.setup()
    assert dm.split_sizes() == {"train": 10, "val": 2, "test": 3}


def test_a_two_row_regression_table_names_the_rows_it_needs(tmp_path):
    with pytest.raises(DataError) as err:
        TableDataModule(regression_csv(tmp_path, 2), target="y", task="regression").setup()
    assert one_line(err) == (
        "need at least 15 rows for a train/val/test split; got 2 "
        "(a regression's R² needs at least 2 rows in val and in test)"
    )


@pytest.mark.parametrize("n", [3, 12])
def test_playground_regression_too_small_for_r2_is_refused(n):
    with pytest.raises(DataError, match=r"R² needs at least 2 rows in val and in test; use at least 15 rows"):
        PlaygroundDataModule("plane", n=n).setup()


def test_playground_classification_too_small_names_the_class():
    with pytest.raises(DataError, match=r"class '(-1|1)' has only 1 row\(s\)"):
        PlaygroundDataModule("circle", n=3).setup()


def test_a_stratified_split_names_the_rows_it_needs_and_that_is_enough(tmp_path):
    labels = np.repeat(np.arange(10), 3)  # 30 rows, 10 classes: val gets 3 rows < 10 classes
    np.savez(tmp_path / "k.npz", X=np.arange(60.0).reshape(30, 2), y=labels)
    with pytest.raises(DataError) as err:
        TableDataModule(str(tmp_path / "k.npz"), target="y", task="multiclass").setup()
    text = one_line(err)
    assert text.startswith("cannot make a stratified split of 30 rows into train/val/test = 21/3/6 ")
    assert "a stratified split needs at least 10 rows (one per class) in each part" in text
    need = int(text.split("use at least ")[1].split()[0])
    assert need == min_rows(0.1, 0.2, 10, 10) == 95
    labels = np.arange(need) % 10
    np.savez(tmp_path / "k.npz", X=np.arange(2.0 * need).reshape(need, 2), y=labels)
    TableDataModule(str(tmp_path / "k.npz"), target="y", task="multiclass").setup()


@pytest.mark.parametrize("val, test", [(0.1, 0.2), (0.2, 0.2), (0.05, 0.3), (0.25, 0.25), (0.01, 0.01)])
@pytest.mark.parametrize("need", [1, 2, 5])
def test_min_rows_is_the_fewest_that_split(val, test, need):
    m = min_rows(val, test, need, need)
    ok = [min(split_sizes(n, val, test)) >= need for n in (m - 1, m)]
    assert ok == [False, True] or (m == 3 and ok[1])


def test_a_streamed_regression_with_a_one_row_val_split_is_refused(tmp_path):
    rng = np.random.default_rng(8)
    np.save(tmp_path / "X.npy", rng.normal(size=(12, 2)))
    np.save(tmp_path / "y.npy", rng.normal(size=12))
    dm = NpyStreamDataModule(str(tmp_path / "X.npy"), str(tmp_path / "y.npy"), block_rows=1)
    with pytest.raises(DataError) as err:
        dm.setup()
    assert one_line(err) == (
        "X.npy: the split gives val 1 and test 2 row(s) (the split takes whole blocks of block_rows=1 "
        "rows); a regression's R² needs at least 2 rows in val and in test: add rows, or change "
        "block_rows or val_fraction/test_fraction"
    )


# ---- 6. the non-numeric value quoted is the offending one ------------------------------------------
def test_the_non_numeric_message_quotes_the_bad_value_not_row_0(tmp_path):
    # an .npz of strings: every column is text, x0 all numbers; the bad value is x1's 'oops'
    X = np.array([["1.5", "2"], ["2.5", "3"], ["3.5", "oops"]] * 10)
    np.savez(tmp_path / "s.npz", X=X, y=np.arange(30) % 2)
    with pytest.raises(DataError) as err:
        TableDataModule(str(tmp_path / "s.npz"), target="y").setup()
    assert one_line(err) == (
        "s.npz: feature column 'x1' is not numeric (e.g. 'oops' in row 2); "
        "encode it as numbers or leave it out with features=[...]"
    )


def test_numbers_stored_as_text_are_named_as_such(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0] * 10, "b": ["0.5", "1.5", "2.5"] * 10, "y": [0, 1, 1] * 10})
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError) as err:
        TableDataModule(str(tmp_path / "t.parquet"), target="y").setup()
    assert one_line(err) == (
        "t.parquet: feature column 'b' is not numeric (e.g. '0.5' in row 0, a number stored as text); "
        "encode it as numbers or leave it out with features=[...]"
    )


def test_a_date_column_is_named_by_its_dtype(tmp_path):
    frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=30), "y": np.arange(30) % 2})
    frame.to_parquet(tmp_path / "d.parquet")
    with pytest.raises(
        DataError, match=r"feature column 'when' is not numeric \(e\.g\. Timestamp.* in row 0, dtype "
    ):
        TableDataModule(str(tmp_path / "d.parquet"), target="y").setup()


def test_a_regression_target_quotes_its_first_bad_value(tmp_path):
    rows = [f"{i},{i * 0.5}" for i in range(20)]
    rows[13] = "13,n.a."
    path = csv(tmp_path, "a,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        TableDataModule(path, target="y", task="regression").setup()
    assert one_line(err).startswith(
        "t.csv: target column 'y' is not numeric (e.g. 'n.a.' in row 13) but task"
    )
