"""How each fault is carried out: one small function per type, over the channel's primitives.

A channel (HTTP/1.1 or HTTP/2, see :mod:`simulator.transport`) offers: send_body, end,
reset_connection, close_connection, blackhole, stall, reset_stream and goaway. Each action
returns True when the reply goes on (non-terminal) and False when it has ended.
"""

from __future__ import annotations

import math
from typing import Any, Awaitable, Callable

from .. import sse
from . import model

NOT_APPLICABLE = "not_applicable"


class FaultEnded(Exception):
    """A terminal fault ended the reply; ``kind`` goes to the journal as its end."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


async def perform(fault: model.Fault, channel: Any, out: Any) -> bool | str:
    """Carry out ``fault``; True if the reply continues, False if it ended, or NOT_APPLICABLE.

    ``out.flush()`` writes what the reply has batched so far: every fault fires after exactly
    that; ``out.emit(data)`` writes bytes of the fault's own, counted in the journal.
    A black hole stops answering *before* the last bytes go out, so that nothing the client sends
    in reaction to them (a PING, say) can still be answered."""
    if isinstance(fault, (model.Blackhole, model.IdleEviction)):
        channel.stop_answering()
    await out.flush()
    return await ACTIONS[type(fault)](fault, channel, out)


async def _tcp_reset(fault: model.TcpReset, channel: Any, out: Any) -> bool:
    await channel.reset_connection()
    return False


async def _fin(fault: model.Fin, channel: Any, out: Any) -> bool:
    await channel.close_connection(close_notify=fault.close_notify)
    return False


async def _rst_stream(fault: model.RstStream, channel: Any, out: Any) -> bool | str:
    if channel.protocol != "h2":
        return NOT_APPLICABLE
    await channel.reset_stream(fault.code_value)
    return False


async def _goaway(fault: model.Goaway, channel: Any, out: Any) -> bool | str:
    if channel.protocol != "h2":
        return NOT_APPLICABLE
    return await channel.goaway(fault.last_stream_id, fault.code_value, fault.debug.encode(), fault.graceful, fault.grace_s)


async def _stall(fault: model.Stall, channel: Any, out: Any) -> bool:
    await channel.stall(fault.seconds)
    return not math.isinf(fault.seconds)


async def _blackhole(fault: model.Fault, channel: Any, out: Any) -> bool:
    await channel.blackhole()
    return False


async def _sse_error(fault: model.SseError, channel: Any, out: Any) -> bool:
    encode = getattr(out, "error_event", None)  # another API's form (simulator/api/openai_*.py)
    if encode is not None:
        await out.emit(encode(fault.error_type, fault.message, out.writer.record["events_out"]))
    else:
        payload = {"type": "error", "error": {"type": fault.error_type, "message": fault.message}}
        await out.emit(sse.encode("error", payload))
    await channel.end()
    return False


async def _truncated(fault: model.TruncatedClean, channel: Any, out: Any) -> bool:
    await channel.end()
    return False


async def _not_here(fault: model.Fault, channel: Any, out: Any) -> str:
    """Faults that shape the reply (http_error, slow, malformed_sse) are applied by the writer."""
    return NOT_APPLICABLE


ACTIONS: dict[type, Callable[[Any, Any, Any], Awaitable[bool | str]]] = {
    model.TcpReset: _tcp_reset,
    model.Fin: _fin,
    model.RstStream: _rst_stream,
    model.Goaway: _goaway,
    model.Stall: _stall,
    model.Blackhole: _blackhole,
    model.IdleEviction: _blackhole,
    model.SseError: _sse_error,
    model.TruncatedClean: _truncated,
    model.HttpError: _not_here,
    model.Slow: _not_here,
    model.MalformedSse: _not_here,
}


def garble(event: bytes, mode: str) -> tuple[bytes, ...]:
    """The bytes a malformed event is written as (one or more writes)."""
    if mode == "garbled":
        head, _, data = event.partition(b"\ndata: ")
        return (head + b"\ndata: " + data[: max(1, len(data) // 2)].rstrip(b"\n") + b"\x00}\n\n",)
    if mode == "no_blank_line":
        return (event[:-1],)
    middle = len(event) // 2
    return (event[:middle], event[middle:])
