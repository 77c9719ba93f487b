"""One request and its reply, independent of the HTTP version that carries it.

Transports parse a request and hand it here with a :class:`ResponseChannel`; this module asks the
API for the reply and writes it, event by event, noting in the journal exactly what reached the
kernel. Coalescing, pacing and (later) faults all act at event boundaries, so "after N events" is
a precise point on every protocol.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, Sequence

import trio

from ..api.events import WireEvent
from ..api.router import JsonReply, describe

if TYPE_CHECKING:
    from ..server import ServerState

Headers = Sequence[tuple[bytes, bytes]]


class ClientGone(Exception):
    """The peer reset or closed the stream or connection while we were writing."""


class ResponseChannel(Protocol):
    async def send_head(self, status: int, headers: Headers) -> None: ...
    async def send_body(self, data: bytes) -> None: ...
    async def end(self) -> None: ...
    async def send_simple(self, status: int, headers: Headers, body: bytes) -> None: ...


async def run_exchange(
    state: "ServerState",
    connection: dict,
    stream_id: int | None,
    channel: ResponseChannel,
    method: str,
    target: str,
    headers: Headers,
    body: bytes,
    t_headers: float,
) -> None:
    api, journal = state.api, state.journal
    info = describe(method, target, headers, body)
    request_id = api.new_request_id()
    record = journal.open_request(connection, stream_id, request_id, info, t_headers)
    end = "complete"
    try:
        reply = api.handle(info, body, request_id)
        if isinstance(reply, JsonReply):
            record["status"] = reply.status
            if reply.answer is not None:
                record["conversation"] = reply.request.conversation_digest
                record["answer"] = reply.answer.summary()
            await channel.send_simple(reply.status, reply.headers, reply.body)
            journal.wrote(record, 0, len(reply.body))
        else:
            record["status"] = 200
            record["stream"] = True
            record["conversation"] = reply.request.conversation_digest
            record["events_total"] = len(reply.events)
            record["answer"] = reply.answer.summary()
            await channel.send_head(200, reply.headers)
            await write_events(state, channel, record, reply.events)
            await channel.end()
    except ClientGone:
        end = "reset_by_client"
    except trio.Cancelled:
        end = getattr(channel, "cancel_reason", None) or "cancelled"
        raise
    finally:
        journal.close_request(record, end)


def event_delays(state: "ServerState", events: Sequence[WireEvent]) -> list[float]:
    """Seconds to wait before each event: time to first token before the first content block,
    then one token interval per word of each delta."""
    config = state.config
    delays = [0.0] * len(events)
    first_block = next((i for i, e in enumerate(events) if e.name == "content_block_start"), None)
    if first_block is not None:
        delays[first_block] = config.time_to_first_token_s
    if config.tokens_per_second:
        interval = 1.0 / config.tokens_per_second
        seen_delta = False
        for index, event in enumerate(events):
            if event.name == "content_block_delta":
                if seen_delta:
                    delays[index] += interval * max(1, event.tokens)
                seen_delta = True
    return delays


async def write_events(state: "ServerState", channel: ResponseChannel, record: dict, events: Sequence[WireEvent]) -> None:
    config, journal = state.config, state.journal
    delays = event_delays(state, events)
    batch: list[bytes] = []
    size = 0

    async def flush() -> None:
        nonlocal batch, size
        if batch:
            await channel.send_body(b"".join(batch))
            journal.wrote(record, len(batch), size)
            batch, size = [], 0

    for event, delay in zip(events, delays):
        if delay > 0:
            await flush()
            await trio.sleep(delay)
        batch.append(event.data)
        size += len(event.data)
        if not config.coalesce or size >= config.coalesce_limit:
            await flush()
    await flush()


def now() -> float:
    return time.monotonic()
