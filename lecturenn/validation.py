"""Argument checks shared by the public API: one place for "an integer >= 1, not a bool".

Every check raises ``TypeError`` when the value is not of the right kind (``True`` is not a
number here, though Python says it is) and ``ValueError`` when it is out of range; the message
names the argument, the rule and the value, e.g. ``lam (λ) must be a finite number >= 0, got -1.0``.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from numbers import Integral, Real
from pathlib import Path

__all__ = ["is_integer", "is_number", "check_integer", "check_number", "why_not_a_file", "require_file"]


def why_not_a_file(path) -> str | None:
    """None when ``path`` is a regular file (symbolic links followed), else why not, as the end of a
    sentence naming it: "does not exist", "is a directory", "is a symbolic link to '<target>', which
    does not exist", "is a loop of symbolic links", "is not a regular file" (a pipe, a device). The
    one reading of a user's input path for every "file not found" message."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a loop of symbolic links"
        if path.is_symlink():
            return f"is a symbolic link to {os.readlink(path)!r}, which does not exist"
        return "does not exist"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory"
    return None if stat.S_ISREG(info.st_mode) else "is not a regular file"


def require_file(path) -> None:
    """``FileNotFoundError`` unless ``path`` is a regular file: "no such file: '<path>'", or
    "'<path>' <why>" (:func:`why_not_a_file`) — the Θ files' and saved estimators' loads."""
    reason = why_not_a_file(path)
    if reason == "does not exist":
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    if reason:
        raise FileNotFoundError(f"{str(path)!r} {reason}")


def is_integer(value) -> bool:
    """An integral number that is not a bool (numpy integers count)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number that is not a bool (numpy floats and ints count)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _range(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def _in_range(value, low, high, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def check_integer(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``int(value)`` if ``value`` is an integer (not a bool) in [low, high]; else TypeError/ValueError."""
    rule = _range(low, high, False, False)
    kind = f"an integer {rule}".strip()
    if not is_integer(value):
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if not _in_range(value, low, high, False, False):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def check_number(
    value,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``float(value)`` if ``value`` is a finite real number (not a bool) in the range; a 1-element
    tensor or array counts as its number. TypeError for another kind, ValueError outside the range
    (NaN and ±inf are out of every range)."""
    if (
        type(value) in (float, int)
        and math.isfinite(value)
        and _in_range(value, low, high, low_open, high_open)
    ):
        return float(value)  # the common case, without building the message (called on every step)
    if hasattr(value, "item") and getattr(value, "shape", None) in ((), (1,)):  # tensor / numpy scalar
        value = value.item()
    kind = f"a finite number {_range(low, high, low_open, high_open)}".strip()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value) or not _in_range(value, low, high, low_open, high_open):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return float(value)
