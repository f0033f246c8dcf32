"""One raw → network transform, stored once (issue 12 §4).

The same raw rows go through the data module (its served batches and ``transform``), the
LightningModule (``standardize``, ``predict_tensor``) and ``predict.py`` to bitwise-identical network
inputs and outputs — the regression target inverse included; a checkpoint holds the data info once;
a checkpoint written the old way (the info three times: hyper-parameter, data module state, module
buffers) still loads, predicts, evaluates its data check and resumes.
"""

from functools import partial

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("hydra")  # predict.py is a Hydra app: skipped where hydra-core is missing
pytest.importorskip("omegaconf")

from conftest import module_for
from eval import data_mismatch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from predict import predict, table_inputs  # noqa: E402

from lecturenn.data import (  # noqa: E402
    DataError,
    DataInfo,
    DataTransform,
    NpyStreamDataModule,
    PlaygroundDataModule,
    SklearnDataModule,
)
from lecturenn.training import ThetaMLPModule  # noqa: E402
from lecturenn.training.checkpoint import load_checkpoint, load_module  # noqa: E402
from lecturenn.training.resume import check_resumable  # noqa: E402

FEATURES = ["x1", "x2", "x1^2", "sin(x1)", "x1*x2"]


def model_for(dm, **kwargs) -> ThetaMLPModule:
    info = dm.info
    return module_for(
        info,
        hidden_sizes=[5],
        init_seed=0,
        optimizer=partial(torch.optim.SGD, lr=0.1),
        **kwargs,
    )


def fit(model, dm, root, epochs=1, ckpt_path=None) -> str:
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return trainer.checkpoint_callback.best_model_path


def predict_file(tmp_path, ckpt, table: pd.DataFrame) -> pd.DataFrame:
    table.to_csv(tmp_path / "in.csv", index=False)
    cfg = {"ckpt_path": str(ckpt), "input": str(tmp_path / "in.csv"), "output": str(tmp_path / "out.csv")}
    predict(OmegaConf.create({**cfg, "overwrite": True, "batch_size": 1000}))  # one batch, as here
    return pd.read_csv(tmp_path / "out.csv", float_precision="round_trip")


def paths_of(tree, key, where=""):
    """Every path in a nested dict/list at which ``key`` occurs as a dict key."""
    found = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            here = f"{where}.{k}" if where else str(k)
            found += [here] if k == key else []
            found += paths_of(v, key, here)
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            found += paths_of(v, key, f"{where}[{i}]")
    return found


@pytest.mark.parametrize("dataset", ["plane", "circle"])  # regression (targets standardised), binary
def test_one_transform_bitwise_from_data_module_to_module_to_predict_py(tmp_path, dataset):
    dm = PlaygroundDataModule(dataset, n=200, noise=0.1, features=FEATURES, batch_size=32)
    dm.setup()
    ckpt = fit(model_for(dm), dm, tmp_path)
    model = load_module(ckpt)  # as eval.py / predict.py build it: from the checkpoint alone
    raw = dm.raw["test"][0]  # (n, 2) raw x1, x2

    served = dm.test[0]
    assert torch.equal(dm.transform(raw), served)
    assert torch.equal(model.standardize(raw), served)
    assert torch.equal(model.standardize(torch.as_tensor(raw)), served)
    assert torch.equal(DataInfo.from_dict(model.hparams.data_info).transform(raw), served)
    table = pd.DataFrame(raw, columns=["x1", "x2"])
    info = DataInfo.from_dict(model.hparams.data_info)
    assert torch.equal(table_inputs(table, info, model.net.thetas[0].dtype), served)  # predict.py's

    out = model.predict_tensor(served)  # regression: in the targets' units
    with torch.no_grad():
        assert torch.equal(out, dm.inverse_transform_y(model.net(served)) if dataset == "plane" else out)
    column = "prediction" if dataset == "plane" else "prob_1"
    written = predict_file(tmp_path, ckpt, table)[column].to_numpy()
    np.testing.assert_array_equal(written.astype(np.float32), out[:, 0].numpy())  # predict.py, bitwise
    if dataset == "plane":  # the inverse really undoes the standardisation of the served targets
        back = dm.inverse_transform_y(dm.test[1])[:, 0].double().numpy()
        np.testing.assert_allclose(back, dm.raw["test"][1][:, 0], rtol=1e-6, atol=1e-6)


def test_a_table_with_the_features_themselves_or_missing_a_raw_column(tmp_path):
    dm = PlaygroundDataModule("circle", n=100, features=["x1^2", "x2"])
    raw = dm.raw["val"][0]
    transform = dm.data_transform
    expanded = pd.DataFrame({"x1^2": raw[:, 0] ** 2, "x2": raw[:, 1]})  # no raw x1: the features
    X = table_inputs(expanded, dm.info, torch.float32)
    assert torch.equal(X, dm.val[0])
    with pytest.raises(DataError, match=r"input is missing feature column\(s\) \['x1\^2'\]; .*raw columns"):
        transform.for_columns(["x2", "label"])


