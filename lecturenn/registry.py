"""What the registries of activations and heads share: a name → entry table that other formats read.

An entry (:class:`~lecturenn.activations.Activation`, :class:`~lecturenn.heads.Head`) is data:
its callables plus the names the same thing has elsewhere — ``sklearn`` (scikit-learn's
``activation`` / ``out_activation_``), ``torch_module`` (a factory of the ``torch.nn`` module that
computes it) and ``onnx`` (the ONNX operator). Code that needs one of those reads the field; no
``if name == ...`` anywhere. A field left ``None`` means "that format cannot express this entry",
and the converter for that format says so, naming the entry and the format.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from torch import nn

__all__ = ["NAME_PATTERN", "Registry", "check_format_names"]

E = TypeVar("E")

#: What a registered name may be: it travels in Hydra overrides (``model.activation=NAME``) and in
#: file names, so no spaces, '/', '=', ',', quotes, brackets or newlines.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def check_format_names(kind: str, entry) -> None:
    """The fields every entry shares, checked at construction: ``sklearn`` and ``onnx`` are a
    non-empty ``str`` or None; ``torch_module`` is None, an ``nn.Module`` class or a zero-argument
    factory returning an ``nn.Module`` (called once here). ``TypeError`` naming the field otherwise."""
    where = f"{kind} {entry.name!r}"
    for part in ("sklearn", "onnx"):
        value = getattr(entry, part)
        if value is not None and not (isinstance(value, str) and value):
            raise TypeError(f"{where}: {part} must be a non-empty str or None, got {value!r}")
    factory = entry.torch_module
    if factory is None:
        return
    rule = "torch_module must be a torch.nn.Module class or a zero-argument factory returning one"
    if isinstance(factory, nn.Module):
        raise TypeError(
            f"{where}: {rule}, got the instance {factory!r}; pass its class (nn.{type(factory).__name__}) "
            "or a factory such as lambda: nn.LeakyReLU(0.01)"
        )
    if not callable(factory):
        raise TypeError(f"{where}: {rule}, got {factory!r}")
    try:
        module = factory()
    except Exception as err:  # noqa: BLE001 - any failure of the user's factory is reported as such
        raise TypeError(
            f"{where}: {rule}; calling torch_module() failed: {type(err).__name__}: {err}"
        ) from None
    if not isinstance(module, nn.Module):
        raise TypeError(f"{where}: {rule}; torch_module() returned {type(module).__name__} {module!r}")


class Registry(dict[str, E], Generic[E]):
    """A ``dict`` name → entry, in registration order (built-ins first), with checked look-ups.

    Names match ``[A-Za-z_][A-Za-z0-9_.-]*`` (:data:`NAME_PATTERN`). Each entry's ``alias_field``
    (its scikit-learn name) is a second name for it (:meth:`aliases`), so names and aliases are one
    namespace: a new entry may not be named like another entry's alias, nor take another entry's
    name or alias as its alias.

    Args:
        kind: what an entry is, for messages ("activation", "output head").
        entry_type: the entry class; :meth:`lookup` passes an instance of it through unchanged.
        alias_field: the entry field holding its other name ("sklearn"), or None.
        alias_label: that name in messages ("scikit-learn name").
    """

    def __init__(
        self, kind: str, entry_type: type, alias_field: str | None = None, alias_label: str = "alias"
    ) -> None:
        super().__init__()
        self.kind, self.entry_type = kind, entry_type
        self.alias_field, self.alias_label = alias_field, alias_label

    def _not_a_name(self, name, choices=None) -> TypeError:
        return TypeError(
            f"{self.kind} must be a name (str), got {name!r} ({type(name).__name__}); "
            f"choose one of {sorted(self if choices is None else choices)}"
        )

    def lookup(self, name) -> E:
        """The entry called ``name`` (an entry itself is returned as is).

        Raises ``TypeError`` for a non-string, ``ValueError`` listing the known names otherwise."""
        if isinstance(name, self.entry_type):
            return name
        if not isinstance(name, str):
            raise self._not_a_name(name)
        try:
            return self[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of {sorted(self)} (or register it first)"
            ) from None

    def add(self, entry: E) -> E:
        """Register ``entry`` under ``entry.name``. ``TypeError`` for a name that is not a str,
        ``ValueError`` for a name outside :data:`NAME_PATTERN`, a name taken, or a name/alias that
        clashes with another entry's name or alias (see the class docstring)."""
        name = entry.name
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a str, got {name!r} ({type(name).__name__})")
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{self.kind} name must be a non-empty string without surrounding spaces, of letters, "
                f"digits, '_', '.', '-' and starting with a letter or '_' (it goes into Hydra overrides "
                f"and file names), got {name!r}"
            )
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if self.alias_field is not None:
            owner = self.find(self.alias_field, name)
            if owner is not None:
                raise ValueError(
                    f"{self.kind} name {name!r} is the {self.alias_label} of the registered {self.kind} "
                    f"{owner.name!r} (it already means that one); choose another name"
                )
            alias = getattr(entry, self.alias_field)
            if alias is not None and alias != name and alias in self:
                raise ValueError(
                    f"{self.kind} {name!r}: {self.alias_field}={alias!r} is the name of the registered "
                    f"{self.kind} {alias!r}, so it would mean that one; give this {self.kind}'s own "
                    f"{self.alias_label} (None if it has none)"
                )
            owner = self.find(self.alias_field, alias) if alias is not None else None
            if owner is not None:
                raise ValueError(
                    f"{self.kind} {name!r}: {self.alias_field}={alias!r} is already the {self.alias_label} "
                    f"of the registered {self.kind} {owner.name!r}; one {self.alias_label} names one "
                    f"{self.kind} (leave {self.alias_field}=None if there is none)"
                )
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
        if not isinstance(key, str):
            raise self.registry._not_a_name(key, self._table())
        return self._table()[key]

    def __contains__(self, key) -> bool:
        if not isinstance(key, str):
            raise self.registry._not_a_name(key, self._table())
        return key in self._table()

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())
