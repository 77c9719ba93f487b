"""The journal's record types: what a connection, a request and a fired fault leave on disk.

Each record is a dataclass whose fields are the JSON line's keys (``docs/journal.md`` gives their
meaning and units). Optional fields (``OPTIONAL``) are left out of the line while None, as a key
set only when it applies. The transports fill records in with item syntax (``record["status"] =
200``) as they did when records were dicts; a key outside the schema is refused, so the schema and
the file cannot drift apart. What the server only needs while a connection is open (requests in
progress, idle time, fault ordinals) lives in :class:`ConnectionRuntime`, never in a record.
"""

from __future__ import annotations

import time
from dataclasses import Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar


class _Fields:
    """Item access over a record's schema fields, and its JSON object."""

    __slots__ = ()
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    _names: ClassVar[tuple[str, ...]] = ()  # the JSON keys in line order ("kind" first); set by _schema
    _nameset: ClassVar[frozenset[str]] = frozenset()
    if TYPE_CHECKING:  # every record class is a dataclass (_schema reads its fields)
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def __getitem__(self, name: str) -> Any:
        if name not in self._nameset:
            raise KeyError(name)
        value = getattr(self, name)
        if value is None and name in self.OPTIONAL:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in self._nameset:
            raise KeyError(f"{type(self).__name__} has no field {name!r} (the schema is in docs/journal.md)")
        setattr(self, name, value)

    def __contains__(self, name: object) -> bool:
        return name in self._nameset and not (getattr(self, name) is None and name in self.OPTIONAL)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the record's line (nested fault notes included)."""
        out: dict[str, Any] = {}
        optional = self.OPTIONAL
        for name in self._names:
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            if name == "faults":
                value = [note.to_json() if isinstance(note, FaultNote) else note for note in value]
            out[name] = value
        return out


_R = TypeVar("_R", bound=_Fields)


def _schema(cls: type[_R]) -> type[_R]:
    """Note a record class's JSON keys, without its runtime-only fields."""
    names = [f.name for f in fields(cls) if not f.metadata.get("runtime")]
    cls._names = tuple(sorted(names, key=lambda name: name != "kind"))
    cls._nameset = frozenset(names)
    return cls


@_schema
@dataclass(slots=True)
class FaultNote(_Fields):
    """A fault rule that fired on a connection or request, or was chosen but never reached."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"t", "connection", "status", "mode", "events_out", "bytes_out", "not_reached", "skipped"})

    rule: int
    type: str
    name: str | None
    at: str
    t: float | None = None
    connection: int | None = None
    status: int | None = None
    mode: str | None = None
    events_out: int | None = None
    bytes_out: int | None = None
    not_reached: str | None = None
    skipped: str | None = None


def fault_note(index: int, rule: Any, at: str | None = None, wire: Any = None, **facts: Any) -> FaultNote:
    """The note rule ``index`` leaves in its record: fired now (``t``), or ``not_reached=why``.
    ``wire``, the request record, says what was on the wire when it fired."""
    note = FaultNote(index, rule.fault.kind, rule.name, at or rule.trigger.at, **facts)
    if note.t is None and note.not_reached is None:
        note.t = time.monotonic()
    if wire is not None:
        note.events_out, note.bytes_out = wire.events_out, wire.bytes_out
    return note


@dataclass(slots=True)
class ConnectionRuntime:
    """A connection's live state: requests in progress, when it last went idle, and the fault
    plan's ordinals for it. Read by the server while the connection is open; never journaled."""

    active: int = 0
    t_idle_since: float | None = None
    plan_generation: int | None = None
    ordinals: dict[str, int] = field(default_factory=dict)


@_schema
@dataclass(slots=True)
class ConnectionRecord(_Fields):
    """One accepted TCP connection, written when it closes."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"lane", "t_tls", "server_error", "t_close", "end", "seq"})

    conn: int
    peer: str
    listener: str
    t_accept: float
    wall_accept: float
    kind: str = "connection"
    tls: bool = False
    alpn: str | None = None
    protocol: str | None = None
    keys: list[str] = field(default_factory=list)
    requests: int = 0
    bytes_in: int = 0
    faults: list[FaultNote] = field(default_factory=list)
    open: bool = True
    lane: str | None = None
    t_tls: float | None = None
    server_error: dict[str, Any] | None = None
    t_close: float | None = None
    end: str | None = None
    seq: int | None = None
    live: ConnectionRuntime = field(default_factory=ConnectionRuntime, repr=False, compare=False, metadata={"runtime": True})

    def journal_keys(self) -> tuple[str, ...]:
        """The keys a journal read selects this connection by: those it carried, and its lane's."""
        lane = self.lane
        return tuple(self.keys) + ((lane,) if lane is not None and lane not in self.keys else ())


@_schema
@dataclass(slots=True)
class RequestRecord(_Fields):
    """One HTTP request (an HTTP/2 stream or an HTTP/1.1 exchange), written when its reply ends."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset(
        {"decision", "answer", "capacity", "events_total", "t_schedule", "server_error", "t_end", "end", "seq"}
    )

    request_id: str
    conn: int
    stream_id: int | None
    protocol: str | None
    tls: bool
    key: str | None
    retry_count: int | None
    user_agent: str | None
    method: str
    path: str
    body_sha256: str
    body_bytes: int
    t_headers: float
    t_body: float
    kind: str = "request"
    status: int | None = None
    stream: bool = False
    conversation: str | None = None
    t_first_byte: float | None = None
    writes: list[tuple[int, int, float]] = field(default_factory=list)  # (events so far, bytes so far, time); tuples: not GC-tracked
    events_out: int = 0
    bytes_out: int = 0
    faults: list[FaultNote] = field(default_factory=list)
    open: bool = True
    decision: dict[str, Any] | None = None
    answer: Any = None
    capacity: dict[str, Any] | None = None
    events_total: int | None = None
    t_schedule: float | None = None
    server_error: dict[str, Any] | None = None
    t_end: float | None = None
    end: str | None = None
    seq: int | None = None

    def journal_keys(self) -> tuple[str, ...]:
        """The key a journal read selects this request by (none without an API key)."""
        return (self.key,) if self.key is not None else ()


Record = ConnectionRecord | RequestRecord
