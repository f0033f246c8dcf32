"""predict.py's inputs and output: optional, partly blank label columns; numeric labels compared as
numbers; the output checked before any work, never overwritten by default, written atomically."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("hydra")  # the Hydra app: skipped where hydra-core is missing (a bare GPU box)
pytest.importorskip("omegaconf")

import predict as predict_script
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from predict import predict, unseen_labels

from lecturenn.data import DataInfo
from lecturenn.data.files import read_table
from lecturenn.training import ThetaMLPModule

ROOT = Path(__file__).resolve().parents[1]


def save_checkpoint(path: Path, task: str, classes, n_outputs: int) -> Path:
    """A checkpoint as training writes it (state_dict + hyper_parameters), without training."""
    info = DataInfo(
        task=task,
        n_features=2,
        n_outputs=n_outputs,
        feature_names=["a", "b"],
        target_names=["label"],
        classes=classes,
        x_mean=[0.0, 1.0],
        x_std=[1.0, 2.0],
        y_mean=None,
        y_std=None,
        image_shape=None,
        raw_features=2,
    )
    module = ThetaMLPModule(2, n_outputs, task, hidden_sizes=[3], data_info=info.to_dict(), init_seed=0)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    return {
        "int": save_checkpoint(d / "int.ckpt", "multiclass", ["0", "1", "2"], 3),
        "str": save_checkpoint(d / "str.ckpt", "binary", ["cat", "dog"], 1),
        "float": save_checkpoint(d / "float.ckpt", "multiclass", ["0.5", "1.5", "2.0"], 3),
    }


def write_input(path: Path, labels, sep=",") -> Path:
    """A CSV as a user writes it: blank cells stay blank."""
    lines = ["a,b,label"] + [f"{i},{i + 1},{'' if v is None else v}" for i, v in enumerate(labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def cfg(ckpt, input, output, **extra):
    return OmegaConf.create(
        {
            "ckpt_path": str(ckpt),
            "input": str(input),
            "output": str(output),
            "overwrite": False,
            "batch_size": 2,
            **extra,
        }
    )


def error_line(capsys, call) -> str:
    with pytest.raises(SystemExit) as exc:
        call()
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # one line, no traceback
    assert lines[0].startswith("error: ")
    return lines[0]


# -- labels ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ckpt,labels",
    [
        ("int", [2, None, 0, None]),  # partly blank integer column: pandas reads it as floats 2.0, NaN
        ("int", ["2.0", 1, "0"]),  # 2.0 names the class 2
        ("int", [None, None, None]),  # an all-blank label column
        ("str", ["cat", None, "dog", " "]),  # partly blank strings (and a whitespace-only cell)
        ("float", [0.5, None, "2", "1.50"]),  # float classes: 2 is 2.0, 1.50 is 1.5
    ],
)
def test_blank_and_numeric_labels_predict_every_row(ckpts, tmp_path, ckpt, labels):
    src = write_input(tmp_path / "in.csv", labels)
    out = predict(cfg(ckpts[ckpt], src, tmp_path / "out.csv"))
    result = pd.read_csv(out, keep_default_na=False)
    assert len(result) == len(labels)
    assert (result["prediction"] != "").all()  # every row predicted, blank label or not


@pytest.mark.parametrize(
    "ckpt,labels,unseen",
    [
        ("int", [2, None, 3], ["3"]),  # from a partly blank column, 3.0 is reported as 3
        ("int", ["cat", None, "2.0"], ["cat"]),
        ("int", [2.5, 1], ["2.5"]),
        ("str", ["cat", None, "cow"], ["cow"]),
        ("float", [0.5, 1], ["1"]),
    ],
)
def test_unseen_labels_keep_the_clear_message(ckpts, tmp_path, capsys, ckpt, labels, unseen):
    src = write_input(tmp_path / "in.csv", labels)
    line = error_line(capsys, lambda: predict(cfg(ckpts[ckpt], src, tmp_path / "out.csv")))
    assert f"column 'label' has label(s) {unseen} never seen in training" in line
    assert not (tmp_path / "out.csv").exists()


def test_unseen_labels_rules():
    classes = ["0", "1", "2"]
    column = pd.Series([2.0, np.nan, 1, "2.0", " 1 ", "", "  ", None, "x", 7.0, np.float32(0)], dtype=object)
    assert unseen_labels(column, classes) == ["7", "x"]
    # booleans are class names, not the numbers 0 and 1
    assert unseen_labels(pd.Series([True, None, False], dtype=object), ["False", "True"]) == []
    assert unseen_labels(pd.Series([True, False]), ["0", "1"]) == ["False", "True"]
    assert unseen_labels(pd.Series(["nan", "inf"]), ["0"]) == ["inf", "nan"]


# -- the output ---------------------------------------------------------------------------------
def test_output_checks_come_before_loading_the_checkpoint(tmp_path, capsys):
    src = write_input(tmp_path / "in.csv", [1])
    absent = tmp_path / "never_read.ckpt"  # never read: each output problem is reported first
    absent.write_bytes(b"not a checkpoint")
    (tmp_path / "old.csv").write_text("keep me\n")
    (tmp_path / "file").write_text("")
    cases = {
        tmp_path / "missing" / "out.csv": "output directory",
        tmp_path / "file" / "out.csv": "is not a directory",
        tmp_path: "is a directory; name a file",
        src: "is the input file itself",
        absent: "is the ckpt_path file itself",
        tmp_path / "old.csv": "already exists; pass overwrite=true to replace it",
    }
    for output, message in cases.items():
        line = error_line(capsys, lambda output=output: predict(cfg(absent, src, output)))
        assert message in line and "checkpoint" not in line.removeprefix(f"error: output {str(output)!r}")
    assert (tmp_path / "old.csv").read_text() == "keep me\n"
    assert not (tmp_path / "missing").exists()
    line = error_line(capsys, lambda: predict(cfg(absent, src, tmp_path / "new.csv")))
    assert "not a PyTorch checkpoint" in line  # a good output: the checkpoint's turn


def test_output_that_is_the_input_by_another_name(ckpts, tmp_path, capsys):
    src = write_input(tmp_path / "in.csv", [1, 2])
    (tmp_path / "link.csv").symlink_to(src)
    os.link(src, tmp_path / "hard.csv")
    before = src.read_text()
    for output in (tmp_path / "link.csv", tmp_path / "hard.csv", tmp_path / "." / "in.csv"):
        line = error_line(capsys, lambda o=output: predict(cfg(ckpts["int"], src, o, overwrite=True)))
        assert "is the input file itself" in line
    assert src.read_text() == before


def test_overwrite_true_replaces_an_existing_output(ckpts, tmp_path):
    src = write_input(tmp_path / "in.csv", [1, 2])
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    predict(cfg(ckpts["int"], src, out, overwrite=True))
    assert len(pd.read_csv(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]  # no temporary file left


def test_overwrite_must_be_a_bool(ckpts, tmp_path, capsys):
    src = write_input(tmp_path / "in.csv", [1])
    line = error_line(capsys, lambda: predict(cfg(ckpts["int"], src, tmp_path / "o.csv", overwrite="yes")))
    assert "overwrite='yes' is invalid" in line


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_write_leaves_nothing_half_written(ckpts, tmp_path, capsys, monkeypatch, existing):
    src = write_input(tmp_path / "in.csv", [1, 2])
    out = tmp_path / "out.csv"
    if existing:
        out.write_text("old\n")
    real_to_csv = pd.DataFrame.to_csv

    def half_then_fail(self, path, **kwargs):
        real_to_csv(self.iloc[:1], path, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    line = error_line(capsys, lambda: predict(cfg(ckpts["int"], src, out, overwrite=existing)))
    assert line.startswith(f"error: cannot write output {str(out)!r}") and "No space left" in line
    assert (out.read_text() == "old\n") if existing else not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", *(["out.csv"] if existing else [])]


def test_an_output_that_appears_meanwhile_is_not_overwritten(ckpts, tmp_path, capsys, monkeypatch):
    src = write_input(tmp_path / "in.csv", [1, 2])
    out = tmp_path / "out.csv"
    real_write = predict_script._write

    def someone_else_writes_first(table, tmp, name):
        out.write_text("theirs\n")
        real_write(table, tmp, name)

    monkeypatch.setattr(predict_script, "_write", someone_else_writes_first)
    line = error_line(capsys, lambda: predict(cfg(ckpts["int"], src, out)))
    assert "already exists" in line
    assert out.read_text() == "theirs\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz", "out.tsv", "out.tsv.gz", "out.parquet"])
def test_output_format_follows_its_name(ckpts, tmp_path, name):
    src = write_input(tmp_path / "in.csv", [1, None, 2])
    out = predict(cfg(ckpts["int"], src, tmp_path / name))
    table, _ = read_table(out)
    assert list(table.columns) == ["a", "b", "label", "prediction", "prob_0", "prob_1", "prob_2"]
    np.testing.assert_allclose(table[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0, atol=1e-5)


def test_predict_config_does_not_overwrite_by_default():
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        conf = compose("predict", overrides=["ckpt_path=x", "input=y"])
    assert conf.overwrite is False


# -- the command line (predict.py's process contract: exit 2, exactly one error line) ------------------
def test_cli_partly_blank_labels_then_refuses_to_overwrite(ckpts, tmp_path):
    from test_app import make_cfg

    src = write_input(tmp_path / "in.csv", [2, None, "0"])
    args = [f"ckpt_path={ckpts['int']}", f"input={src}", f"output={tmp_path / 'out.csv'}"]
    # the first run in-process (predict.predict on the composed predict config: the CLI's code)
    threads = torch.get_num_threads()
    predict(make_cfg(tmp_path / "runs" / "0", args, config="predict"))
    torch.set_num_threads(threads)  # threads: auto set it for the process
    second = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "predict.py"),
            *args,
            f"hydra.run.dir={tmp_path / 'runs' / '1'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"},
    )
    written = (tmp_path / "out.csv").read_text()
    assert len(pd.read_csv(tmp_path / "out.csv")) == 3
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: output {str(tmp_path / 'out.csv')!r} already exists; pass overwrite=true to replace it"
    ]
    assert (tmp_path / "out.csv").read_text() == written


@pytest.mark.parametrize("column", ["prediction", "prob_dog"])
def test_an_input_column_named_like_a_predicted_one_is_refused_not_overwritten(
    ckpts, tmp_path, capsys, column
):
    """The input's columns are copied through: a user's own 'prediction' was silently replaced."""
    src = tmp_path / "in.csv"
    src.write_text(f"a,b,{column}\n1,2,mine\n3,4,mine\n")
    out = tmp_path / "o.csv"
    line = error_line(capsys, lambda: predict(cfg(ckpts["str"], src, out)))
    assert f"input already has column(s) ['{column}']" in line and not out.exists()
