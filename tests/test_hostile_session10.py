"""Hostile inputs of session 10 (issue 13): paths — run directories that cannot be created, ``~``,
characters Hydra's override grammar cannot read unquoted, symbolic-link loops —, interrupted runs,
the estimators' files and the environment. Each test failed before its fix."""

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("hydra")  # the Hydra app: skipped where hydra-core is missing (a bare GPU box)

from conftest import interrupt_training, run_script, script_env
from test_app import QUIET, ROOT, make_cfg
from test_run_files import only_error_line

from lecturenn.training.checkpoint import load_module

sys.path.insert(0, str(ROOT / "scripts"))
from train import train  # noqa: E402


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """One 1-epoch training run on iris, in-process (train.train: the CLI's code)."""
    run = tmp_path_factory.mktemp("session10") / "run"
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    train(make_cfg(run, ["data=iris", "trainer.max_epochs=1", *QUIET]))
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(precision)
    return run


def cli(script, *args, cwd, home=None):
    """The script as a user runs it (conftest.run_script); ``home``: the HOME it sees."""
    env = None if home is None else script_env(HOME=str(home))
    return run_script(script, *args, cwd=cwd, env=env)


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


# -- '~' in a checkpoint path ----------------------------------------------------------------------
def test_load_module_expands_tilde(iris_run, tmp_path, monkeypatch):
    """load_module('~/m.ckpt') said "checkpoint '~/m.ckpt' does not exist" for an existing file."""
    shutil.copy(iris_run / "checkpoints" / "last.ckpt", tmp_path / "m.ckpt")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_module("~/m.ckpt").net.sizes[0] == 4


