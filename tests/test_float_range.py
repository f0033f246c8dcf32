"""Numbers outside float32 (issue 10, item 7): statistics in float64 that cannot overflow, and a
column the training dtype cannot hold refused at load — never a silent inf or a column of zeros.

Finite float64 features of ±1e300 (x² overflows), of ~1e308 (their sum overflows) and ~1e39
(beyond float32) standardise correctly in memory and streamed; raw values outside float32
(standardize=false), regression targets outside it, and rows that overflow after
standardisation are one-line DataErrors naming the column, a value and its row.
"""

import json
import re
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import module_for

from lecturenn.data import DataError, NpyStreamDataModule, ParquetStreamDataModule, TableDataModule
from lecturenn.data.chunks import Moments
from lecturenn.data.scaling import network_inputs, standardisation, standardise
from lecturenn.data.split import split_indices

ROOT = Path(__file__).resolve().parents[1]
N = 80


def columns(seed=0, n=N, **cols):
    """A frame with the given columns plus a standard-normal 'b' and a 0/1 label 'y'."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"b": rng.standard_normal(n), "y": rng.integers(0, 2, n)})
    for name, values in cols.items():
        frame[name] = values
    return frame


def signed(scale, n=N, seed=1):
    """n values of magnitude in [0.5, 1)·scale with random signs."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n) * scale


def table(tmp_path, frame, name="t.csv", **kw):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return TableDataModule(str(path), kw.pop("target", "y"), **kw)


def scaled_stats(A, scale):
    """Mean and std of A computed on A/scale (where they cannot overflow), scaled back."""
    B = np.asarray(A, dtype=np.float64) / scale
    return B.mean(axis=0) * scale, B.std(axis=0) * scale


# ---- the statistics -------------------------------------------------------------------------------
def test_statistics_of_huge_columns_are_finite_and_right():
    A = np.stack([signed(1e300), np.random.default_rng(2).uniform(1.0, 1.7, N) * 1e308, signed(1.0)], 1)
    with np.errstate(over="ignore"):  # the textbook formulas overflow
        assert not np.isfinite(A.std(axis=0)[0]) and not np.isfinite(A.mean(axis=0)[1])
    mean, std = standardisation(A)
    for j, scale in enumerate((1e300, 1e308, 1.0)):
        m, s = scaled_stats(A[:, j], scale)
        assert mean[j] == pytest.approx(m, rel=1e-12, abs=1e-12 * scale)
        assert std[j] == pytest.approx(s, rel=1e-12)
    Z = standardise(A, mean, std)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), 1, rtol=1e-12)


def test_ordinary_columns_match_numpy_bit_for_bit():
    scale, offset = [1, 1e-3, 1e3, 1e50, 1e-50, 7], [5, 0.01, 5, 3e50, 0, -7]
    A = np.random.default_rng(3).standard_normal((500, 6)) * scale + offset
    mean, std = standardisation(A)
    assert np.array_equal(mean, A.mean(axis=0)) and np.array_equal(std, A.std(axis=0))
    assert np.array_equal(standardise(A, mean, std), (A - mean) / std)


def test_constant_columns_get_std_1_and_standardise_to_exactly_0():
    A = np.stack([np.full(N, 1.234567e39), np.full(N, 0.1), np.zeros(N), np.full(N, -1e300)], 1)
    mean, std = standardisation(A)
    assert np.array_equal(std, np.ones(4)) and np.array_equal(mean, A[0])
    assert (standardise(A, mean, std) == 0).all()


def test_a_column_of_tiny_numbers_is_standardised_not_zeroed():
    A = signed(1e-20)[:, None] + 3e-20
    mean, std = standardisation(A)
    assert std[0] == pytest.approx(A.std(), rel=1e-12)
    assert standardise(A, mean, std).std() == pytest.approx(1.0)


def test_streamed_moments_with_growing_scale_match_the_whole():
    """Chunks whose max |x| jumps (1 → 1e300 → 1e308) re-express what was seen without overflow."""
    rng = np.random.default_rng(4)
    parts = [rng.standard_normal((50, 2)), signed(1e300, 2 * 50).reshape(50, 2), np.full((3, 2), 1.5e308)]
    A = np.concatenate(parts)
    moments = Moments(2)
    for part in parts:
        moments.add(part)
    mean, std = moments.mean_std()
    m, s = scaled_stats(A, 1e308)
    np.testing.assert_allclose(mean, m, rtol=1e-10)
    np.testing.assert_allclose(std, s, rtol=1e-10)