def test_streamed_fast_path_is_recorded_so_every_caller_computes_the_same_numbers(tmp_path):
    X = np.random.default_rng(1).standard_normal((1500, 3)).astype(np.float32) * 50 + 3
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", (X[:, 0] > 3).astype(np.int64))
    dm = NpyStreamDataModule(str(tmp_path / "X.npy"), str(tmp_path / "y.npy"), block_rows=100)
    dm.setup()
    assert dm.info.arithmetic == "float32" and dm._fast_for_file()
    rows = np.concatenate([np.arange(a, b) for a, b in dm.row_ranges("val")])
    served = torch.cat([b[0] for b in dm.stream("val")])
    model = model_for(dm)
    table = pd.DataFrame(X[rows].astype(np.float64), columns=dm.info.feature_names)
    for X_net in (
        dm.transform(X[rows]),
        model.standardize(X[rows]),
        table_inputs(table, dm.info, torch.float32),
    ):
        assert torch.equal(X_net, served)
    slow = DataInfo.from_dict({**dm.info.to_dict(), "arithmetic": "float64"}).transform
    assert not torch.equal(slow(X[rows]), served)  # the recorded arithmetic matters: float64 rounds otherwise


def test_transform_is_plain_data_and_checks_itself(tmp_path):
    transform = PlaygroundDataModule("plane", n=80, features=FEATURES).data_transform
    torch.save(transform.to_dict(), tmp_path / "t.pt")
    back = DataTransform.from_dict(torch.load(tmp_path / "t.pt", weights_only=True))
    assert back == transform and back.y_mean is not None
    rows = np.array([[0.5, -1.0], [2.0, 3.0]])
    assert torch.equal(back(rows, torch.float64), transform(rows, torch.float64))
    with pytest.raises(ValueError, match="feature 'x1\\^2' is neither a raw column"):
        DataTransform(["a", "b"], ["a", "x1^2"])
    with pytest.raises(ValueError, match="x_mean has 1 entries for 2 features"):
        DataTransform(["a", "b"], x_mean=[0.0], x_std=[1.0])
    with pytest.raises(ValueError, match="unknown keys \\['scale'\\]"):
        DataTransform.from_dict({"raw_names": ["a"], "scale": 2})


def test_a_checkpoint_holds_the_data_info_once(tmp_path):
    dm = PlaygroundDataModule("plane", n=120, features=FEATURES)
    ckpt = fit(model_for(dm), dm, tmp_path)
    saved = torch.load(ckpt, weights_only=True)
    for key in ("x_mean", "y_std", "feature_names", "raw_names", "n_train"):
        assert paths_of(saved, key) == [f"hyper_parameters.data_info.{key}"], key
    assert DataInfo.from_dict(saved["hyper_parameters"]["data_info"]) == dm.info
    assert not any(k.endswith(("x_mean", "x_std", "y_mean", "y_std")) for k in saved["state_dict"])


def old_way(ckpt: str, dm, path) -> str:
    """The checkpoint as the code before issue 12 §4 wrote it: the info as hyper-parameter (without
    raw_names/arithmetic), as the data module's state and as float32 module buffers."""
    saved = torch.load(ckpt, weights_only=True)
    info = {k: v for k, v in dm.info.to_dict().items() if k not in ("raw_names", "arithmetic")}
    saved["hyper_parameters"]["data_info"] = info
    saved[type(dm).__qualname__] = {"info": dict(info)}
    for name in ("x_mean", "x_std", "y_mean", "y_std"):
        saved["state_dict"][name] = torch.tensor(info[name])
    torch.save(saved, path)
    return str(path)


def test_a_checkpoint_written_the_old_way_still_loads_predicts_and_resumes(tmp_path):
    dm = PlaygroundDataModule("plane", n=150, noise=0.1, features=FEATURES, batch_size=32)
    new = fit(model_for(dm), dm, tmp_path / "new")
    old = old_way(new, dm, tmp_path / "old.ckpt")
    assert "x_mean" not in load_checkpoint(old)["state_dict"]  # the one read path drops the copies

    model, reference = load_module(old), load_module(new)
    served = dm.test[0]
    assert torch.equal(model.standardize(dm.raw["test"][0]), served)  # x1, x2 inferred as raw columns
    assert torch.equal(model.predict_tensor(served), reference.predict_tensor(served))
    table = pd.DataFrame(dm.raw["test"][0], columns=["x1", "x2"])
    np.testing.assert_array_equal(
        predict_file(tmp_path, old, table)["prediction"], predict_file(tmp_path, new, table)["prediction"]
    )
    assert data_mismatch(dm.info.to_dict(), model.hparams.data_info) is None  # eval.py's data check

    resumed = model_for(dm)
    assert check_resumable(old, resumed, max_epochs=2) == 1
    fit(resumed, dm, tmp_path / "resumed", epochs=2, ckpt_path=old)  # Lightning's own resume
    assert resumed.current_epoch == 2


def test_a_resume_restores_the_checkpoints_statistics_into_the_data_module(tmp_path):
    dm = SklearnDataModule("iris", batch_size=32)
    ckpt = fit(model_for(dm), dm, tmp_path / "a")
    other = SklearnDataModule("iris", batch_size=32, seed=3)  # another split: other statistics
    other.setup()
    model = model_for(other)
    fit(model, other, tmp_path / "b", epochs=2, ckpt_path=ckpt)
    assert other.info == dm.info and model.hparams.data_info == dm.info.to_dict()
    assert torch.equal(other.transform(dm.raw["val"][0]), dm.val[0])
    wrong = SklearnDataModule("wine", batch_size=32)  # another kind of data: refused
    wrong.setup()
    with pytest.raises(DataError, match="checkpoint's data does not match this data"):
        fit(
            ThetaMLPModule(13, 3, "multiclass", data_info=wrong.info.to_dict()),
            wrong,
            tmp_path / "c",
            2,
            ckpt,
        )
