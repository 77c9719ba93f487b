"""What the API answers: a whole JSON reply, or an event stream that transports write (and the
fault plan paces or cuts). Shared by the Messages router and the OpenAI-compatible router."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import answer as answers
from .events import WireEvent, count_body_events, iter_body_events
from .request import MessagesRequest


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


Reply = JsonReply | StreamReply
