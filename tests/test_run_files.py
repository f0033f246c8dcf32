"""Files a user hands us are data, never code: run configs, checkpoints, predict inputs.

* eval.py without ``data=`` builds the training run's data module from ``<run>/.hydra/config.yaml``
  only if it names one of lecturenn's data modules with plain arguments (no Hydra instantiate).
* Checkpoints: every record's CRC-32 is verified; foreign, truncated, corrupted and unsafe files
  get distinct one-line messages, none advising ``weights_only=False``; ``load_module`` accepts
  only plain hyper-parameters that are arguments of ``ThetaMLPModule`` and restores no RNG state.
* predict.py standardises in float64 and refuses values its net's dtype cannot hold.
"""

import json
import os
import pickle
import random
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("hydra")  # the Hydra app: skipped where hydra-core is missing (a bare GPU box)
pytest.importorskip("omegaconf")

from omegaconf import OmegaConf, open_dict
from test_app import QUIET, ROOT, make_cfg, run_script

from lecturenn.data import DataError, DataInfo
from lecturenn.data.scaling import network_inputs
from lecturenn.training.checkpoint import CheckpointError, init_arguments, load_checkpoint, load_module

sys.path.insert(0, str(ROOT / "scripts"))
import eval as eval_script  # noqa: E402  (scripts/eval.py)
from predict import predict  # noqa: E402
from train import train  # noqa: E402

CONF = ROOT / "conf"


def only_error_line(proc) -> str:
    """The CLI's contract for a user's mistake: exit 2, one `error:` line, no traceback."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "weights_only" not in errors[0]
    return errors[0]


@pytest.fixture(autouse=True)
def _restore_torch_settings():
    """The in-process entry points set torch's threads (threads: auto) and matmul precision for the
    process, as the CLI does for its own: give them back to the next test."""
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    yield
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(precision)


def refused(capsys, entry, out_dir: Path, overrides, config: str) -> str:
    """``entry`` (eval.evaluate or predict.predict) in-process on the composed ``config`` (the code the
    CLI runs; test_eval_and_predict_refuse_an_instantiator runs the processes): exit code 2 and one
    ``error:`` line, no traceback, nothing written into the run directory ``out_dir``."""
    out_dir.mkdir(parents=True)  # Hydra creates the run directory before the job starts
    with pytest.raises(SystemExit) as info:
        entry(make_cfg(out_dir, overrides, config=config))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    assert "weights_only" not in errors[0]
    assert not list(out_dir.iterdir())  # no eval_metrics.json, no predictions
    return errors[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One 1-epoch training run on iris, in-process (train.train: the CLI's code), with the
    .hydra/config.yaml that Hydra would write (the composed config without its hydra node)."""
    run = tmp_path_factory.mktemp("runfiles") / "run"
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    cfg = make_cfg(run, ["data=iris", "trainer.max_epochs=1", *QUIET])
    train(cfg)
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(precision)
    with open_dict(cfg):
        del cfg["hydra"]
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    return run


