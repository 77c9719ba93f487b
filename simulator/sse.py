"""Server-sent events: the one encoder and decoder of the project.

The encoder writes exactly what the Messages API writes (``event: NAME\\ndata: JSON\\n\\n``); the
decoder follows the WHATWG rules closely enough to read any server's stream, ours included, and is
incremental so tests can feed it arbitrary splits of the byte stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def encode(name: str, payload: Any) -> bytes:
    """One event as the API frames it: compact JSON on a single ``data:`` line."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"event: {name}\ndata: {data}\n\n".encode()


def encode_raw(name: str, data: str) -> bytes:
    """An event whose data may span lines (each line gets its own ``data:`` field)."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n".encode()


class Decoder:
    """Incremental SSE parser: feed bytes, get the events completed so far."""

    def __init__(self) -> None:
        self._buffer = b""
        self._name = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            line, sep, rest = _split_line(self._buffer)
            if sep is None:
                return events
            self._buffer = rest
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> Event | None:
        if line == "":
            if not self._data and not self._name:
                return None
            event = Event(self._name or "message", "\n".join(self._data))
            self._name, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
        return None

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet terminated: a truncated stream leaves them here."""
        return self._buffer


def _split_line(buffer: bytes) -> tuple[bytes, bytes | None, bytes]:
    """Split at the first CRLF, LF or CR; a CR at the very end waits for a possible LF."""
    for index, byte in enumerate(buffer):
        if byte == 0x0A:
            return buffer[:index], b"\n", buffer[index + 1 :]
        if byte == 0x0D:
            if index + 1 == len(buffer):
                return buffer, None, b""
            if buffer[index + 1] == 0x0A:
                return buffer[:index], b"\r\n", buffer[index + 2 :]
            return buffer[:index], b"\r", buffer[index + 1 :]
    return buffer, None, b""


def decode_all(data: bytes) -> Iterator[Event]:
    yield from Decoder().feed(data)