def test_predict_with_a_quoted_tilde_checkpoint(iris_run, tmp_path):
    """predict.py ckpt_path='~/m.ckpt': the config check expanded '~' and passed, the loader did not
    ("checkpoint '~/m.ckpt' does not exist", exit 2); input and output already expanded it."""
    shutil.copy(iris_run / "checkpoints" / "last.ckpt", tmp_path / "m.ckpt")
    from sklearn.datasets import load_iris

    load_iris(as_frame=True).data.to_csv(tmp_path / "in.csv", index=False)
    proc = cli(
        "predict.py",
        "ckpt_path='~/m.ckpt'",
        "input='~/in.csv'",
        "output='~/out.csv'",
        cwd=tmp_path,
        home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out.csv").read_text().count("\n") == 151


# -- symbolic-link loops -------------------------------------------------------------------------------
@pytest.mark.parametrize("looped", ["output", "input"])
def test_predict_with_a_symbolic_link_loop_is_one_line(iris_run, tmp_path, looped):
    """output=loop (or input=loop): Path.resolve() in predict's output check raised (a traceback, exit 1)."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    files = {"input": str(iris_run / "metrics.json"), "output": str(tmp_path / "out.csv"), looped: "a"}
    proc = cli(
        "predict.py",
        f"ckpt_path={iris_run / 'checkpoints' / 'last.ckpt'}",
        *(f"{k}={v}" for k, v in files.items()),
        cwd=tmp_path,
    )
    line = only_error_line(proc)
    assert "a" in line and not (tmp_path / "out.csv").exists(), line


# -- paths Hydra's override grammar cannot read unquoted --------------------------------------------
@pytest.mark.parametrize(
    "arg, quoted",
    [
        ("ckpt_path=runs/é漢/last.ckpt", "\"ckpt_path='runs/é漢/last.ckpt'\""),
        ("input=a=b,c[1].csv", "\"input='a=b,c[1].csv'\""),
        ("output=it's.csv", "\"output='it\\'s.csv'\""),
        ("ckpt_path=~/runs/last.ckpt", "\"ckpt_path='~/runs/last.ckpt'\""),
        ('input=a"$b.csv', "input='a\"$b.csv' (itself quoted for the shell)"),
    ],
)
def test_an_override_hydra_cannot_read_is_one_line_with_its_quoted_form(arg, quoted, capsys):
    """A non-ASCII, '=', ',', bracket, quote or '~' path, unquoted: Hydra printed its lexer's exception
    (LexerNoViableAltException ... exit 1), no word of quoting."""
    import app

    with pytest.raises(SystemExit) as exc:
        app.check_group_choices(["data=iris", arg])
    assert exc.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: config: cannot read the override {arg!r}") and "\n" not in line, line
    assert f"quote the value for Hydra: {quoted}" in line, line


def test_unreadable_overrides_without_a_quoted_form(capsys):
    """A key Hydra cannot read, and a sweep's comma (quoting it whole would make one value), get the
    grammar's page instead of a wrong suggestion; a flag's value is not an override."""
    import app

    for argv in (["data.pâth=1"], ["-m", "data.path=é1,é2"]):
        with pytest.raises(SystemExit):
            app.check_group_choices(argv)
        line = capsys.readouterr().err.strip()
        assert "override_grammar" in line and "quote the value for Hydra:" not in line, line
    app.check_group_choices(["--config-dir", "/tmp/a=b[c", "data=iris"])


def test_a_quoted_unicode_path_works_end_to_end(iris_run, tmp_path):
    folder = tmp_path / "données é漢 =,[x]"
    folder.mkdir()
    shutil.copy(iris_run / "checkpoints" / "last.ckpt", folder / "m.ckpt")
    from sklearn.datasets import load_iris

    load_iris(as_frame=True).data.to_csv(folder / "in.csv", index=False)
    args = [
        f"{k}='{folder / f}'" for k, f in (("ckpt_path", "m.ckpt"), ("input", "in.csv"), ("output", "o.csv"))
    ]
    proc = cli("predict.py", *args, cwd=tmp_path, home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (folder / "o.csv").is_file()


# -- interrupted runs ----------------------------------------------------------------------------------
def test_ctrl_c_stops_with_130_a_resume_line_and_the_resume_continues(tmp_path):
    """SIGINT mid-run: Lightning printed "Detected KeyboardInterrupt, attempting graceful shutdown ..."
    and exited 1, like a crash, with no resume command (SIGTERM: 143 and one line naming last.ckpt)."""
    import signal

    import torch

    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    args = ["data=xor", "data.n=4000", "trainer.max_epochs=500", f"hydra.run.dir={run}", *QUIET]
    returncode, err = interrupt_training(args, last, signal.SIGINT, cwd=tmp_path)
    assert returncode == 128 + 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "interrupted (SIGINT)" in errors[0] and f"ckpt_path={last}" in errors[0], err[
        -2000:
    ]
    assert not (run / "metrics.json").exists()
    done = torch.load(last, weights_only=True)["epoch"] + 1  # epochs the checkpoint holds
    resumed = cli(
        "train.py",
        *args[:2],
        f"trainer.max_epochs={done + 1}",
        f"hydra.run.dir={run}",
        f"ckpt_path={last}",
        *QUIET,
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed at epoch {done}: 1 epochs trained now" in resumed.stdout + resumed.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
@pytest.mark.parametrize("key, extra", [("hydra.run.dir", []), ("hydra.sweep.dir", ["-m"])])
def test_a_directory_another_running_run_holds_is_refused(tmp_path, key, extra):
    """Two runs started together into one hydra.run.dir both passed the 'already holds a run' check
    (nothing written yet), trained into it at once and crashed in the CSV logger with mixed
    checkpoints. A running run holds a lock on its directory (here: this test holds it)."""
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        proc = run_script(
            "train.py", *extra, "data=iris", "trainer.max_epochs=1", f"{key}={run}", cwd=tmp_path
        )
    finally:
        os.close(fd)
    line = only_error_line(proc)
    assert "is in use by another run that is still running" in line, line
    assert not list(run.iterdir())


# -- saving Θ and estimators: nothing half-written, the error names the file ------------------------------
def test_save_thetas_that_fails_half_way_leaves_the_old_file(tmp_path, monkeypatch):
    """save_thetas opened the target 'wb' and wrote into it: a write that failed half-way (disk full,
    Ctrl-C) left a torn file where the previous good one was. It now writes as est.save does."""
    import scipy.io

    import lecturenn as ln

    net = ln.ThetaMLP([2, 3, 1], generator=0)
    for name in ("t.npz", "t.mat"):
        ln.save_thetas(net, tmp_path / name)
    before = {name: (tmp_path / name).read_bytes() for name in ("t.npz", "t.mat")}

    def torn(f, *args, **kwargs):
        f.write(b"PK\x03\x04 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("numpy.savez", torn)
    monkeypatch.setattr(scipy.io, "savemat", torn)
    other = ln.ThetaMLP([2, 4, 1], generator=1)
    for name in ("t.npz", "t.mat"):
        with pytest.raises(OSError, match="No space left"):
            ln.save_thetas(other, tmp_path / name)
    assert {name: (tmp_path / name).read_bytes() for name in ("t.npz", "t.mat")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.mat", "t.npz"]  # no temporary file left
    monkeypatch.undo()
    assert ln.load_thetas(tmp_path / "t.mat").sizes == [2, 3, 1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_save_into_a_read_only_folder_names_the_file(tmp_path):
    """est.save('ro/c.npz'): PermissionError named mkstemp's '/.../ro/tmpe70hrvt7.npz'."""
    import numpy as np

    import lecturenn as ln

    clf = ln.ThetaMLPClassifier((3,), max_iter=2).fit(np.eye(4), [0, 1, 0, 1])
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        for save in (clf.save, lambda p: ln.save_thetas(clf.net_, p)):
            with pytest.raises(PermissionError, match=r"cannot save to '.*ro/c\.npz'"):
                save(str(tmp_path / "ro" / "c.npz"))
    finally:
        (tmp_path / "ro").chmod(0o755)


# -- eval.py from another directory ----------------------------------------------------------------------
def test_eval_from_another_directory_finds_the_runs_relative_data(tmp_path):
    """A run trained with data.path=tables/in.csv (relative), evaluated from elsewhere without data=:
    eval.py read the run's config and said 'data file not found: tables/in.csv' though the user gave
    no path. A relative data path is relative to the directory the run started in."""
    from sklearn.datasets import load_iris

    home, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (home / "tables").mkdir(parents=True)
    elsewhere.mkdir()
    frame = load_iris(as_frame=True).frame
    frame.to_csv(home / "tables" / "in.csv", index=False)
    run = home / "run"
    trained = cli(
        "train.py", "data=table", "data.path=tables/in.csv", "data.target=target", "trainer.max_epochs=1",
        f"hydra.run.dir={run}", *QUIET, cwd=home,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    proc = cli("eval.py", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(elsewhere.glob("outputs/eval/runs/*/eval_metrics.json"))


# -- long column lists in one-line messages --------------------------------------------------------------
def test_missing_features_of_a_wide_model_are_shortened():
    """predict.py with a digits checkpoint on an iris table: the one-line error listed all 64 missing
    pixel columns and then all 64 trained ones (1700 characters); the file reader already shortened."""
    from lecturenn.data import DataError, SklearnDataModule

    dm = SklearnDataModule("digits")
    dm.setup("fit")
    with pytest.raises(DataError) as info:
        dm.info.transform.for_columns(["sepal length (cm)", "target"])
    line = str(info.value)
    assert "\n" not in line and len(line) < 500 and line.count("(64 in all)") == 2, line
    assert line.startswith("input is missing feature column(s) ['pixel_0_0', "), line
