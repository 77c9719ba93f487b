"""The one table of fault types, kind -> class. Each module of :mod:`.kinds` registers its own
type with :func:`register`; importing that package fills the table."""

from __future__ import annotations

from typing import TypeVar

from .base import Fault

FAULT_TYPES: dict[str, type[Fault]] = {}

F = TypeVar("F", bound=type[Fault])


def register(cls: F) -> F:
    if not cls.kind or cls.kind in FAULT_TYPES:
        raise ValueError(f"fault type {cls.__name__}: kind {cls.kind!r} is empty or taken")
    FAULT_TYPES[cls.kind] = cls
    return cls
