"""The one exception type of the data layer."""

from __future__ import annotations

__all__ = ["DataError", "shown_names"]


class DataError(ValueError):
    """Bad data (file, column, values): the message is one clear line naming the problem.

    A subclass of ``ValueError`` so that generic ``except ValueError`` handlers still catch it.
    Bad *arguments* (an unknown dataset name, a fraction out of range) raise plain ``ValueError``.
    """


def shown_names(names, limit: int = 20) -> str:
    """Column names for a one-line message: the first ``limit``, then how many there are in all."""
    names = [str(n) for n in names]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
