"""What the router hands the transport: a request's facts, and a JSON or a streamed reply.

Apart from the routers so that the Messages and the OpenAI-compatible routers share them without
importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import answer as answers
from .events import WireEvent, count_body_events, iter_body_events
from .request import MessagesRequest


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the journal and the fault plan need to know about a request."""

    method: str
    path: str
    api_key: str | None
    retry_count: int | None
    user_agent: str | None
    body_sha256: str
    body_bytes: int


@dataclass(frozen=True, slots=True)
class JsonReply:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    answer: answers.Answer | None = None  # set for a non-streaming Message
    request: MessagesRequest | None = None


@dataclass(frozen=True, slots=True)
class StreamReply:
    headers: tuple[tuple[bytes, bytes], ...]
    events: tuple[WireEvent, ...] | None  # None: a long answer, encoded while written (iter_events)
    request: MessagesRequest
    answer: answers.Answer
    tail_bytes: bytes = b""  # every event after message_start, joined once per cached answer
    summary: dict | None = None
    start: WireEvent | None = None  # message_start of a long answer
    ping_every: int | None = None
    error_event: Callable[[str, str, int], bytes] | None = None  # an API's in-stream error (None: Messages)

    @property
    def body(self) -> bytes:
        """The whole SSE body, for writing it in one go when nothing paces or cuts it."""
        if self.events is None:
            return b"".join(event.data for event in self.iter_events())
        return self.events[0].data + self.tail_bytes

    @property
    def event_count(self) -> int:
        if self.events is None:
            return 1 + count_body_events(self.answer, self.ping_every)
        return len(self.events)

    def iter_events(self):
        """Every event in order; a long answer's are encoded one at a time as they are asked for."""
        if self.events is not None:
            yield from self.events
            return
        yield self.start
        yield from iter_body_events(self.answer, self.ping_every)
