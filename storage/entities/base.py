"""What every stored entity shares: its Redis hash mapping built from its dataclass fields.

A field's annotation says how it is stored: ``str`` as is, ``int`` as decimal text, ``bool``
as ``1``/``0``, ``dict``/``list`` as compact JSON, and ``None`` (of an optional field) as an
empty string. So adding a field to an entity is one line, and every reader and writer
(managers, importer, export, repair, serializers) sees it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, fields
from functools import cache
from typing import Any, Self

import orjson


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _parse(kind: str, raw: str) -> Any:
    return _parser(kind)(raw)


def load_json(raw: str) -> Any:
    """JSON as stored (orjson, several times faster; ``json`` for what orjson refuses, e.g. an
    integer over 64 bits in imported data)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _same(raw: str) -> str:
    return raw


@cache
def _parser(kind: str) -> Callable[[str], Any]:
    """How a stored text of this annotation becomes its value (decided once per annotation)."""
    if kind.startswith("bool"):
        parse: Callable[[str], Any] = lambda raw: raw == "1"  # noqa: E731
    elif kind.startswith("int"):
        parse = lambda raw: int(raw or 0)  # noqa: E731
    elif kind.startswith("dict"):
        parse = lambda raw: load_json(raw or "{}")  # noqa: E731
    elif kind.startswith("list"):
        parse = lambda raw: load_json(raw or "[]")  # noqa: E731
    else:
        parse = _same
    if kind.endswith("| None"):
        inner = parse
        parse = lambda raw: None if raw == "" else inner(raw)  # noqa: E731
    return parse


class Entity:
    """Mixin for ``@dataclass(slots=True)`` entities stored as one Redis hash."""

    __slots__ = ()
    # Fields kept in the hash but never handed out (e.g. a password hash).
    PRIVATE: tuple[str, ...] = ()

    @classmethod
    @cache
    def names(cls) -> tuple[str, ...]:
        """Every stored field, in declaration order."""
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    @cache
    def kinds(cls) -> tuple[tuple[str, str], ...]:
        """(field, annotation) pairs: how each field is stored (and shown by the API)."""
        return tuple((f.name, str(f.type)) for f in fields(cls))  # type: ignore[arg-type]

    def encode(self) -> dict[str, str]:
        """The hash mapping (HSET) of this entity."""
        return {name: _text(getattr(self, name)) for name in self.names()}

    @classmethod
    @cache
    def parsers(cls) -> tuple[tuple[str, Callable[[str], Any]], ...]:
        """(field, parser of its stored text) pairs, in declaration order."""
        return tuple((name, _parser(kind)) for name, kind in cls.kinds())

    @classmethod
    @cache
    def public_names(cls) -> tuple[str, ...]:
        return tuple(name for name in cls.names() if name not in cls.PRIVATE)

    @classmethod
    def decode(cls, raw: dict[str, str] | None) -> Self | None:
        """The entity from its hash (HGETALL); None when the hash is missing or lacks its first field (the id)."""
        if not raw or cls.names()[0] not in raw:
            return None
        return cls(**{name: parse(raw[name]) for name, parse in cls.parsers() if name in raw})

    @classmethod
    def view(cls, raw: dict[str, str] | None) -> dict[str, Any] | None:
        """The API shape (:meth:`to_dict`) of a stored hash, or None: what managers hand out.
        The entity is new and dropped here, so its values are handed out as they are (no deep copy)."""
        entity = cls.decode(raw)
        if entity is None:
            return None
        return {name: getattr(entity, name) for name in cls.public_names()}

    @classmethod
    def build(cls, values: dict[str, Any]) -> Self:
        """An entity from a dict in the API shape (unknown keys ignored)."""
        return cls(**{name: values[name] for name in cls.names() if name in values})

    def to_dict(self) -> dict[str, Any]:
        """The entity in the API shape, without private fields."""
        data = asdict(self)  # type: ignore[call-overload]
        for name in self.PRIVATE:
            data.pop(name, None)
        return data
