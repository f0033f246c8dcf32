"""lecturenn.atomic: the one way lecturenn writes a user's file (checkpoints, Θ files, saved estimators,
predict.py's table) — whole or not at all."""

import os
import stat

import pytest

from lecturenn.atomic import atomic_path, write_atomically


def test_the_file_appears_whole_with_a_new_files_mode_and_nothing_else_is_left(tmp_path):
    path = tmp_path / "out.bin"
    old = os.umask(0o027)
    try:
        write_atomically(path, lambda f: f.write(b"abc"))
    finally:
        os.umask(old)
    assert path.read_bytes() == b"abc" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_failure_in_the_middle_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, half_then_fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_without_overwrite_a_file_that_appeared_meanwhile_is_kept(tmp_path):
    path = tmp_path / "out.csv"
    with pytest.raises(FileExistsError):
        with atomic_path(path, overwrite=False) as tmp:
            tmp.write_text("new")
            path.write_text("someone else's")  # appeared after the caller checked
    assert path.read_text() == "someone else's" and len(list(tmp_path.iterdir())) == 1
    fresh = tmp_path / "fresh.csv"
    with atomic_path(fresh, overwrite=False) as tmp:
        tmp.write_text("new")
    assert fresh.read_text() == "new"


def test_a_symbolic_link_is_written_through(tmp_path):
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    write_atomically(link, lambda f: f.write(b"new"))
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_a_folder_that_cannot_take_the_file_is_named_not_the_temporary_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cannot save to '.*missing/out\.bin'"):
        write_atomically(tmp_path / "missing" / "out.bin", lambda f: f.write(b"x"))


def test_what_open_would_refuse_is_refused_naming_the_target_and_what_it_accepts_is_accepted(tmp_path):
    # hostile round 10b: a loop of links was replaced by a file, a folder was named by its temporary
    # file, a 250-character name failed (the temporary name added ~14), a private file became 0644
    (tmp_path / "a.npz").symlink_to("b.npz")
    (tmp_path / "b.npz").symlink_to("a.npz")
    with pytest.raises(OSError, match=r"cannot save to '.*\.npz': it is a loop of symbolic links"):
        write_atomically(tmp_path / "a.npz", lambda f: f.write(b"x"))
    assert (tmp_path / "a.npz").is_symlink()
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(IsADirectoryError, match=r"cannot save to '.*d\.npz': it is a directory"):
        write_atomically(tmp_path / "d.npz", lambda f: f.write(b"x"))
    long = tmp_path / ("n" * 250)
    write_atomically(long, lambda f: f.write(b"x"))
    assert long.read_bytes() == b"x"
    private = tmp_path / "private.npz"
    private.write_bytes(b"old")
    private.chmod(0o600)
    write_atomically(private, lambda f: f.write(b"new"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and private.read_bytes() == b"new"
    with pytest.raises(FileExistsError, match=r"^\[Errno 17\] '.*private\.npz' already exists$"):
        with atomic_path(private, overwrite=False) as tmp:
            tmp.write_bytes(b"newer")