def test_standardise_does_not_overflow_where_x_minus_mean_would():
    A = np.array([[1.7e308], [-1.7e308], [-1.7e308], [-1.7e308]])
    mean, std = standardisation(A)
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    with np.errstate(over="ignore"):
        assert not np.isfinite(A - mean).all()  # the plain formula's intermediate
    np.testing.assert_allclose(standardise(A, mean, std)[:, 0], [np.sqrt(3), *[-1 / np.sqrt(3)] * 3])


# ---- in memory: TableDataModule -------------------------------------------------------------------
def test_column_of_1e300_standardises_to_unit_variance_not_zero(tmp_path):
    dm = table(tmp_path, columns(a=signed(1e300)))
    dm.setup()
    j = dm.info.feature_names.index("a")
    X = dm.train[0][:, j].double()
    assert np.isfinite(dm.info.x_std[j]) and dm.info.x_std[j] > 1e299
    assert float(X.abs().max()) > 0.5 and float(X.std(unbiased=False)) == pytest.approx(1, rel=1e-6)
    assert float(X.mean()) == pytest.approx(0, abs=1e-6)
    for split in (dm.val, dm.test):
        assert torch.isfinite(split[0]).all() and split[0][:, j].abs().max() > 0.1


def test_column_mixing_values_near_1e308_works(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.uniform(1.0, 1.79, N) * 1e308
    a[::4] *= -1  # x − mean up to ~3e308 in float64
    dm = table(tmp_path, columns(a=a))
    j = dm.info.feature_names.index("a")
    assert np.isfinite(dm.info.x_mean[j]) and np.isfinite(dm.info.x_std[j])
    X = dm.train[0][:, j].double()
    assert float(X.std(unbiased=False)) == pytest.approx(1, rel=1e-6)
    m, s = scaled_stats(dm.raw["train"][0][:, dm.info.feature_names.index("a")], 1e308)
    assert dm.info.x_mean[j] == pytest.approx(m, rel=1e-12) and dm.info.x_std[j] == pytest.approx(
        s, rel=1e-12
    )


def test_1e39_trains_and_predicts_finite_numbers(tmp_path):
    dm = table(tmp_path, columns(a=np.random.default_rng(6).uniform(1, 3, N) * 1e39), batch_size=16)
    dm.setup()
    info = dm.info
    model = module_for(
        info,
        hidden_sizes=[4],
        optimizer=partial(torch.optim.SGD, lr=0.1),
    )
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    (result,) = trainer.test(model, datamodule=dm, verbose=False)
    assert all(np.isfinite(v) for v in result.values()), result
    raw = dm.raw["test"][0]
    X = dm.transform(raw)
    assert torch.equal(X, dm.test[0]) and torch.isfinite(X).all()
    assert np.isfinite(model.predict_scores(X)).all()
    assert torch.equal(network_inputs(raw, info, torch.float32), X)  # what predict.py should call


def test_1e39_without_standardisation_is_refused_naming_the_column(tmp_path):
    a = np.random.default_rng(7).uniform(1, 3, N)
    a[7] = 3e39
    dm = table(tmp_path, columns(a=a), standardize=False)
    with pytest.raises(DataError) as err:
        dm.setup()
    msg = str(err.value)
    assert msg == (
        "feature column 'a' has values (e.g. 3e+39 in row 7, 0-based) outside the float32 range "
        "(|x| <= 3.4e+38); rescale it, set standardize=true or leave it out with features=[...]"
    )
    assert table(tmp_path, columns(a=a), standardize=False, dtype="float64").train[0].dtype == torch.float64


def test_without_standardisation_a_column_that_float32_rounds_to_zero_is_refused(tmp_path):
    dm = table(tmp_path, columns(a=signed(1e-50)), standardize=False)
    with pytest.raises(DataError) as err:
        dm.setup()
    assert re.fullmatch(
        r"feature column 'a' has values \(e\.g\. -?[0-9.]+e-5\d in row \d+, 0-based\) that all round "
        r"to 0 in float32; rescale it or set standardize=true",
        str(err.value),
    ), err.value
    kept = table(tmp_path, columns(a=signed(1e-50)))  # standardised: an ordinary column
    j = kept.info.feature_names.index("a")
    assert float(kept.train[0][:, j].std(unbiased=False)) == pytest.approx(1, rel=1e-5)


def test_a_row_far_outside_the_training_range_is_refused_with_its_row(tmp_path):
    frame = columns(a=signed(1.0))
    _, _, test = split_indices(N, 0.1, 0.2, 0, frame["y"].to_numpy())  # the module's defaults
    row = int(test[3])
    a = signed(1.0)
    a[row] = 1e45  # fine in float64; (x − mean)/std ≈ 1e45 is not a float32
    with pytest.raises(DataError) as err:
        table(tmp_path, columns(a=a)).setup()
    assert str(err.value).startswith(
        f"feature column 'a' has values (e.g. 1e+45 in row {row}, 0-based) that overflow float32 "
        "after standardisation"
    )


def test_restored_statistics_that_do_not_fit_are_refused_and_the_old_ones_kept(tmp_path):
    dm = table(tmp_path, columns(a=signed(1.0)))
    dm.setup()
    before, X = dm.info, dm.train[0]
    state = dm.state_dict()
    state["info"]["x_std"] = [1e-40] * len(state["info"]["x_std"])  # z ≈ 1e40: not a float32
    with pytest.raises(DataError, match="that overflow float32 after standardisation"):
        dm.load_state_dict(state)
    assert dm.info == before and torch.equal(dm.train[0], X)


@pytest.mark.parametrize("standardize", [True, False])
def test_regression_target_outside_float32_is_refused(tmp_path, standardize):
    frame = columns(a=signed(1.0), y=np.random.default_rng(8).uniform(1, 3, N) * 1e39)
    with pytest.raises(DataError) as err:
        table(tmp_path, frame, standardize=standardize).setup()
    assert str(err.value).startswith("target column 'y' has values (e.g. ")
    assert str(err.value).endswith(
        "outside the float32 range (|x| <= 3.4e+38), the dtype of the predictions in its units; rescale it"
    )


def test_regression_target_of_1e300_in_float64_standardises(tmp_path):
    frame = columns(a=signed(1.0), y=signed(1e300, seed=9))
    dm = table(tmp_path, frame, task="regression", dtype="float64")
    Y = dm.train[1][:, 0]
    assert float(Y.std(unbiased=False)) == pytest.approx(1, rel=1e-12)
    back = dm.inverse_transform_y(dm.test[1])[:, 0].numpy()
    np.testing.assert_allclose(back, dm.raw["test"][1][:, 0], rtol=1e-12)


# ---- streamed ------------------------------------------------------------------------------------
def stream_files(tmp_path, X, y):
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return str(tmp_path / "X.npy"), str(tmp_path / "y.npy")


def rows_of(dm, split):
    return np.concatenate([np.arange(a, b) for a, b in dm.row_ranges(split)])


def huge_stream(n=2000):
    rng = np.random.default_rng(10)
    X = rng.standard_normal((n, 3))
    X[:, 0] *= 1e300
    X[:, 1] = X[:, 1] * 1e306 + 1.5e308  # its sum overflows float64
    return X, (X[:, 2] > 0).astype(np.int64)


@pytest.mark.parametrize("kind", ["npy", "parquet"])
def test_streamed_1e300_standardises_correctly(tmp_path, kind):
    X, y = huge_stream()
    if kind == "npy":
        dm = NpyStreamDataModule(*stream_files(tmp_path, X, y), block_rows=100, batch_size=64)
    else:
        pd.DataFrame(X, columns=["x0", "x1", "x2"]).assign(y=y).to_parquet(
            tmp_path / "t.parquet", row_group_size=500
        )
        dm = ParquetStreamDataModule(str(tmp_path / "t.parquet"), "y", block_rows=100, batch_size=64)
    dm.setup()
    train = X[rows_of(dm, "train")]
    scale = np.array([1e300, 1e308, 1.0])
    m, s = scaled_stats(train, scale)
    np.testing.assert_allclose(np.array(dm.info.x_mean) / scale, m / scale, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dm.info.x_std, s, rtol=1e-10)
    Xb = torch.cat([b[0] for b in dm.stream("train")])
    assert Xb.dtype == torch.float32 and torch.isfinite(Xb).all()
    Xb = Xb.double()
    np.testing.assert_allclose(Xb.mean(0).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(Xb.std(0, unbiased=False).numpy(), 1, rtol=1e-5)
    val = torch.cat([b[0] for b in dm.stream("val")])
    assert torch.equal(dm.transform(X[rows_of(dm, "val")]), val)


def test_streamed_float32_file_of_ordinary_numbers_keeps_the_fast_path(tmp_path):
    X = np.random.default_rng(11).standard_normal((1000, 3)).astype(np.float32) * 100 + 7
    dm = NpyStreamDataModule(*stream_files(tmp_path, X, (X[:, 0] > 7).astype(np.int8)), block_rows=100)
    dm.setup()
    assert dm._fast_for_file()
    val = torch.cat([b[0] for b in dm.stream("val")])
    assert torch.equal(dm.transform(X[rows_of(dm, "val")]), val)


@pytest.mark.parametrize(
    "case,message",
    [
        (
            "raw",
            r"X\.npy: feature column 'x0' has values \(e\.g\. -?[0-9.]+e\+300 in row \d+, 0-based\) outside "
            r"the float32 range \(\|x\| <= 3\.4e\+38\); rescale it or set standardize=true$",
        ),
        (
            "target",
            r"y\.npy: target column 'y' has values \(e\.g\. 3e\+39 in row 1234, 0-based\) outside the "
            r"float32 range \(\|x\| <= 3\.4e\+38\), the dtype of the predictions in its units; rescale it$",
        ),
    ],
)
def test_streamed_columns_that_do_not_fit_are_refused_at_setup(tmp_path, case, message):
    X, y = huge_stream()
    if case == "target":
        y = np.random.default_rng(12).standard_normal(len(X))
        y[1234] = 3e39
        X = X[:, 2:]
    kw = {"standardize": False} if case == "raw" else {}
    dm = NpyStreamDataModule(*stream_files(tmp_path, X, y), block_rows=100, **kw)
    with pytest.raises(DataError, match=message):
        dm.setup()


# ---- the app: one line, exit code 2 --------------------------------------------------------------
def train_app(tmp_path, *args) -> dict:
    """The app's training run in-process (train.train on the composed config: the CLI's code; the
    process contract is test_app.py's). Imported here: the rest of this file needs no Hydra."""
    pytest.importorskip("hydra")
    from test_app import QUIET, make_cfg
    from train import train

    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    try:
        return train(make_cfg(tmp_path / "run", [*args, "trainer.max_epochs=1", *QUIET]))
    finally:  # threads: auto and matmul_precision are set for the process
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)


@pytest.mark.slow
@pytest.mark.parametrize(
    "frame,args,column",
    [
        (columns(a=signed(3e39)), ["data.standardize=false"], "feature column 'a'"),
        (columns(a=signed(1.0), y=signed(3e39)), [], "target column 'y'"),
    ],
    ids=["feature-1e39-raw", "target-1e39"],
)
def test_cli_refuses_with_one_line_and_exit_code_2(tmp_path, capsys, frame, args, column):
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(SystemExit) as info:
        train_app(tmp_path, "data=table", f"data.path={tmp_path / 't.csv'}", "data.target=y", *args)
    err = capsys.readouterr().err
    assert info.value.code == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and column in errors[0] and "float32" in errors[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_cli_trains_on_a_column_of_1e300(tmp_path):
    columns(a=signed(1e300)).to_csv(tmp_path / "t.csv", index=False)
    train_app(tmp_path, "data=table", f"data.path={tmp_path / 't.csv'}", "data.target=y")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(np.isfinite(v) for k, v in metrics.items() if k.startswith(("test/", "val/", "train/")))


def test_streamed_row_far_outside_the_training_range_is_refused_with_its_row(tmp_path):
    X, y = huge_stream()
    probe = NpyStreamDataModule(*stream_files(tmp_path, X, y), block_rows=100)
    row = int(rows_of(probe, "test")[17])
    X[row, 2] = 1e45
    dm = NpyStreamDataModule(*stream_files(tmp_path, X, y), block_rows=100)
    with pytest.raises(DataError) as err:
        dm.setup()
    assert str(err.value).startswith(
        f"X.npy: feature column 'x2' has values (e.g. 1e+45 in row {row}, 0-based) that overflow float32 "
        "after standardisation"
    )
    with pytest.raises(DataError, match="overflow float32"):  # no half-set-up module is left behind
        dm.info
