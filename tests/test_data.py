"""The data layer: TensorBatches, the Playground / sklearn / table DataModules, DataInfo, errors.

Every DataError case matches a regex on its one-line message, so a vague error fails the test.
"""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lecturenn.data import (
    PLAYGROUND_SETS,
    SKLEARN_SETS,
    ArrayDataModule,
    DataError,
    DataInfo,
    PlaygroundDataModule,
    SklearnDataModule,
    TableDataModule,
    TensorBatches,
    playground_arrays,
)


def rows_of(batches):
    """The first column of X of every batch of one epoch, as a list of lists of ints."""
    return [X[:, 0].long().tolist() for X, _ in batches]


def toy(n=10):
    X = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3)
    return X, 2 * torch.arange(n)


def fake_trainer(epoch=0, rank=0, world=1, device="cpu"):
    return SimpleNamespace(
        current_epoch=epoch,
        global_rank=rank,
        world_size=world,
        strategy=SimpleNamespace(root_device=torch.device(device)),
    )


# ---- TensorBatches --------------------------------------------------------------------------------------


def test_batches_sizes_and_len():
    X, Y = toy(10)
    b = TensorBatches(X, Y, 4, shuffle=False)
    assert len(b) == 3
    assert [len(x) for x, _ in b] == [4, 4, 2]
    assert rows_of(b) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    d = TensorBatches(X, Y, 4, shuffle=True, drop_last=True)
    assert len(d) == 2 and [len(x) for x, _ in d] == [4, 4]


@pytest.mark.parametrize("full", [None, -1])
def test_full_batch_is_one_step_per_epoch(full):
    X, Y = toy(10)
    assert rows_of(TensorBatches(X, Y, full, shuffle=False)) == [list(range(10))]
    (only,) = rows_of(TensorBatches(X, Y, full, shuffle=True))
    assert sorted(only) == list(range(10)) and only != list(range(10))


def test_every_row_exactly_once_per_epoch_and_pairs_kept():
    X, Y = toy(23)
    b = TensorBatches(X, Y, 5, shuffle=True, seed=3)
    for _ in range(3):
        seen = []
        for x, y in b:
            assert torch.equal(y, 2 * x[:, 0].long())  # X and Y rows stay paired
            seen += x[:, 0].long().tolist()
        assert sorted(seen) == list(range(23))


def test_shuffle_depends_on_seed_and_epoch_only():
    X, Y = toy(50)
    a, b = TensorBatches(X, Y, 7, True, seed=1), TensorBatches(X, Y, 7, True, seed=1)
    a0, a1 = rows_of(a), rows_of(a)
    assert a0 == rows_of(b)  # same seed, same epoch
    assert a1 != a0  # next epoch reshuffles
    assert rows_of(TensorBatches(X, Y, 7, True, seed=2)) != a0  # other seed
    assert rows_of(b) == a1


def test_epoch_fn_gives_the_order_of_that_epoch_like_a_resumed_run():
    X, Y = toy(40)
    counted = TensorBatches(X, Y, 8, True, seed=5)
    orders = [rows_of(counted) for _ in range(4)]
    epoch = {"e": 3}
    resumed = TensorBatches(X, Y, 8, True, seed=5, epoch_fn=lambda: epoch["e"])
    assert rows_of(resumed) == orders[3] and rows_of(resumed) == orders[3]  # epoch_fn, not a counter
    epoch["e"] = 1
    assert rows_of(resumed) == orders[1]


