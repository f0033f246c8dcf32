"""lecturenn.runtime.configure_malloc: glibc's thresholds fixed where there is glibc, else a no-op."""

import platform
import sys

import pytest

from lecturenn.runtime import configure_malloc


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="needs glibc"
)
def test_sets_the_thresholds_on_glibc():
    assert configure_malloc() is True
    assert configure_malloc(mmap_threshold=1 << 20, trim_threshold=1 << 24) is True
    configure_malloc()  # back to the app's values


def test_is_a_no_op_elsewhere(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert configure_malloc() is False
