"""The one exception type of the data layer."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad data (file, column, values): the message is one clear line naming the problem.

    A subclass of ``ValueError`` so that generic ``except ValueError`` handlers still catch it.
    Bad *arguments* (an unknown dataset name, a fraction out of range) raise plain ``ValueError``.
    """