def crafted_run(base: Path, run: Path, data: dict) -> Path:
    """A copy of the genuine checkpoint in a run directory whose .hydra/config.yaml has ``data``."""
    (base / "checkpoints").mkdir(parents=True)
    (base / ".hydra").mkdir()
    shutil.copy(run / "checkpoints" / "last.ckpt", base / "checkpoints" / "last.ckpt")
    config = {"seed": 0, "data": data}
    (base / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    return base / "checkpoints" / "last.ckpt"


class Marker:
    """A pickle that, when unpickled, creates the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def hostile_payloads(tmp_path):
    marker = tmp_path / "marker.txt"
    blob = tmp_path / "blob.pkl"
    torch.save(Marker(marker), blob)  # a torch.save file: torch.load(weights_only=False) would open()
    return marker, {
        "torch.load": {"_target_": "torch.load", "f": str(blob), "weights_only": False},
        "builtins.open": {"_target_": "builtins.open", "file": str(marker), "mode": "w"},
    }


# -- run configs --------------------------------------------------------------------------------------
def test_every_shipped_data_config_is_allowed():
    """The allow-list is exactly the classes conf/data names, and their keys are arguments."""
    files = sorted((CONF / "data").rglob("*.yaml"))
    assert len(files) >= 14
    targets = set()
    for path in files:
        node = yaml.safe_load(path.read_text())
        targets.add(node["_target_"])
        assert node["_target_"] in eval_script.DATA_MODULES, path
        cls = getattr(__import__("lecturenn.data", fromlist=["x"]), node["_target_"].rsplit(".", 1)[1])
        names, _ = init_arguments(cls)
        assert set(node) - {"_target_"} <= set(names), path
    assert targets == set(eval_script.DATA_MODULES)


@pytest.mark.parametrize("name", ["torch.load", "builtins.open"])
def test_payloads_would_run_through_hydra_instantiate(tmp_path, name):
    """The two payloads are real: the old code path (hydra.utils.instantiate) executes them."""
    import hydra

    marker, payloads = hostile_payloads(tmp_path)
    result = hydra.utils.instantiate(OmegaConf.create(payloads[name]))
    if hasattr(result, "close"):
        result.close()
    assert marker.exists()


@pytest.mark.parametrize("name", ["torch.load", "builtins.open"])
def test_eval_never_runs_a_crafted_run_config(tmp_path, capsys, run, name):
    marker, payloads = hostile_payloads(tmp_path)
    ckpt = crafted_run(tmp_path / "evil", run, payloads[name])
    line = refused(capsys, eval_script.evaluate, tmp_path / "e", [f"ckpt_path={ckpt}"], "eval")
    assert line.startswith(f"error: run config {tmp_path / 'evil' / '.hydra' / 'config.yaml'}: ")
    assert f"data._target_={name!r} is not one of lecturenn's data modules" in line
    assert line.endswith("pass data=<name> to choose the data")
    assert not marker.exists()


def write_run_config(tmp_path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


IRIS = "_target_: lecturenn.data.SklearnDataModule\n  name: iris\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("data:\n  _target_: os.system\n  command: touch {m}\n", "not one of lecturenn's data modules"),
        ("data:\n  _target_: lecturenn.data.base.ArrayDataModule\n", "not one of lecturenn's data modules"),
        ("data:\n  name: iris\n", "data._target_=None is not one of"),
        (
            "data:\n  _target_: lecturenn.data.TableDataModule\n  target: y\n"
            "  path: {{_target_: builtins.open, file: {m}, mode: w}}\n",
            "data.path._target_ is not allowed",
        ),
        (
            "data:\n  _target_: lecturenn.data.TableDataModule\n  target: y\n"
            "  path: [{{_target_: builtins.open, file: {m}, mode: w}}]\n",
            "data.path[0]._target_ is not allowed",
        ),
        ("data:\n  " + IRIS + "  _partial_: true\n", "data._partial_ is not an argument"),
        ("data:\n  " + IRIS + "  _args_: [{m}]\n", "data._args_ is not an argument"),
        ("data:\n  " + IRIS + "  _recursive_: false\n", "data._recursive_ is not an argument"),
        ("data:\n  " + IRIS + "  _convert_: all\n", "data._convert_ is not an argument"),
        ("data:\n  " + IRIS + "  colour: red\n", "data.colour is not an argument of lecturenn.data.Sklearn"),
        ("data:\n  " + IRIS + "  seed: ${{evil:}}\n", "calls the resolver 'evil'"),
        ("evil: ${{evil:}}\ndata:\n  " + IRIS + "  seed: ${{evil}}\n", "calls the resolver 'evil'"),
        ("x:\n  y: ${{evil:}}\ndata:\n  " + IRIS + "  seed: ${{x.y}}\n", "calls the resolver 'evil'"),
        ("x: ${{evil:}}\ndata:\n  " + IRIS + "  seed: ${{x.y}}\n", "calls the resolver 'evil'"),
        ("data:\n  " + IRIS + "  seed: ${{..seed}}\n", "only absolute references"),
        ("data: !!python/object/apply:os.system [touch {m}]\n", "cannot be read as a config"),
        ("a: &a [1, 1]\nb: &b [*a, *a]\ndata:\n  " + IRIS + "  seed: 0\n", "YAML aliases"),
        ("data: null\n", "has no data node"),
        ("- 1\n- 2\n", "has no data node"),
        (
            "data:\n  _target_: lecturenn.data.TableDataModule\n  path: ???\n  target: y\n",
            "Missing mandatory",
        ),
        ("data:\n  _target_: lecturenn.data.TableDataModule\n  target: y\n", "required argument(s) ['path']"),
        ("data:\n  " + IRIS + "  seed: ${{nowhere}}\n", "nowhere"),
        ("data:\n  _target_: lecturenn.data.SklearnDataModule\n  name: nope\n", "name must be one of"),
    ],
)
def test_run_config_is_validated_as_data(tmp_path, text, message):
    marker = tmp_path / "marker.txt"
    touched = []
    OmegaConf.register_new_resolver("evil", lambda: touched.append(1) or marker.touch() or 0, replace=True)
    try:
        with pytest.raises(eval_script.RunConfigError, match=None) as info:
            eval_script.data_module_from_run(write_run_config(tmp_path, text.format(m=marker)))
    finally:
        OmegaConf.clear_resolver("evil")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not marker.exists() and not touched


def test_run_config_interpolations_resolve_against_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LECTURENN_TEST_DIR", str(tmp_path))
    text = (
        "seed: 7\npaths:\n  root_dir: ${oc.env:LECTURENN_TEST_DIR,.}\n"
        "data:\n  _target_: lecturenn.data.TableDataModule\n  path: ${paths.root_dir}/t.csv\n"
        "  target: y\n  features: [a, b]\n  seed: ${seed}\n  batch_size: 8\n"
    )
    dm = eval_script.data_module_from_run(write_run_config(tmp_path, text))
    assert type(dm).__name__ == "TableDataModule"
    assert dm.seed == 7 and dm.path == f"{tmp_path}/t.csv" and dm.features == ["a", "b"]


# -- checkpoints: integrity and honest messages -----------------------------------------------------
def flip_sign_bits(src: Path, dst: Path) -> int:
    """Copy ``src`` with the sign bit of every float32 in its data/* records flipped (same length)."""
    data = bytearray(src.read_bytes())
    flipped = 0
    with zipfile.ZipFile(src) as archive:
        for record in archive.infolist():
            if "/data/" not in record.filename or record.file_size < 64:
                continue
            at = record.header_offset
            start = at + 30 + int.from_bytes(data[at + 26 : at + 28], "little")
            start += int.from_bytes(data[at + 28 : at + 30], "little")
            for i in range(start + 3, start + record.file_size, 4):
                data[i] ^= 0x80
                flipped += 1
    dst.write_bytes(bytes(data))
    assert dst.stat().st_size == src.stat().st_size
    return flipped


def test_altered_weights_are_caught_by_the_crc(tmp_path, run):
    ckpt = run / "checkpoints" / "last.ckpt"
    bad = tmp_path / "flipped.ckpt"
    assert flip_sign_bits(ckpt, bad) > 400
    # torch itself loads it without a word, with different weights:
    before = torch.load(ckpt, weights_only=True)["state_dict"]["net.thetas.0"]
    after = torch.load(bad, weights_only=True)["state_dict"]["net.thetas.0"]
    assert torch.equal(after, -before)
    with pytest.raises(CheckpointError, match=r"is corrupted \(CRC mismatch in archive/data/\d+\)") as info:
        load_checkpoint(bad)
    assert str(info.value).startswith(f"checkpoint {str(bad)!r} is corrupted")
    load_checkpoint(ckpt)  # the original is fine


def test_altered_checkpoint_is_refused_by_eval(tmp_path, capsys, run):
    bad = tmp_path / "flipped.ckpt"
    flip_sign_bits(run / "checkpoints" / "last.ckpt", bad)
    line = refused(capsys, eval_script.evaluate, tmp_path / "e", [f"ckpt_path={bad}", "data=iris"], "eval")
    assert "is corrupted (CRC mismatch in archive/data/" in line


def test_checkpoint_written_without_crcs_still_loads(tmp_path):
    # torch's switch for writing no CRCs (torch >= 2.5); older torch always writes them
    serialization = pytest.importorskip("torch.utils.serialization")

    path = tmp_path / "nocrc.ckpt"
    with serialization.config.patch({"save.compute_crc32": False}):
        torch.save({"state_dict": {"w": torch.arange(100.0)}}, path)
    with zipfile.ZipFile(path) as archive:
        assert not any(r.CRC for r in archive.infolist())
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.arange(100.0))


def _unsafe(path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {path.parent / 'pwned.txt'}",))

    torch.save({"state_dict": {}, "payload": Payload()}, path)


def _numpy_scalar(path):
    torch.save({"state_dict": {}, "x": np.float64(1.0)}, path)


def _plain_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")


def _deflated(path):
    good = tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, tmp)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for record in src.infolist():
            dst.writestr(record.filename, src.read(record.filename))


def _truncated(path):
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda p: p.write_bytes(os.urandom(4096)),
            "is not a PyTorch checkpoint (not a zip archive written by",
        ),
        (lambda p: p.write_bytes(b""), "is not a PyTorch checkpoint (the file is empty)"),
        (lambda p: p.write_bytes(pickle.dumps({"a": 1})), "is not a PyTorch checkpoint"),
        (lambda p: p.write_bytes(b"PK\x03\x04" + os.urandom(4096)), "is truncated or corrupted"),
        (_truncated, "is truncated or corrupted"),
        (_plain_zip, "is not a PyTorch checkpoint (a zip archive without data.pkl)"),
        (_deflated, "is not a PyTorch checkpoint (compressed record"),
        (_unsafe, "holds objects other than tensors and plain data; refusing to unpickle it"),
        (_numpy_scalar, "Unsupported global: GLOBAL numpy"),
        (lambda p: None, "does not exist"),
    ],
)
def test_bad_checkpoint_messages(tmp_path, make, message):
    path = tmp_path / "x.ckpt"
    make(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert message in text and str(path) in text, text
    assert "weights_only" not in text and "\n" not in text, text
    assert not (tmp_path / "pwned.txt").exists()


def test_unsafe_message_quotes_only_the_global(tmp_path):
    path = tmp_path / "evil.ckpt"
    _unsafe(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).endswith("(it could run code): Unsupported global: GLOBAL posix.system")


# -- load_module: hyper-parameters are plain arguments, no RNG restore --------------------------------
def with_hparams(src: Path, dst: Path, **changes) -> Path:
    ckpt = torch.load(src, weights_only=True)
    ckpt["hyper_parameters"] = {**ckpt["hyper_parameters"], **changes}
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"_instantiator": "os.system"},
            "hyper-parameter '_instantiator' is not an argument of ThetaMLPModule",
        ),
        ({"colour": "red"}, "hyper-parameter 'colour' is not an argument"),
        ({"optimizer": "torch.optim.SGD"}, "hyper-parameter 'optimizer' is not an argument"),
        ({"lam": torch.tensor(1.0)}, "hyper-parameter 'lam' is a Tensor, not a plain value"),
        ({"hidden_sizes": [10**9]}, "do not match the network its hyper-parameters describe"),
        ({"task": "evil"}, "cannot be loaded into a ThetaMLPModule: unknown task 'evil'"),
    ],
)
def test_load_module_refuses_foreign_hyper_parameters(tmp_path, run, changes, message):
    path = with_hparams(run / "checkpoints" / "last.ckpt", tmp_path / "x.ckpt", **changes)
    with pytest.raises(CheckpointError, match=None) as info:
        load_module(path)
    assert message in str(info.value)


def test_load_module_leaves_the_rngs_alone(run, monkeypatch):
    def no_cuda(*args, **kwargs):
        raise AssertionError("load_module touched the CUDA RNG")

    for name in ("set_rng_state", "set_rng_state_all", "get_rng_state", "get_rng_state_all", "manual_seed"):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    ckpt = run / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    torch.manual_seed(12345)
    np.random.seed(12345)  # noqa: NPY002 (the global RNG is the point)
    random.seed(12345)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    assert not torch.equal(states[0], saved["rng_states"]["torch"])
    model = load_module(ckpt)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1])  # noqa: NPY002
    assert random.getstate() == states[2]
    assert not model.training
    for key, value in saved["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value), key


def test_eval_and_predict_refuse_an_instantiator(tmp_path, run):
    """As processes: eval.py's contract for a refused file (exit 2, one line, no traceback, nothing
    written); test_predict_inputs.py's overwrite test holds predict.py's, the rest here run in-process."""
    ckpt = with_hparams(run / "checkpoints" / "last.ckpt", tmp_path / "inst.ckpt", _instantiator="os.system")
    proc = run_script(
        "eval.py", f"ckpt_path={ckpt}", "data=iris", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path
    )
    assert "hyper-parameter '_instantiator' is not an argument" in only_error_line(proc)
    assert not (tmp_path / "e" / "eval_metrics.json").exists()
    rows = tmp_path / "rows.csv"
    rows.write_text("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5,3,1,0.2\n")
    proc = run_script(
        "predict.py", f"ckpt_path={ckpt}", f"input={rows}", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path
    )
    assert "hyper-parameter '_instantiator' is not an argument" in only_error_line(proc)
    assert not (tmp_path / "p" / "predictions.csv").exists() and not (tmp_path / "predictions.csv").exists()


# -- eval's happy path (run config) and strict JSON ------------------------------------------------
def test_eval_from_the_run_config_writes_strict_json(tmp_path, run):
    """In-process (the run's config is read the same way; test_app.py's test_cli_eval reads a
    config.yaml that Hydra itself wrote, through the command line)."""
    (tmp_path / "e").mkdir()
    eval_script.evaluate(make_cfg(tmp_path / "e", [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], "eval"))

    def no_constants(name):
        raise AssertionError(f"{name} in eval_metrics.json")

    record = json.loads((tmp_path / "e" / "eval_metrics.json").read_text(), parse_constant=no_constants)
    trained = json.loads((run / "metrics.json").read_text())
    assert record["test/acc"] == pytest.approx(trained["test/acc"])


# -- predict: standardise in float64, refuse what the net's dtype cannot hold ----------------------
def info_for(mean, std):
    return DataInfo(
        task="binary",
        n_features=1,
        n_outputs=1,
        feature_names=["a"],
        target_names=["y"],
        classes=["0", "1"],
        x_mean=[mean],
        x_std=[std],
        y_mean=None,
        y_std=None,
        image_shape=None,
        raw_features=1,
    )


def test_predict_standardises_in_float64():
    X = np.array([[1e40], [-3e39], [2.0]])  # not float32 numbers, but their z-scores are
    Z = network_inputs(X, info_for(0.0, 1e3), torch.float32)
    assert Z.dtype == torch.float32 and torch.isfinite(Z).all()
    assert Z[0, 0].item() == pytest.approx(1e37, rel=1e-6)
    with pytest.raises(DataError, match=r"feature column 'a' has values \(e.g. 1e\+39 in row 1, 0-based\)"):
        network_inputs(np.array([[0.0], [1e39]]), info_for(0.0, 1.0), torch.float32)
    Z = network_inputs(np.array([[1e39]]), info_for(0.0, 1.0), torch.float64)
    assert Z.dtype == torch.float64 and Z.item() == 1e39


def test_predict_refuses_a_value_beyond_float32(tmp_path, capsys, run):
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5,3,1,0.2\n5,3,1e39,0.2\n"
    )
    args = [
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        f"input={rows}",
        f"output={tmp_path / 'out.csv'}",
    ]
    line = refused(capsys, predict, tmp_path / "p", args, "predict")
    assert "feature column 'petal length (cm)' has values (e.g. 1e+39 in row 1, 0-based)" in line
    assert "float32" in line
    assert not (tmp_path / "out.csv").exists()


def test_a_float64_checkpoint_loads_and_evaluates_in_float64(tmp_path):
    run = tmp_path / "run"
    train(
        make_cfg(
            run,
            [
                "data=iris",
                "trainer.max_epochs=1",
                "trainer.precision=64-true",
                "++data.dtype=float64",
                *QUIET,
            ],
        )
    )
    last = run / "checkpoints" / "last.ckpt"
    module = load_module(last)
    assert module.net.thetas[0].dtype == torch.float64
    saved = torch.load(last, weights_only=True)["state_dict"]["net.thetas.0"]
    assert torch.equal(module.net.thetas[0].detach(), saved)  # not rounded through float32
    (tmp_path / "e").mkdir()
    metrics = eval_script.evaluate(make_cfg(tmp_path / "e", [f"ckpt_path={last}", "data=iris"], "eval"))
    assert "test/acc" in metrics and (tmp_path / "e" / "eval_metrics.json").is_file()


def test_eval_refuses_data_that_differs_from_the_checkpoints(tmp_path):
    """eval.py data=... scored targets in another order, features in another order, unstandardised
    inputs or another split's standardisation silently (hostile round 2): now one line naming it."""
    from eval import data_mismatch

    from lecturenn.data import SklearnDataModule

    def info(**kw):
        dm = SklearnDataModule("iris", batch_size=16, **{"seed": 0, **kw})
        dm.setup("fit")
        return dm.info.to_dict()

    trained = info()
    assert data_mismatch(info(), trained) is None
    assert "x_mean" in data_mismatch(info(standardize=False), trained)
    assert "standardised with statistics of another training split" in data_mismatch(info(seed=5), trained)
    swapped = {**trained, "feature_names": list(reversed(trained["feature_names"]))}
    assert data_mismatch(swapped, trained).startswith("the data's feature_names")
    regression = {**trained, "task": "regression"}
    assert data_mismatch(regression, trained).startswith("the data's task ('regression')")
    other_classes = {**trained, "classes": ["no", "yes", "maybe"]}
    assert "classes" in data_mismatch(other_classes, trained)
