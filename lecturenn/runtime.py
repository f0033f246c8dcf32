"""Process-level settings that make CPU training fast and its timings steady.

glibc's ``malloc`` adapts its mmap threshold as blocks are freed and returns the top of the heap to
the OS once more than ``M_TRIM_THRESHOLD`` bytes are free there. A training step allocates and
frees the same few large tensors (a 256 × 784 float32 batch is 800 KB) over and over, and which of
them end up in fresh ``mmap``/``brk`` pages — each page faulting on first touch — depends on the
process's allocation history: some phases of a process fault pages on every step and others not,
so the same loop's epoch time depends on what ran before it (measured: BENCHMARKS.md, "Training
epoch", glibc malloc thresholds). Fixing both thresholds removes that: large blocks are reused
from the heap, and freed memory (up to ``trim_threshold``) stays with the process. PyTorch's CPU
performance guide recommends a caching allocator (jemalloc, tcmalloc) for the same reason; this
needs no extra library.

The library never calls this on import: it changes the whole process. The training app
(``scripts/``) and the benchmarks call it at start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from .validation import check_integer

__all__ = ["configure_malloc"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
INT_MAX = 2**31 - 1  # mallopt's value is a C int


def configure_malloc(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Fix glibc's mmap and trim thresholds (bytes); returns False where it cannot (not glibc).

    Blocks below ``mmap_threshold`` come from the heap (reused, no fresh pages per step); up to
    ``trim_threshold`` bytes of free heap are kept rather than returned to the OS. Setting the
    thresholds explicitly also switches off glibc's dynamic adjustment of them. Each threshold is
    an integer in [0, 2³¹ − 1] (mallopt takes a C int): TypeError for another kind (a bool too),
    ValueError out of range.
    """
    mmap_threshold = check_integer(mmap_threshold, "mmap_threshold", low=0, high=INT_MAX)
    trim_threshold = check_integer(trim_threshold, "trim_threshold", low=0, high=INT_MAX)
    if not sys.platform.startswith("linux"):
        return False
    for name in (v for v in (ctypes.util.find_library("c"), "libc.so.6") if v):
        try:
            libc = ctypes.CDLL(name)
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            continue
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        ok = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
        return ok and mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
    return False
