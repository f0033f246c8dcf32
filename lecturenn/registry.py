"""What the registries of activations and heads share: a name → entry table that other formats read.

An entry (:class:`~lecturenn.activations.Activation`, :class:`~lecturenn.heads.Head`) is data:
its callables plus the names the same thing has elsewhere — ``sklearn`` (scikit-learn's
``activation`` / ``out_activation_``), ``torch_module`` (a factory of the ``torch.nn`` module that
computes it) and ``onnx`` (the ONNX operator). Code that needs one of those reads the field; no
``if name == ...`` anywhere. A field left ``None`` means "that format cannot express this entry",
and the converter for that format says so, naming the entry and the format.

A :class:`Family` is a parametrised entry: ``NAME:VALUE`` (``leaky_relu:0.2``) names the entry
``make(NAME:VALUE, VALUE)``, built on first use and cached, and ``NAME`` alone is the family's
default. The name is data — the same string in Python, on the command line
(``model.activation=leaky_relu:0.2``, no quoting: Hydra's grammar reads ``f(x)`` as a function
call), in checkpoints, Θ files and configs — and its canonical spelling (``leaky_relu:0.20`` →
``leaky_relu:0.2``, the default → ``NAME``) is the entry's ``name``, so it round-trips unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from torch import nn

__all__ = ["NAME_PATTERN", "Family", "Registry", "check_format_names"]

E = TypeVar("E")

#: What a registered name may be: it travels in Hydra overrides (``model.activation=NAME``) and in
#: file names, so no spaces, '/', '=', ',', quotes, brackets or newlines.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

# A family's parameter as written after the ':': an ASCII decimal literal (no '_', no unicode digits,
# no 'nan' / 'inf', which Python's float() would all accept).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LEADING_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)(.*)", re.DOTALL)


@dataclass(frozen=True)
class Family(Generic[E]):
    """A parametrised registry entry, one real parameter: ``NAME:VALUE`` → ``make("NAME:VALUE", VALUE)``.

    Args:
        name: the family's name; ``NAME`` alone is the entry at ``default`` (registered as usual).
        param: the parameter's name in messages and docs ("slope", "alpha").
        default: its value for ``NAME`` alone.
        low, high: the open interval VALUE must lie in (``low < VALUE < high``; ``high`` may be inf).
        make: ``(canonical name, VALUE) -> entry``; the entry's name must be the one given.
        note: why the interval is what it is, appended to messages ("0 is relu, 1 is identity").
        torch_param: the attribute of the entry's ``torch_module()`` that holds VALUE
            (``negative_slope`` of ``nn.LeakyReLU``), so a module converts back to ``NAME:VALUE``.
    """

    name: str
    param: str
    default: float
    low: float
    high: float
    make: Callable[[str, float], E]
    note: str = ""
    torch_param: str | None = None

    @property
    def form(self) -> str:
        """``leaky_relu:SLOPE (0 < SLOPE < 1; leaky_relu alone: 0.01)``, for messages."""
        p = self.param.upper()
        low, high = _text(self.low), _text(self.high)
        span = f"{p} > {low}" if math.isinf(self.high) else f"{low} < {p} < {high}"
        return f"{self.name}:{p} ({span}; {self.name} alone: {_text(self.default)})"

    def canonical(self, value: float) -> str:
        """The entry's name for ``value``: ``NAME`` at the default, else ``NAME:VALUE`` (shortest repr)."""
        return self.name if value == self.default else f"{self.name}:{_text(value)}"

    def value(self, name: str, kind: str) -> float:
        """VALUE of ``name`` = ``NAME:VALUE``, checked. ``ValueError`` naming ``name``, the form and
        what is wrong (not a decimal number, not finite, outside the interval)."""
        text = name[len(self.name) + 1 :] if name.startswith(self.name + ":") else None
        where = f"{kind} {name!r}"
        example = f"e.g. {self.name}:{_text(_example(self))}"
        if text is None or not _NUMBER.fullmatch(text):
            raise ValueError(
                f"{where}: write {self.form}, the {self.param} an ASCII decimal number without spaces, "
                f"{example}"
            )
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{where}: the {self.param} {text} is not a finite float; {self.form}")
        if not self.low < value < self.high:
            note = f" ({self.note})" if self.note else ""
            raise ValueError(f"{where}: the {self.param} {text} is outside {self.form}{note}")
        return value


