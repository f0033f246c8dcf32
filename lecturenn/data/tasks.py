"""What the targets say: the task (given, or inferred by one rule), the classes, and their checks.

One rule for ``task="auto"`` (:func:`auto_task`), applied to a whole table by
:func:`~lecturenn.data.tables.infer_task` and to a file streamed in chunks by :class:`TargetScan`;
one check of a classification target's classes (:func:`check_classes`) for both.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

__all__ = ["MAX_CLASSES", "MAX_LABELS", "TASKS", "TargetScan", "auto_task", "check_classes", "check_task"]

TASKS = ("binary", "multiclass", "multilabel", "regression")
MAX_CLASSES = 20  # an integer target with at most this many values (and < n/2) is a class label
MAX_LABELS = 10_000  # distinct class labels a streamed classification target may have


def check_task(task: str, auto: bool = True) -> str:
    """``task`` if it is one of :data:`TASKS` (or ``"auto"`` where ``auto``), else ``ValueError``."""
    if (auto and task == "auto") or task in TASKS:
        return task
    choices = ("'auto' or one of " if auto else "one of ") + ", ".join(TASKS)
    raise ValueError(f"task must be {choices}; got {task!r}")


def auto_task(
    n_rows: int,
    n_targets: int,
    numeric: bool,
    boolean: bool,
    integral: bool,
    n_values: int | None,
    zero_one: bool,
) -> str:
    """The ``task="auto"`` rule.

    One target: non-numeric, boolean, or integer with few values (``n_values`` <= 20 and < n/2;
    None: more than that) → classification (2 classes → binary, else multiclass); otherwise
    regression. Several targets: all 0/1 → multilabel, else regression.
    """
    if n_targets > 1:
        return "multilabel" if numeric and zero_one else "regression"
    few = n_values is not None and n_values <= MAX_CLASSES and n_values < n_rows / 2
    if not numeric or boolean or (integral and few):
        return "binary" if n_values == 2 else "multiclass"
    return "regression"


def check_classes(task: str, target_names: list[str], classes: list[str]) -> None:
    """``DataError`` unless a binary/multiclass target is one column with 2 (binary) or ≥ 2 classes."""
    if len(target_names) != 1:
        raise DataError(f"task {task!r} needs one target column; got {target_names}")
    if len(classes) < 2:
        raise DataError(f"target {target_names[0]!r} has only one class ({classes}); nothing to classify")
    if task == "binary" and len(classes) != 2:
        raise DataError(
            f"task 'binary' needs exactly 2 classes; target {target_names[0]!r} has {len(classes)}"
        )


class TargetScan:
    """The targets Y (m, k) of every chunk, summarised for ``task="auto"``, class names and checks.

    Tracks: numeric or not (strings are class labels), all values integral, all values 0/1, and —
    for one target that may be a class label — its sorted distinct values, up to ``MAX_CLASSES``
    (``task="auto"``, numeric: more means regression) or ``MAX_LABELS`` (classification).
    """

    def __init__(self, task: str, target_names: list[str]) -> None:
        self.task, self.target_names = task, target_names
        self.numeric: bool | None = None
        self.boolean = self.integral = self.zero_one = True
        self.values: np.ndarray | None = None  # distinct labels; None: not tracked or too many
        self.train_values: np.ndarray | None = None  # the distinct labels of the training chunks
        self.track = len(target_names) == 1 and task in ("auto", "binary", "multiclass")
        self.ones = self.train_ones = np.zeros(len(target_names), dtype=bool)  # columns with a 1

    def add(self, Y: np.ndarray, train: bool = False) -> None:
        """Fold in a chunk Y (m, k) (numbers already checked finite by the caller); ``train``: the
        chunk belongs to the training split."""
        if self.numeric is None:
            self.numeric = Y.dtype.kind in "biuf"
            self.boolean = Y.dtype.kind == "b"
            self.values = self.train_values = np.unique(Y[:0]) if self.track else None
        if self.numeric:
            if Y.dtype.kind == "f":
                self.integral &= bool((Y == np.round(Y)).all())
            one = Y == 1
            self.zero_one &= bool((one | (Y == 0)).all())
            if self.zero_one:  # which labels a multilabel target has, in all rows and in train
                seen = one.any(axis=0)
                self.ones = self.ones | seen
                if train:
                    self.train_ones = self.train_ones | seen
        if self.values is not None:
            labels = np.unique(Y[:, 0])
            self.values = np.union1d(self.values, labels)
            if train:
                self.train_values = np.union1d(self.train_values, labels)
            cap = MAX_CLASSES if self.task == "auto" and self.numeric else MAX_LABELS
            if len(self.values) > cap:
                if self.task != "auto" or not self.numeric:
                    raise DataError(
                        f"target {self.target_names[0]!r} has more than {MAX_LABELS} distinct labels; "
                        "is it a regression target?"
                    )
                self.values = self.train_values = None  # auto, numeric, many values: regression

    def decide(self, n: int) -> str:
        """The task (:func:`auto_task` for ``"auto"``), checked against the data."""
        task = self.task
        if task == "auto":
            k = None if self.values is None else len(self.values)
            args = (self.numeric, self.boolean, self.integral, k, self.zero_one)
            task = auto_task(n, len(self.target_names), *args)
        if task in ("binary", "multiclass"):
            check_classes(task, self.target_names, self.classes() if len(self.target_names) == 1 else [])
        elif not self.numeric:
            raise DataError(
                f"target {self.target_names[0]!r} holds labels, not numbers, but task is {task!r}; "
                "use task='multiclass' or 'binary' for class labels"
            )
        elif task == "multilabel" and not self.zero_one:
            raise DataError("multilabel targets must be 0/1 in every column")
        return task

    def untrained(self, task: str) -> str | None:
        """What the training chunks lack: ``"class 'c' has no row"`` (binary/multiclass) or ``"label
        column 'y[1]' has no 1"`` (multilabel) for the first such; ``None`` when they lack nothing."""
        if task in ("binary", "multiclass") and self.values is not None and self.train_values is not None:
            absent = np.setdiff1d(self.values, self.train_values)
            if len(absent):
                name = self.classes()[int(np.searchsorted(self.values, absent[0]))]
                return f"class {name!r} has no row"
        if task == "multilabel":
            absent = np.flatnonzero(self.ones & ~self.train_ones)
            if len(absent):
                return f"label column {self.target_names[int(absent[0])]!r} has no 1"
        return None

    def classes(self) -> list[str]:
        """Class names in label-encoded (sorted) order; an integral float label 1.0 is named "1"."""
        assert self.values is not None
        if self.values.dtype.kind == "f" and self.integral:
            return [str(int(v)) for v in self.values]
        return [str(v) for v in self.values]