@pytest.mark.parametrize("n", [10, 11])
@pytest.mark.parametrize("shuffle", [True, False])
def test_ddp_shards_disjoint_equal_length_and_covering(n, shuffle):
    X, Y = toy(n)
    shards = [TensorBatches(X, Y, 2, shuffle, seed=7, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 3
    rows = [sum(rows_of(s), []) for s in shards]
    assert len(rows[0]) == len(rows[1]) == -(-n // 2)
    assert set(rows[0]) | set(rows[1]) == set(range(n))
    assert len(set(rows[0]) & set(rows[1])) == (n % 2)  # only the wrap-around padding repeats
    for r in rows:
        assert len(set(r)) == len(r)


def test_batches_reject_bad_arguments():
    X, Y = toy(10)
    with pytest.raises(ValueError, match="X has 10 rows but Y has 9"):
        TensorBatches(X, Y[:9], 4, False)
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches(X, Y, 0, False)
    with pytest.raises(ValueError, match="rank"):
        TensorBatches(X, Y, 4, False, rank=2, world_size=2)


# ---- Playground -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", list(PLAYGROUND_SETS))
def test_playground_shapes_and_labels(dataset):
    X, y = playground_arrays(dataset, 201, 0.0, seed=0)
    assert X.shape == (201, 2) and y.shape == (201,) and X.dtype == np.float64
    assert np.isfinite(X).all() and np.abs(X).max() <= 6.5
    if PLAYGROUND_SETS[dataset] == "binary":
        assert set(np.unique(y)) == {-1, 1}
        share = (y == 1).mean()
        assert share == pytest.approx(0.5, abs=0.1 if dataset == "xor" else 0.01)
    else:
        assert y.dtype == np.float64 and np.abs(y).max() <= (1.2 if dataset == "plane" else 1.0)


def test_playground_noise_free_labels_follow_the_rule():
    X, y = playground_arrays("circle", 400, 0.0, seed=1)
    r = np.hypot(X[:, 0], X[:, 1])
    assert (r[y == 1] < 2.5).all() and (r[y == -1] >= 3.5).all()  # inner disc vs ring 0.7·5..5
    X, y = playground_arrays("xor", 400, 0.0, seed=1)
    assert (y == np.where(X[:, 0] * X[:, 1] >= 0, 1, -1)).all() and (np.abs(X) >= 0.3).all()
    X, y = playground_arrays("plane", 100, 0.0, seed=1)
    np.testing.assert_allclose(y, (X[:, 0] + X[:, 1]) / 10)
    X, y = playground_arrays("gauss", 400, 0.0, seed=1)
    assert (X[y == 1].mean(0) > 1.5).all() and (X[y == -1].mean(0) < -1.5).all()


def test_playground_noise_blurs_the_circle():
    X, y = playground_arrays("circle", 400, 0.5, seed=1)
    r = np.hypot(X[:, 0], X[:, 1])
    assert 0 < ((r < 2.5) != (y == 1)).mean() < 0.5


def test_playground_reproducible_with_seed():
    a, b, c = (playground_arrays("spiral", 100, 0.2, s) for s in (4, 4, 5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_playground_feature_expansion_values_and_aliases():
    feats = ["x1", "x2", "x1sq", "x2^2", "x1x2", "sin_x1", "sin(x2)"]
    dm = PlaygroundDataModule("xor", n=60, features=feats, standardize=False, dtype="float64")
    dm.setup()
    assert dm.info.feature_names == ["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)"]
    assert dm.info.n_features == 7 and dm.info.raw_features == 2
    raw, _ = dm.raw["train"]
    x1, x2 = raw[:, 0], raw[:, 1]
    expect = np.stack([x1, x2, x1**2, x2**2, x1 * x2, np.sin(x1), np.sin(x2)], axis=1)
    np.testing.assert_allclose(dm.train[0].numpy(), expect, rtol=1e-15)


def test_playground_module_info_and_targets():
    dm = PlaygroundDataModule("circle", n=300)
    dm.setup()
    info = dm.info
    assert (info.task, info.n_outputs, info.classes) == ("binary", 1, ["-1", "1"])
    assert info.target_names == ["label"]
    X, Y = dm.train
    assert X.dtype == torch.float32 and Y.shape == (len(X), 1) and Y.dtype == torch.float32
    raw_x, raw_y = dm.raw["train"]
    inner = np.hypot(raw_x[:, 0], raw_x[:, 1]) < 2.5
    assert np.array_equal(Y[:, 0].numpy() == 1, inner) and np.array_equal(raw_y, inner.astype(int))
    reg = PlaygroundDataModule("multigauss", n=100)
    assert reg.info.task == "regression" and reg.info.classes is None and reg.info.y_mean is not None


def test_playground_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dataset must be one of"):
        PlaygroundDataModule("moons")
    noise = r"noise \(the Playground's 0-50 %\) must be a finite number >= 0.0 and <= 0.5"
    with pytest.raises(ValueError, match=noise):
        PlaygroundDataModule(noise=0.7)
    with pytest.raises(ValueError, match=r"unknown features \['x3'\]"):
        PlaygroundDataModule(features=["x1", "x3"])
    with pytest.raises(ValueError, match="without repeats"):
        PlaygroundDataModule(features=["x1x2", "x1*x2"])


# ---- sklearn sets ---------------------------------------------------------------------------------------

EXPECTED = {  # task, n_features, n_outputs, first classes, image_shape, rows
    "digits": ("multiclass", 64, 10, ["0", "1"], [8, 8], 1797),
    "iris": ("multiclass", 4, 3, ["setosa", "versicolor"], None, 150),
    "wine": ("multiclass", 13, 3, ["class_0", "class_1"], None, 178),
    "breast_cancer": ("binary", 30, 1, ["malignant", "benign"], None, 569),
    "diabetes": ("regression", 10, 1, None, None, 442),
}


@pytest.fixture(scope="module")
def sk():
    mods = {name: SklearnDataModule(name, dtype="float64") for name in SKLEARN_SETS}
    for m in mods.values():
        m.setup()
    return mods


@pytest.mark.parametrize("name", list(SKLEARN_SETS))
def test_sklearn_info_and_split_sizes(sk, name):
    dm = sk[name]
    task, d, k, classes, image, n = EXPECTED[name]
    info = dm.info
    assert (info.task, info.n_features, info.n_outputs, info.image_shape) == (task, d, k, image)
    assert info.classes is None if classes is None else info.classes[:2] == classes
    assert len(info.feature_names) == d == info.raw_features
    sizes = [len(s[0]) for s in (dm.train, dm.val, dm.test)]
    assert sum(sizes) == n and sizes[1] == round(0.1 * n) and sizes[2] == round(0.2 * n)
    Y = dm.train[1]
    if task == "multiclass":
        assert Y.dtype == torch.int64 and Y.shape == (sizes[0],) and int(Y.max()) == k - 1
    else:
        assert Y.dtype == torch.float64 and Y.shape == (sizes[0], 1)


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer"])
def test_sklearn_split_is_stratified(sk, name):
    dm = sk[name]
    ys = [s[1].reshape(-1).long().numpy() for s in (dm.train, dm.val, dm.test)]
    total = np.bincount(np.concatenate(ys))
    n = total.sum()
    for y in ys:
        expected = total * len(y) / n
        assert np.abs(np.bincount(y, minlength=len(total)) - expected).max() <= 1.5


@pytest.mark.parametrize("name", list(SKLEARN_SETS))
def test_standardisation_fitted_on_train_only(sk, name):
    dm = sk[name]
    X = dm.train[0].numpy()
    varying = dm.raw["train"][0].std(0) > 0
    np.testing.assert_allclose(X.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(X.std(0)[varying], 1, atol=1e-10)
    assert (X[:, ~varying] == 0).all()  # constant columns (digits' corner pixels): std 1, not 0
    np.testing.assert_allclose(dm.info.x_mean, dm.raw["train"][0].mean(0), rtol=1e-12)
    for X_other in (dm.val[0].numpy(), dm.test[0].numpy()):
        assert np.abs(X_other.mean(0)).max() > 1e-3  # fitted elsewhere, so not exactly centred


def test_regression_targets_standardised_and_inverted(sk):
    dm = sk["diabetes"]
    Y = dm.train[1]
    assert float(Y.mean()) == pytest.approx(0, abs=1e-10) and float(Y.std(unbiased=False)) == pytest.approx(1)
    for split in ("train", "test"):
        back = dm.inverse_transform_y(getattr(dm, split)[1])
        np.testing.assert_allclose(back.numpy(), dm.raw[split][1], rtol=1e-12)
    assert torch.equal(sk["iris"].inverse_transform_y(sk["iris"].val[1]), sk["iris"].val[1])


def test_split_seeded_and_unstandardised_option():
    a, b, c = (SklearnDataModule("iris", seed=s) for s in (1, 1, 2))
    assert torch.equal(a.test[0], b.test[0]) and not torch.equal(a.test[0], c.test[0])
    raw = SklearnDataModule("iris", standardize=False, dtype="float64")
    assert raw.info.x_mean is None and raw.info.x_std is None
    assert np.array_equal(raw.train[0].numpy(), raw.raw["train"][0])


def test_base_arguments_validated():
    with pytest.raises(ValueError, match="val_fraction"):
        SklearnDataModule("iris", val_fraction=0)
    with pytest.raises(ValueError, match="test_fraction"):
        SklearnDataModule("iris", test_fraction=1.0)
    with pytest.raises(ValueError, match=r"val_fraction \+ test_fraction"):
        SklearnDataModule("iris", val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="batch_size"):
        SklearnDataModule("iris", batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        SklearnDataModule("iris", dtype="int32")
    with pytest.raises(ValueError, match="name must be one of"):
        SklearnDataModule("mnist")
    with pytest.raises(NotImplementedError, match="load_arrays"):
        ArrayDataModule().setup()


# ---- dataloaders ----------------------------------------------------------------------------------------


def test_dataloaders_without_and_with_a_trainer():
    dm = SklearnDataModule("iris", batch_size=16)
    train = dm.train_dataloader()
    assert isinstance(train, TensorBatches) and train.shuffle and len(train) == -(-105 // 16)
    val, test, pred = dm.val_dataloader(), dm.test_dataloader(), dm.predict_dataloader()
    assert not val.shuffle and torch.equal(next(iter(val))[0], dm.val[0][:16])
    assert torch.equal(next(iter(pred))[0], next(iter(test))[0])

    dm.trainer = fake_trainer(epoch=4, rank=1, world=2)
    shard = dm.train_dataloader()
    assert (shard.rank, shard.world_size, len(shard)) == (1, 2, -(-53 // 16))
    order = rows_via_index(shard, dm.train[0])
    assert order == rows_via_index(dm.train_dataloader(), dm.train[0])  # epoch from the trainer
    dm.trainer.current_epoch = 5
    assert order != rows_via_index(shard, dm.train[0])
    assert dm.val_dataloader().world_size == 1  # val/test are not sharded


def rows_via_index(batches, X_all):
    """Row numbers of every served row, found by matching rows of X_all."""
    out = []
    for X, _ in batches:
        out += [int((X_all == row).all(1).nonzero()[0]) for row in X]
    return out


# ---- tables ---------------------------------------------------------------------------------------------


def animals(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "label": np.array(["emu", "cat", "dog"])[np.arange(n) % 3],
            "c": rng.integers(0, 5, n),
        }
    )


def test_csv_with_string_classes_and_named_target(tmp_path):
    df = animals()
    df.to_csv(tmp_path / "zoo.csv", index=False)
    dm = TableDataModule(str(tmp_path / "zoo.csv"), target="label")
    info = dm.info
    assert (info.task, info.classes, info.n_outputs) == ("multiclass", ["cat", "dog", "emu"], 3)
    assert info.feature_names == ["a", "b", "c"] and info.target_names == ["label"]
    raw_x, y = dm.raw["train"]
    names = np.array(info.classes)[y]
    expect = df.set_index(["a"]).loc[raw_x[:, 0], "label"].to_numpy()
    assert np.array_equal(names, expect)
    sub = TableDataModule(str(tmp_path / "zoo.csv"), target="label", features=["c", "a"])
    assert sub.info.feature_names == ["c", "a"] and sub.info.raw_features == 2


def test_table_task_inference(tmp_path):
    rng = np.random.default_rng(0)
    n = 80
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "yes_no": np.where(rng.random(n) < 0.5, "yes", "no"),
            "small_int": np.arange(n) % 4,
            "many_int": np.arange(n),
            "real": rng.normal(size=n),
            "flag": (np.arange(n) % 2).astype(bool),
        }
    )
    path = tmp_path / "t.tsv"
    df.to_csv(path, sep="\t", index=False)
    cases = {"yes_no": "binary", "small_int": "multiclass", "many_int": "regression", "real": "regression"}
    for target, task in cases.items():
        dm = TableDataModule(str(path), target=target, features=["x"])
        assert dm.info.task == task, target
    binary = TableDataModule(str(path), target="yes_no", features=["x"])
    assert binary.info.classes == ["no", "yes"] and binary.train[1].shape[1] == 1
    flag = TableDataModule(str(path), target="flag", features=["x"])
    assert flag.info.task == "binary" and flag.info.classes == ["False", "True"]
    forced = TableDataModule(str(path), target="small_int", features=["x"], task="regression")
    assert forced.info.task == "regression" and forced.info.y_mean is not None


def test_parquet_matches_csv(tmp_path):
    df = animals()
    df.to_csv(tmp_path / "zoo.csv", index=False)
    df.to_parquet(tmp_path / "zoo.parquet")
    a = TableDataModule(str(tmp_path / "zoo.csv"), target="label")
    b = TableDataModule(str(tmp_path / "zoo.parquet"), target="label")
    assert a.info == b.info
    assert torch.equal(a.train[0], b.train[0]) and torch.equal(a.test[1], b.test[1])


def test_npz_single_target_and_multilabel(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(50) % 2, feature_names=np.array(["p", "q", "r"]))
    dm = TableDataModule(str(tmp_path / "d.npz"), target="y")
    assert (dm.info.task, dm.info.feature_names, dm.info.classes) == ("binary", ["p", "q", "r"], ["0", "1"])
    Y2 = (rng.random((50, 2)) < 0.5).astype(np.int64)
    np.savez(tmp_path / "m.npz", X=X, y=Y2)
    ml = TableDataModule(str(tmp_path / "m.npz"), target="y")
    assert (ml.info.task, ml.info.n_outputs, ml.info.target_names) == ("multilabel", 2, ["y[0]", "y[1]"])
    assert ml.info.feature_names == ["x0", "x1", "x2"]


def test_multilabel_and_multi_output_csv(tmp_path):
    rng = np.random.default_rng(2)
    n = 40
    df = pd.DataFrame({"f1": rng.normal(size=n), "f2": rng.normal(size=n)})
    for j in range(3):
        df[f"l{j}"] = (rng.random(n) < 0.5).astype(int)
    df["r1"], df["r2"] = rng.normal(size=n), rng.normal(size=n) * 10
    df.to_csv(tmp_path / "m.csv", index=False)
    ml = TableDataModule(str(tmp_path / "m.csv"), target=["l0", "l1", "l2"], features=["f1", "f2"])
    info = ml.info
    assert (info.task, info.n_outputs, info.classes, info.y_mean) == ("multilabel", 3, None, None)
    Y = ml.train[1]
    assert Y.shape == (len(Y), 3) and Y.dtype == torch.float32 and set(Y.unique().tolist()) <= {0.0, 1.0}
    reg = TableDataModule(str(tmp_path / "m.csv"), target=["r1", "r2"], features=["f1", "f2"])
    assert reg.info.task == "regression" and reg.info.n_outputs == 2
    np.testing.assert_allclose(reg.inverse_transform_y(reg.val[1]).numpy(), reg.raw["val"][1], rtol=1e-5)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = "a,b,label\n" + "".join(f"{i},{i % 7},{'xy'[i % 2]}\n" for i in range(30))


@pytest.mark.parametrize(
    "name, text, kwargs, match",
    [
        ("nothere.csv", None, {}, r"data file not found: .*nothere\.csv"),
        ("d.xlsx", GOOD, {}, r"unsupported data file type '\.xlsx'"),
        ("empty.csv", "", {}, "data file is empty"),
        ("header.csv", "a,b,label\n", {}, "data file has no rows"),
        (
            "d.csv",
            GOOD,
            {"target": "lable"},
            r"target column 'lable' not found in d\.csv; did you mean 'label'",
        ),
        ("d.csv", GOOD, {"features": ["a", "bb"]}, r"feature column 'bb' not found .*did you mean 'b'"),
        ("d.csv", GOOD.replace("3,3,", "3,red,"), {}, r"column 'b' is not numeric \(e\.g\. 'red' in row 3\)"),
        ("d.csv", GOOD.replace("4,4,", "4,,").replace("5,5,", "5,nan,"), {}, r"'b' has NaN/inf in 2 row"),
        ("d.csv", GOOD.replace("6,6,", "6,inf,"), {}, r"feature column 'b' has NaN/inf in 1 row.*rows 6\)"),
        ("d.csv", GOOD.replace("7,0,y", "7,0,"), {}, r"target column 'label' has NaN/missing values in 1"),
        ("d.csv", GOOD, {"task": "regression"}, r"target column 'label' is not numeric .*task='multiclass'"),
        ("d.csv", "a,b,label\n1,2,x\n3,4,y\n", {}, "need at least 3 rows"),
        ("d.csv", GOOD + "30,2,z\n", {}, r"class 'z' has only 1 row\(s\)"),
        ("d.csv", GOOD, {"target": "a", "task": "binary", "features": ["b"]}, "needs exactly 2 classes"),
        ("d.csv", GOOD, {"target": ["a", "b"], "task": "multilabel", "features": []}, "no feature columns"),
    ],
)
def test_table_errors_are_one_clear_line(tmp_path, name, text, kwargs, match):
    path = str(tmp_path / name) if text is None else write(tmp_path, name, text)
    kwargs = {"target": "label", **kwargs}
    dm = TableDataModule(path, **kwargs)  # cheap: nothing is read before setup
    with pytest.raises(DataError, match=match) as err:
        dm.setup()
    assert "\n" not in str(err.value)


def test_table_errors_for_npz_and_too_many_classes_for_the_split(tmp_path):
    np.savez(tmp_path / "nox.npz", y=np.arange(5))
    with pytest.raises(DataError, match=r"must hold arrays 'X' .* and 'y'"):
        TableDataModule(str(tmp_path / "nox.npz"), target="y").setup()
    np.savez(tmp_path / "obj.npz", X=np.array([[1, None]], dtype=object), y=np.arange(1))
    with pytest.raises(DataError, match="cannot read obj.npz"):
        TableDataModule(str(tmp_path / "obj.npz"), target="y").setup()
    np.savez(tmp_path / "ml.npz", X=np.ones((20, 2)), y=np.full((20, 2), 2))
    with pytest.raises(DataError, match="multilabel targets must be 0/1"):
        TableDataModule(str(tmp_path / "ml.npz"), target="y", task="multilabel").setup()
    # 30 rows, 10 classes of 3: val gets round(0.1 * 30) = 3 rows < 10 classes
    labels = np.repeat(np.arange(10), 3)
    np.savez(tmp_path / "k.npz", X=np.arange(60.0).reshape(30, 2), y=labels)
    with pytest.raises(DataError, match=r"cannot make a stratified split of 30 rows .* = 21/3/6") as err:
        TableDataModule(str(tmp_path / "k.npz"), target="y", task="multiclass").setup()
    assert "\n" not in str(err.value)


def test_table_task_argument_validated():
    with pytest.raises(ValueError, match="task must be 'auto' or one of"):
        TableDataModule("x.csv", target="y", task="classification")


# ---- transform, DataInfo, checkpoints -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda p: PlaygroundDataModule("spiral", n=120, noise=0.1, features=["x1", "x1x2", "sin_x2", "x2sq"]),
        lambda p: SklearnDataModule("digits"),
        lambda p: TableDataModule(p, target="label"),
    ],
)
def test_transform_of_raw_rows_equals_served_tensors(tmp_path, make):
    animals().to_csv(tmp_path / "zoo.csv", index=False)
    dm = make(str(tmp_path / "zoo.csv"))
    dm.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(dm.transform(dm.raw[split][0]), getattr(dm, split)[0])
    raw = torch.as_tensor(dm.raw["test"][0])
    assert torch.equal(dm.transform(raw[0]), dm.test[0][:1])  # one row, tensor input
    with pytest.raises(DataError, match=f"rows of {dm.info.raw_features} raw features"):
        dm.transform(np.ones((2, dm.info.raw_features + 1)))
    bad = dm.raw["val"][0][:3].copy()
    bad[1, 0] = np.nan
    with pytest.raises(DataError, match=r"1 row\(s\) contain NaN/inf \(first: row 1\)"):
        dm.transform(bad)


def test_datainfo_plain_types_and_round_trip():
    dm = SklearnDataModule("breast_cancer")
    d = dm.info.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain Python types only
    assert DataInfo.from_dict(d) == dm.info
    with pytest.raises(ValueError, match=r"missing keys \['classes'\]"):
        DataInfo.from_dict({k: v for k, v in d.items() if k != "classes"})
    with pytest.raises(ValueError, match="task must be one of"):
        DataInfo.from_dict({**d, "task": "ranking"})


def test_state_dict_round_trip_without_loading_data(tmp_path):
    dm = PlaygroundDataModule("circle", n=100, features=["x1", "x2", "x1^2"])
    assert dm.state_dict() == {}  # nothing to save before setup
    dm.setup()
    state = dm.state_dict()
    assert set(state) == {"info"} and state["info"] == dm.info.to_dict()
    fresh = PlaygroundDataModule("xor", n=5)  # other data, default features: the info decides
    fresh.load_state_dict(state)
    assert fresh.info == dm.info and fresh._raw is None  # nothing generated
    rows = np.array([[0.5, -1.0], [3.0, 2.0]])
    assert torch.equal(fresh.transform(rows), dm.transform(rows))

    iris = SklearnDataModule("iris")
    iris.setup()
    table = TableDataModule("/nonexistent/file.csv", target="y")  # would fail if it read the file
    assert table.state_dict() == {}
    table.load_state_dict(iris.state_dict())
    assert torch.equal(table.transform(iris.raw["val"][0]), iris.val[0])
    frame = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 7, "y": np.arange(40) % 2})
    frame.to_csv(tmp_path / "ab.csv", index=False)
    wrong = TableDataModule(str(tmp_path / "ab.csv"), target="y")
    wrong.load_state_dict(state)  # a Playground info on a table module: the info's transform (x1^2) ...
    assert torch.equal(wrong.transform(rows), dm.transform(rows)) and wrong._raw is None
    with pytest.raises(DataError, match="checkpoint's data does not match this data: raw_names"):
        wrong.setup()  # ... but never served on data of another kind


def test_load_state_dict_restandardises_and_checks_identity():
    dm = SklearnDataModule("iris", dtype="float64")
    dm.setup()
    state = dm.state_dict()
    state["info"]["x_mean"] = [m + 1.0 for m in state["info"]["x_mean"]]
    other = SklearnDataModule("iris", dtype="float64")
    other.setup()
    other.load_state_dict(state)
    np.testing.assert_allclose(other.train[0].numpy(), dm.train[0].numpy() - 1 / np.array(dm.info.x_std))
    state["info"]["classes"] = ["a", "b", "c"]
    with pytest.raises(DataError, match="checkpoint's data does not match this data: classes"):
        other.load_state_dict(state)


def test_fit_with_lightning_stores_info_in_the_checkpoint(tmp_path):
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)
            self.batches = []

        def training_step(self, batch, i):
            X, Y = batch
            self.batches.append(len(X))
            return torch.nn.functional.cross_entropy(self.lin(X), Y)

        def validation_step(self, batch, i):
            X, Y = batch
            self.log("val/loss", torch.nn.functional.cross_entropy(self.lin(X), Y), batch_size=len(X))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm, model = SklearnDataModule("iris", batch_size=None), Tiny()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert model.batches == [105, 105]  # full batch: one gradient step per epoch
    ckpt = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=False)
    assert DataInfo.from_dict(ckpt["SklearnDataModule"]["info"]) == dm.info


@pytest.mark.cuda
def test_batches_served_on_the_trainers_cuda_device():
    dm = SklearnDataModule("iris", batch_size=32)
    dm.trainer = fake_trainer(device="cuda")
    X, Y = next(iter(dm.train_dataloader()))
    assert X.is_cuda and Y.is_cuda and X.shape == (32, 4)
    assert dm.train_dataloader().X is dm.train_dataloader().X  # moved once, cached
    x = dm.transform(torch.as_tensor(dm.raw["val"][0], device="cuda"))
    assert x.is_cuda and torch.equal(x.cpu(), dm.val[0])