def _text(value: float) -> str:
    """The shortest decimal that reads back as ``value``: 0.2, 1e-05, 2 (not 2.0)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _example(family: Family) -> float:
    return 0.2 if family.low < 0.2 < family.high else family.default


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
        self.families: dict[str, Family] = {}  # name -> Family, each also registered at its default
        self._made: dict[str, E] = {}  # canonical NAME:VALUE -> entry, built on first use

    def _not_a_name(self, name, choices=None) -> TypeError:
        return TypeError(
            f"{self.kind} must be a name (str), got {name!r} ({type(name).__name__}); "
            f"choose one of {sorted(self if choices is None else choices)}"
        )

    def lookup(self, name) -> E:
        """The entry called ``name`` (an entry itself is returned as is), or a family's ``NAME:VALUE``.

        Raises ``TypeError`` for a non-string, ``ValueError`` naming a bad ``NAME:VALUE`` (see
        :class:`Family`) and ``ValueError`` listing the known names otherwise."""
        if isinstance(name, self.entry_type):
            return name
        if not isinstance(name, str):
            raise self._not_a_name(name)
        entry = self._resolve(name)
        if entry is None:
            forms = "".join(f", {f.name}:{f.param.upper()}" for f in self.families.values())
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of {sorted(self)}{forms} (or register it first)"
            )
        return entry

    def _resolve(self, name: str) -> E | None:
        """The entry for a registered name or a valid ``NAME:VALUE``; None for a name nothing knows.
        ``ValueError`` for a family's name with a bad parameter part, or a parameter given to an
        entry that takes none (``relu:0.2``, ``relu(0.2)``)."""
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        match = _LEADING_NAME.match(name)
        base, rest = match.groups() if match else ("", "")
        if not rest or not dict.__contains__(self, base):
            return None
        family = self.families.get(base)
        if family is None:
            if rest[0] not in ":(":
                return None
            takes = ", ".join(f.form for f in self.families.values()) or "none"
            raise ValueError(
                f"{self.kind} {name!r}: {base} takes no parameter (parametrised {self.kind}s: {takes})"
            )
        value = family.value(name, self.kind)
        canonical = family.canonical(value)
        if canonical == base:
            return dict.__getitem__(self, base)
        made = self._made.get(canonical)
        if made is None:
            made = family.make(canonical, value)
            if getattr(made, "name", None) != canonical:
                raise ValueError(f"{self.kind} family {base!r}: make() must name its entry {canonical!r}")
            made = self._made.setdefault(canonical, made)
        return made

    def __contains__(self, name) -> bool:
        """True for a registered name and a valid ``NAME:VALUE``; False for other names. A family's
        name with a bad parameter (``leaky_relu:-1``) raises its ``ValueError``, so that a check
        ``name in registry`` can say what is wrong."""
        return isinstance(name, str) and self._resolve(name) is not None

    def __getitem__(self, name: str) -> E:
        """``registry[name]``: as :meth:`lookup` for a str, but ``KeyError`` for an unknown name."""
        entry = self._resolve(name) if isinstance(name, str) else None
        if entry is None:
            raise KeyError(name)
        return entry

    def get(self, name, default=None):
        """The entry for a registered name or a valid ``NAME:VALUE``, else ``default``."""
        try:
            return self[name]
        except (KeyError, ValueError):
            return default

    def add_family(self, family: Family) -> E:
        """Register ``family``: its entry at the default under ``family.name`` (as :meth:`add`) and
        the family, so that ``NAME:VALUE`` resolves. Returns the default entry."""
        if not family.low < family.default < family.high:
            raise ValueError(
                f"{self.kind} family {family.name!r}: default {family.default} is outside "
                f"({family.low}, {family.high})"
            )
        entry = self.add(family.make(family.name, float(family.default)))
        self.families[family.name] = family
        return entry

    def _forget(self, name) -> None:
        if self.families.pop(name, None) is not None:
            for made in [k for k in self._made if k.startswith(f"{name}:")]:
                del self._made[made]

    def pop(self, name, *default):
        """Remove a registered entry (and its family and the entries made from it)."""
        self._forget(name)
        return super().pop(name, *default)

    def __delitem__(self, name) -> None:
        self._forget(name)
        super().__delitem__(name)

    def forms(self) -> list[str]:
        """The parametrised forms, for messages: ``['elu:ALPHA (ALPHA > 0; elu alone: 1)', ...]``."""
        return [f.form for _, f in sorted(self.families.items())]

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
        table = self._table()
        if key in table:
            return table[key]
        return self.registry[key].name  # NAME:VALUE -> its canonical name; KeyError for others

    def __contains__(self, key) -> bool:
        """As :meth:`Registry.__contains__` (a bad ``NAME:VALUE`` raises its ``ValueError``), plus the
        aliases."""
        if not isinstance(key, str):
            raise self.registry._not_a_name(key, self._table())
        return key in self._table() or key in self.registry

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())
