"""Hostile inputs of session 10 (issue 13): paths — run directories that cannot be created, ``~``,
characters Hydra's override grammar cannot read unquoted, symbolic-link loops —, interrupted runs,
the estimators' files and the environment. Each test failed before its fix."""

import os
from pathlib import Path

import pytest

pytest.importorskip("hydra")  # the Hydra app: skipped where hydra-core is missing (a bare GPU box)

from test_app import run_script
from test_run_files import only_error_line


# -- run directories: created before Hydra's own mkdir, or one line ------------------------------
@pytest.mark.parametrize("key, extra", [("hydra.run.dir", []), ("hydra.sweep.dir", ["-m"])])
def test_a_run_directory_under_a_file_is_one_line(tmp_path, key, extra):
    """hydra.run.dir=afile/run: Hydra's mkdir raised NotADirectoryError (a traceback, exit 1)."""
    (tmp_path / "afile").write_text("x")
    proc = run_script("train.py", *extra, "data=iris", f"{key}=afile/run", cwd=tmp_path)
    line = only_error_line(proc)
    assert f"cannot create {key}" in line and "afile is a file, not a directory" in line, line
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_current_directory_is_one_line(tmp_path):
    """eval.py from a folder it cannot write to: Hydra's mkdir of outputs/eval/... raised (4 tracebacks)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = run_script("eval.py", f"ckpt_path={tmp_path / 'none.ckpt'}", cwd=ro)
    finally:
        ro.chmod(0o755)
    line = only_error_line(proc)
    assert "cannot create hydra.run.dir" in line and "run from a writable directory" in line, line


def test_a_run_directory_starting_with_tilde_is_refused(tmp_path):
    """hydra.run.dir='~/runs/a': Hydra does not expand '~' and created ./~/runs/a."""
    proc = run_script("train.py", "data=iris", "hydra.run.dir='~/runs/a'", cwd=tmp_path)
    line = only_error_line(proc)
    assert "starts with '~'" in line and str(Path("~/runs/a").expanduser()) in line, line
    assert not (tmp_path / "~").exists()
