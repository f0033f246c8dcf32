"""What the registries of activations and heads share: a name → entry table that other formats read.

An entry (:class:`~lecturenn.activations.Activation`, :class:`~lecturenn.heads.Head`) is data:
its callables plus the names the same thing has elsewhere — ``sklearn`` (scikit-learn's
``activation`` / ``out_activation_``), ``torch_module`` (a factory of the ``torch.nn`` module that
computes it) and ``onnx`` (the ONNX operator). Code that needs one of those reads the field; no
``if name == ...`` anywhere. A field left ``None`` means "that format cannot express this entry",
and the converter for that format says so, naming the entry and the format.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["Registry"]

E = TypeVar("E")


class Registry(dict[str, E], Generic[E]):
    """A ``dict`` name → entry, in registration order (built-ins first), with checked look-ups.

    Args:
        kind: what an entry is, for messages ("activation", "output head").
        entry_type: the entry class; :meth:`lookup` passes an instance of it through unchanged.
    """

    def __init__(self, kind: str, entry_type: type) -> None:
        super().__init__()
        self.kind, self.entry_type = kind, entry_type

    def lookup(self, name) -> E:
        """The entry called ``name`` (an entry itself is returned as is).

        Raises ``TypeError`` for a non-string, ``ValueError`` listing the known names otherwise."""
        if isinstance(name, self.entry_type):
            return name
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} must be a name (str), got {type(name).__name__}")
        try:
            return self[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of {sorted(self)} (or register it first)"
            ) from None

    def add(self, entry: E) -> E:
        """Register ``entry`` under ``entry.name``; ``ValueError`` if that name is taken."""
        name = entry.name
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValueError(
                f"{self.kind} name must be a non-empty string without surrounding spaces, got {name!r}"
            )
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def find(self, field: str, value) -> E | None:
        """The first entry (registration order) whose ``field`` equals ``value``, or None."""
        return next((e for e in self.values() if getattr(e, field) == value), None)

    def aliases(self, field: str) -> Mapping[str, str]:
        """A live read-only mapping: every registered name, and every entry's ``field`` value (e.g.
        its scikit-learn name), to the registered name. Registered names win over aliases."""
        return _Aliases(self, field)


class _Aliases(Mapping[str, str]):
    def __init__(self, registry: Registry, field: str) -> None:
        self.registry, self.field = registry, field

    def _table(self) -> dict[str, str]:
        table = {
            getattr(e, self.field): n for n, e in reversed(self.registry.items()) if getattr(e, self.field)
        }
        return {**table, **{n: n for n in self.registry}}

    def __getitem__(self, key: str) -> str:
        return self._table()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())
