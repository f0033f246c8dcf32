"""Files written whole or not at all — the one implementation for every file lecturenn writes for a user:
checkpoints (:class:`lecturenn.training.checkpoint.AtomicCheckpointIO`), Θ files and saved estimators
(:func:`lecturenn.interop.files.save_thetas`, ``est.save``) and ``predict.py``'s output table.

The content goes to a temporary file in the target's folder (``.<name>.<random>.tmp``), is flushed to
disk (``fsync``) and is then renamed over the target (``os.replace``: atomic on POSIX and Windows) —
so a crash, a full disk, an exception in the writer or SIGKILL in the middle leaves the target as it
was, never torn. A SIGKILL can leave the hidden temporary file behind; it never replaces the target.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_atomically"]


@contextmanager
def atomic_path(path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yields a temporary path next to ``path`` for the caller to write; when the block ends without an
    exception the file is flushed to disk and moved to ``path``, else removed (``path`` untouched).

    * ``overwrite=False``: the move is a hard link, which raises ``FileExistsError`` rather than replace
      a file that appeared since the caller checked (a rename after a check where the file system has
      no hard links).
    * A symbolic link at ``path`` is written through (its target is replaced, the link stays), as
      ``open(path, "wb")`` does.
    * The file gets the mode ``open(path, "wb")`` leaves: an existing file's own, else a new file's
      (0o666 less the umask), not ``mkstemp``'s 0600.
    * A folder that cannot take the file (missing, read-only, not a folder), a folder or a loop of
      symbolic links at ``path`` raise the ``OSError`` of their kind naming ``path``, not the temporary
      file.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
        if path.is_symlink():  # realpath stops at a loop of links: open() would fail, so does this
            raise OSError(errno.ELOOP, f"cannot save to {str(path)!r}: it is a loop of symbolic links")
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"cannot save to {str(path)!r}: it is a directory")
    try:  # a short temporary name: a target name near the file system's 255 bytes must still work
        fd, name = tempfile.mkstemp(prefix=f".{path.name[:32]}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise type(err)(err.errno, f"cannot save to {str(path)!r}: {err.strerror}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, _mode_of(path))
        yield tmp
        with open(tmp, "rb+") as f:  # the bytes on disk before the name points at them
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _mode_of(path: Path) -> int:
    """The mode ``open(path, "wb")`` would leave: an existing file's own (a private 0600 file stays
    private), else a new file's, 0o666 less the umask (not ``mkstemp``'s 0600)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def write_atomically(path, write: Callable) -> None:
    """``write(f)`` into a binary file object (opened ``wb``) that becomes ``path`` whole or not at all
    (:func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def _link_new(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, f"{str(path)!r} already exists") from None
    except OSError:  # no hard links here (some network or FUSE file systems)
        if path.exists():
            raise FileExistsError(errno.EEXIST, f"{str(path)!r} already exists") from None
        os.replace(tmp, path)


def _umask() -> int:
    """The process's umask (read by setting it: there is no other way to read it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
