"""A path that names no readable file says why, the same way everywhere (lecturenn.validation.why_not_a_file):
a dangling symbolic link and a loop of links were reported as "does not exist" / "no such file" (hostile
round 10), though the name is there."""

import subprocess
import sys
from pathlib import Path

import pytest

import lecturenn as ln
from lecturenn.data.errors import DataError
from lecturenn.data.files import existing_file
from lecturenn.training.checkpoint import CheckpointError, load_checkpoint
from lecturenn.validation import why_not_a_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "dangling.npz").symlink_to("nowhere.npz")
    (tmp_path / "loop_a.npz").symlink_to("loop_b.npz")
    (tmp_path / "loop_b.npz").symlink_to("loop_a.npz")
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "real.npz").write_bytes(b"x")
    (tmp_path / "link.npz").symlink_to("real.npz")
    return tmp_path


REASONS = {
    "dangling.npz": "is a symbolic link to 'nowhere.npz', which does not exist",
    "loop_a.npz": "is a loop of symbolic links",
    "folder.npz": "is a directory",
    "missing.npz": "does not exist",
}


def test_the_reasons(paths):
    assert {name: why_not_a_file(paths / name) for name in REASONS} == REASONS
    assert why_not_a_file(paths / "real.npz") is None and why_not_a_file(paths / "link.npz") is None


@pytest.mark.parametrize("name", ["dangling.npz", "loop_a.npz"])
def test_every_reader_names_the_link(paths, name):
    path, reason = paths / name, REASONS[name]
    with pytest.raises(CheckpointError, match=f"checkpoint '.*{name}' {reason}"):
        load_checkpoint(path)
    for load in (ln.load_thetas, ln.ThetaMLPClassifier.load, ln.ThetaMLPRegressor.load):
        with pytest.raises(FileNotFoundError, match=f"'.*{name}' {reason}"):
            load(path)
    with pytest.raises(DataError, match=f"data file .*{name} {reason}"):
        existing_file(path, "data")


def test_a_missing_file_keeps_its_words(paths):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(paths / "missing.npz")
    with pytest.raises(FileNotFoundError, match="no such file: '.*missing.npz'"):
        ln.load_thetas(paths / "missing.npz")
    with pytest.raises(DataError, match="data file not found: .*missing.npz"):
        existing_file(paths / "missing.npz", "data")


def test_eval_names_a_dangling_checkpoint_link_in_one_line(tmp_path):
    (tmp_path / "last.ckpt").symlink_to("gone.ckpt")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval.py"), "ckpt_path=last.ckpt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: config: ckpt_path='last.ckpt' is a symbolic link to 'gone.ckpt', which does not exist"
    ]
