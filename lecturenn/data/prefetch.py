"""``Prefetched``: run an iterator one item ahead in a background thread.

The streaming data module reads, regroups and standardises the next shuffle buffer from disk while
the current one trains (file reads and numpy's copies release the GIL). The items, and so the
batches, are exactly those of the plain iterator, in the same order: the iterator itself runs
unchanged, only on another thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Prefetched"]

T = TypeVar("T")
_ITEM, _END, _ERROR = range(3)


class Prefetched(Generic[T]):
    """Iterate ``source`` in a daemon thread, at most ``depth`` items ahead of the consumer: the
    thread makes item k + depth only once the consumer has asked for item k + 1 (and so is done
    with item k), so at most ``depth`` items exist besides the one in use.

    An exception raised by ``source`` is raised again by ``next()`` (with its traceback) after the
    items before it. :meth:`close` (also on garbage collection of a consumer generator that wraps
    it in ``try/finally``) stops the thread, closes ``source`` and drops the items read ahead.
    """

    def __init__(self, source: Iterator[T], depth: int = 1) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._slots = threading.Semaphore(depth + 1)  # the consumer's item and depth more
        self._stop = threading.Event()
        self._finished = self._taken = False
        self._thread = threading.Thread(
            target=self._run, args=(source,), name="lecturenn-prefetch", daemon=True
        )
        self._thread.start()

    def _run(self, source: Iterator[T]) -> None:
        try:
            while self._wait_for_slot():  # the next item is made only when there is room for it
                try:
                    item = next(source)
                except StopIteration:
                    self._put((_END, None))
                    return
                if not self._put((_ITEM, item)):
                    return
                del item  # the consumer's now: this frame must not keep it alive
        except BaseException as err:  # handed to the consumer
            self._put((_ERROR, err))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's finally blocks (open files) run in the thread that ran it

    def _wait_for_slot(self) -> bool:
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.05):
                return True
        return False

    def _put(self, message) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetched[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        if self._taken:  # the consumer asks for the next item: it is done with the previous one
            self._slots.release()
        self._taken = True
        kind, value = self._queue.get()
        if kind == _ITEM:
            return value
        self._finished = True
        self._thread.join()
        if kind == _ERROR:
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop reading ahead: the thread ends (after the item it is reading) and is joined."""
        self._finished = True
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)  # unblocks a put in progress
            except queue.Empty:
                pass
        self._thread.join()
