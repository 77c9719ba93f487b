"""One request and its reply, independent of the HTTP version that carries it.

Transports parse a request and hand it here with a :class:`ResponseChannel`; this module asks the
API for the reply, asks the fault plan which rules fire, and carries out the reply's schedule
(:mod:`.schedule`: writes, sleeps, faults), noting in the journal exactly what reached the kernel
before each fault. Coalescing, pacing and faults all act at event (or byte) boundaries, so
"after N events" is exact on every protocol.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import trio

from ..api.errors import ApiError
from ..api.events import WireEvent
from ..api.reply import JsonReply, Reply, StreamReply
from ..api.router import describe
from ..capacity_gate import admit, release
from ..faults import model
from ..faults.base import CUT, EVENT, NOT_APPLICABLE, PACING, REPLY, Fault, FaultEnded, perform
from ..faults.decide import RequestFacts, request_rules, uniform
from ..records import ConnectionRecord, FaultNote, RequestRecord, fault_note
from . import schedule
from .pacer import pacer
from .schedule import Fire, Mark, Pacing, Piece, Sleep, Write, event_delays

if TYPE_CHECKING:
    from ..state import ServerState

Headers = Sequence[tuple[bytes, bytes]]


class ClientGone(Exception):
    """The peer reset or closed the stream or connection while we were writing."""


class ResponseChannel(Protocol):
    protocol: str

    async def send_head(self, status: int, headers: Headers) -> None: ...
    async def send_body(self, data: bytes) -> None: ...
    # optional: ``send_frames(pieces)`` writes each piece as its own DATA frame / chunk, all in one
    # socket write (see _Writer.write); a channel without it gets one send_body per piece.
    # optional, for the pacer: the members of :class:`FramingChannel`
    async def end(self) -> None: ...
    async def send_simple(self, status: int, headers: Headers, body: bytes) -> None: ...
    async def send_whole(self, status: int, headers: Headers, body: bytes) -> None: ...
    async def reset_connection(self) -> None: ...
    async def close_connection(self, close_notify: bool) -> None: ...
    async def blackhole(self) -> None: ...
    async def stall(self, seconds: float) -> None: ...
    def stop_answering(self) -> None: ...
    async def reset_stream(self, code: int) -> None: ...
    async def goaway(self, last_stream_id: int | str, code: int, debug: bytes, graceful: bool, grace_s: float) -> bool: ...
    async def close_after_reply(self, grace_s: float) -> None: ...
    def response_started(self) -> bool: ...


class FramingChannel(ResponseChannel, Protocol):
    """A channel that can frame without I/O (h2 over plain TCP): the pacer drives its paced replies."""

    @property
    def can_frame_now(self) -> bool: ...
    def frame_now(self, pieces: list[bytes]) -> tuple[int, Any]:
        """Frame ``pieces`` without I/O: how many were, and the connection whose ``flush_now()`` writes them."""
        ...

    async def flush_queued(self) -> None: ...
    async def send_frames(self, pieces: list[bytes]) -> None: ...


def can_frame_now(channel: ResponseChannel) -> TypeGuard[FramingChannel]:
    return getattr(channel, "can_frame_now", False)


# What the writer reads of a fault, by what it acts as (faults/base.py): the fault kinds need no
# isinstance, so each reader checks ``acts_as`` (the guards below) before it uses these members.
class ReplyFault(Protocol):
    """Acts as REPLY (http_error): the reply written instead of the API's."""

    def reply(self, api: Any, request_id: str, path: str | None) -> JsonReply: ...


class PacingFault(Protocol):
    """Acts as PACING (slow): the reply's pacing."""

    @property
    def ttft_s(self) -> float: ...
    @property
    def tokens_per_second(self) -> float | None: ...
    @property
    def jitter(self) -> float: ...


class EventFault(Protocol):
    """Acts as EVENT (malformed_sse): rewrites the event it fires at (:func:`.schedule.reply_steps`)."""

    @property
    def mode(self) -> str: ...
    @property
    def gap_s(self) -> float: ...
    def pieces(self, event: bytes) -> tuple[bytes, ...]: ...


def _replaces_reply(fault: Fault) -> TypeGuard[ReplyFault]:
    return fault.acts_as == REPLY


def _paces(fault: Fault) -> TypeGuard[PacingFault]:
    return fault.acts_as == PACING


def _rewrites_event(fault: Fault) -> TypeGuard[EventFault]:
    return fault.acts_as == EVENT


@dataclass(slots=True)
class Firing:
    index: int
    rule: model.Rule


async def run_exchange(
    state: ServerState,
    connection: ConnectionRecord,
    stream_id: int | None,
    channel: ResponseChannel,
    method: str,
    target: str,
    headers: Headers,
    body: bytes,
    t_headers: float,
) -> None:
    api, journal = state.api, state.journal
    pacer().tick_if_due()  # paced streams due now go first (see Pacer.tick_if_due)
    info = describe(method, target, headers, body)
    if method == "HEAD":
        await _head(state, connection, stream_id, channel, info, body, t_headers)
        return
    request_id = api.new_request_id()
    record = journal.open_request(connection, stream_id, request_id, info, t_headers)
    idle_s = _enter(connection, t_headers)
    end = "complete"
    slot = None
    writer = _Writer(state, channel, record, [], None, t_headers)
    try:
        reply = await _handle_sliced(api, info, body, request_id)
        writer.error_event = getattr(reply, "error_event", None)  # an OpenAI-compatible API's in-stream error
        writer.firings, writer.facts = _decide(state, connection, record, info, reply, idle_s)
        answer, request = reply.answer, reply.request
        if answer is not None and request is not None:  # (an API gives both or neither)
            record["conversation"] = request.conversation_digest
            record["answer"] = getattr(reply, "summary", None) or answer.summary()
        slot, reply = await admit(state.faults.capacity, api, record, info.path, reply, request_id)  # finite capacity: wait, serve, or 529/409
        record["stream"] = isinstance(reply, StreamReply)
        await writer.headers_phase()
        reply = writer.maybe_http_error(reply, request_id)
        if isinstance(reply, JsonReply):
            record["status"] = reply.status
            await writer.write_json(reply)
        else:
            record["status"] = 200
            record["events_total"] = reply.event_count
            if writer.plain():  # nothing paces or cuts this reply
                if reply.events is None:  # a long answer: encoded a slice at a time
                    await _write_long(state, channel, record, reply)
                else:  # one write, as coalescing would do
                    body = reply.body
                    await channel.send_whole(200, reply.headers, body)
                    journal.wrote(record, len(reply.events), len(body))
            else:
                await channel.send_head(200, reply.headers)
                await writer.write_events(await _events_of(reply))
                await channel.end()
    except FaultEnded as ended:
        end = f"fault:{ended.kind}"
    except ClientGone:
        end = writer.ending or "reset_by_client"
    except trio.Cancelled:
        # A client that reacts to what a fault sent (an RST_STREAM after a GOAWAY) can beat the
        # fault's own end: the reply still ended by the fault.
        end = writer.ending or getattr(channel, "cancel_reason", None) or "cancelled"
        raise
    except Exception as error:  # a bug of ours: this request pays for it, never the process
        end = "server_error"
        state.errors.note(error, "request", record)
        await _fail_reply(state, channel, record, request_id)
    finally:
        release(slot, record)
        _leave(connection)
        journal.finish(record, end)


LONG_SLICE_BYTES = 64 * 1024  # a long answer is encoded and written this much at a time
SLICE_EVENTS = 2048


async def _handle_sliced(api: Any, info: Any, body: bytes, request_id: str) -> Reply:
    """The API's reply, letting other tasks run between slices of a long answer's generation."""
    steps = api.handle_steps(info, body, request_id)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
        pacer().tick_if_due()
        await trio.lowlevel.checkpoint()


async def _events_of(reply: StreamReply) -> Sequence[WireEvent]:
    """All events of a reply; a long answer's encoded in slices (faults and pacing need them all)."""
    if reply.events is not None:
        return reply.events
    events = []
    for index, event in enumerate(reply.iter_events()):
        if index and index % SLICE_EVENTS == 0:
            await trio.lowlevel.checkpoint()
        events.append(event)
    return events


async def _write_long(state: ServerState, channel: ResponseChannel, record: RequestRecord, reply: StreamReply) -> None:
    """A long answer, encoded and written a slice at a time: its memory is one slice, and other
    streams run between slices."""
    await channel.send_head(200, reply.headers)
    batch: list[bytes] = []
    size = events = 0
    for event in reply.iter_events():
        batch.append(event.data)
        size += len(event.data)
        events += 1
        if size >= LONG_SLICE_BYTES:
            data, batch, size, count, events = b"".join(batch), [], 0, events, 0
            await channel.send_body(data)
            state.journal.wrote(record, count, len(data))
            await trio.lowlevel.checkpoint()
    if batch:
        data = b"".join(batch)
        await channel.send_body(data)
        state.journal.wrote(record, events, len(data))
    await channel.end()


async def _head(
    state: ServerState, connection: ConnectionRecord, stream_id: int | None, channel: ResponseChannel, info: Any, body: bytes, t_headers: float
) -> None:
    """HEAD: the head GET would get (or the error's), never a body; no faults fire on it."""
    api, journal = state.api, state.journal
    request_id = api.new_request_id()
    record = journal.open_request(connection, stream_id, request_id, info, t_headers)
    end = "complete"
    try:
        reply = await _handle_sliced(api, info, body, request_id)
        if not isinstance(reply, JsonReply):  # no stream answers a HEAD (it is routed like GET)
            reply = api.error_reply(ApiError(405, "Method Not Allowed: HEAD", "invalid_request_error"), request_id)
        record["status"] = reply.status
        await channel.send_head(reply.status, (*reply.headers, (b"content-length", str(len(reply.body)).encode())))
        await channel.end()
        journal.wrote(record, 0, 0)
    except ClientGone:
        end = "reset_by_client"
    except Exception as error:
        end = "server_error"
        state.errors.note(error, "request", record)
        await _fail_reply(state, channel, record, request_id, head_only=True)
    finally:
        journal.finish(record, end)


async def _fail_reply(state: ServerState, channel: ResponseChannel, record: RequestRecord, request_id: str, head_only: bool = False) -> None:
    """After a server error: a 500 with the API's error body if nothing of the reply was sent
    yet; otherwise the stream is reset (h2) or the connection closed (HTTP/1.1, by its handler)."""
    try:
        if not channel.response_started():
            reply = state.api.error_reply(ApiError(500, "Internal server error", "api_error"), request_id)
            record["status"] = 500
            if head_only:
                await channel.send_head(500, (*reply.headers, (b"content-length", str(len(reply.body)).encode())))
                await channel.end()
            else:
                await channel.send_simple(500, reply.headers, reply.body)
        elif channel.protocol == "h2":
            await channel.reset_stream(2)  # INTERNAL_ERROR
    except Exception:  # the channel itself is broken: the connection's handler closes it
        pass


def _enter(connection: ConnectionRecord, now: float) -> float:
    """Count the request in; return how long the connection sat idle before it."""
    live = connection.live
    live.active += 1
    if live.active > 1:
        return 0.0
    return now - (live.t_idle_since or connection.t_accept)


def _leave(connection: ConnectionRecord) -> None:
    live = connection.live
    live.active -= 1
    if live.active == 0:
        live.t_idle_since = time.monotonic()


def _decide(
    state: ServerState, connection: ConnectionRecord, record: RequestRecord, info: Any, reply: Reply, idle_s: float
) -> tuple[list[Firing], RequestFacts | None]:
    faults = state.faults
    if not faults.active:
        return [], None
    streaming = isinstance(reply, StreamReply)
    request = getattr(reply, "request", None)
    logical = request.conversation_digest if request is not None else info.body_sha256
    trial = connection.get("lane") or info.api_key or ""
    facts = faults.request_facts(connection, trial, logical, streaming, info.path, idle_s)
    chosen = request_rules(faults.plan, facts)
    record["decision"] = {
        "trial": trial,
        "logical": logical[:16],
        "attempt": facts.attempt,
        "connection": facts.connection,
        "request": facts.request,
        "idle_s": round(idle_s, 6),
        "rules": list(chosen),
    }
    return [Firing(i, faults.plan.rules[i]) for i in chosen], facts


class _FaultOutput:
    """What a fault's action may write through: the bytes due before it, and its own bytes."""

    def __init__(self, writer: _Writer, note: FaultNote, pieces: tuple[Piece, ...] = ()) -> None:
        self.writer, self.note, self.pieces = writer, note, pieces
        self.error_event = writer.error_event

    async def flush(self) -> None:
        """Write what is due before the fault; the note then says what was on the wire when it fired."""
        pieces, self.pieces = self.pieces, ()
        if pieces:
            await self.writer.write(pieces)
        record = self.writer.record
        self.note["events_out"], self.note["bytes_out"], self.note["t"] = record["events_out"], record["bytes_out"], time.monotonic()

    async def emit(self, data: bytes, events: int = 1) -> None:
        """Bytes a fault writes itself (an SSE error event), counted like any others."""
        await self.flush()
        await self.writer.write(((data, events),))


class _Writer:
    """Carries out one reply's schedule (:mod:`.schedule`): writes, sleeps, and the faults chosen
    for it at their exact points."""

    def __init__(
        self, state: ServerState, channel: ResponseChannel, record: RequestRecord, firings: list[Firing], facts: RequestFacts | None, t_headers: float
    ) -> None:
        self.state = state
        self.channel = channel
        self.record = record
        self.firings = firings
        self.facts = facts
        self.t_headers = t_headers
        self.frames = not state.config.coalesce
        self.paced = False  # a paced reply's writes and sleeps go through the pacer
        self.framing: FramingChannel | None = None  # the channel, once run() hands a paced reply to the pacer
        self.ending: str | None = None  # "fault:<kind>" once a terminal fault has begun
        self.error_event = None  # set for a reply whose API writes in-stream errors its own way

    # -- firing --------------------------------------------------------------------------------
    async def fire(self, firing: Firing, pieces: tuple[Piece, ...] = ()) -> None:
        """Carry out a fault after ``pieces`` (what the schedule had due before it)."""
        rule = firing.rule
        note = fault_note(firing.index, rule, wire=self.record)
        self.record["faults"].append(note)
        if rule.fault.terminal:
            self.ending = f"fault:{rule.fault.kind}"
        result = await perform(rule.fault, self.channel, _FaultOutput(self, note, pieces))
        if result == NOT_APPLICABLE:
            note["skipped"] = f"{rule.fault.kind} does not apply to {self.channel.protocol}"
            return
        if result is False:
            raise FaultEnded(rule.fault.kind)

    async def headers_phase(self) -> None:
        for firing in self.firings:
            if firing.rule.trigger.at == "headers" and firing.rule.fault.acts_as == CUT:
                await self.fire(firing)

    def maybe_http_error(self, reply: Reply, request_id: str) -> Reply:
        for firing in self.firings:
            fault = firing.rule.fault
            if not _replaces_reply(fault):
                continue
            out = fault.reply(self.state.api, request_id, self.record.get("path"))
            self.record["faults"].append(fault_note(firing.index, firing.rule, "headers", status=out.status, events_out=0, bytes_out=0))
            return out
        return reply

    # -- writing -------------------------------------------------------------------------------
    def plain(self) -> bool:
        config = self.state.config
        return not self.firings and config.coalesce and not config.time_to_first_token_s and not config.tokens_per_second

    def frame_now(self, pieces: tuple[Piece, ...]) -> tuple[int, Any]:
        """For the pacer: frame ``pieces`` without I/O; how many, and who writes them out."""
        framing = self.framing
        assert framing is not None  # the pacer drives only the replies run() gave it
        return framing.frame_now([data for data, _ in pieces])

    def noted(self, pieces: Sequence[Piece]) -> None:
        """For the pacer: ``pieces`` are in the kernel."""
        wrote, record = self.state.journal.wrote, self.record
        for data, events in pieces:
            wrote(record, events, len(data))

    async def write_now(self, framing: FramingChannel, pieces: tuple[Piece, ...]) -> None:
        """A paced reply's own write: out at once, not gathered with other streams' (they are
        the pacer's), so its first events are not held behind other requests' work."""
        framed, _ = self.frame_now(pieces)
        rest = pieces[framed:]
        if not rest:
            await framing.flush_queued()
        elif len(rest) > 1:  # flow control: h2 splits or waits; what was framed leaves first
            await framing.send_frames([data for data, _ in rest])
        else:
            await framing.send_body(rest[0][0])
        self.noted(pieces)

    async def write(self, pieces: tuple[Piece, ...]) -> None:
        """One socket write. Each piece keeps its own DATA frame (h2) or chunk (HTTP/1.1) and its
        own journal entry; every entry is noted once the whole write is in the kernel."""
        if len(pieces) > 1:
            send_frames = getattr(self.channel, "send_frames", None)
            if send_frames is not None:
                await send_frames([data for data, _ in pieces])
            else:
                for data, _ in pieces:
                    await self.channel.send_body(data)
        else:
            await self.channel.send_body(pieces[0][0])
        self.noted(pieces)

    async def write_json(self, reply: JsonReply) -> None:
        cuts = sorted(
            (int(f.rule.trigger.value), f) for f in self.firings if f.rule.trigger.at == "bytes" and int(f.rule.trigger.value) < len(reply.body)
        )
        for f in self.firings:
            if f.rule.trigger.at in ("events", "ms", "budget", "clock"):
                self._not_reached(f, "the reply is not a stream")
        if not cuts:
            await self.channel.send_simple(reply.status, reply.headers, reply.body)
            self.state.journal.wrote(self.record, 0, len(reply.body))
            return
        head = (*reply.headers, (b"content-length", str(len(reply.body)).encode()))
        await self.channel.send_head(reply.status, head)
        await self.run(schedule.body_steps(reply.body, cuts))
        await self.channel.end()

    async def write_events(self, events: Sequence[WireEvent]) -> None:
        pacer().tick_if_due()
        cuts = self._plan_cuts(events)
        for firing, why in cuts.misses:
            self._not_reached(firing, why)
        delays = self._delays(events)
        now = time.monotonic()
        self.paced = any(delays)
        if self.paced:
            self.record["t_schedule"] = now  # where a paced reply's schedule starts (lateness is measured from it)
        config = self.state.config
        await self.run(schedule.reply_steps(events, cuts, delays, frames=self.frames, coalesce_limit=config.coalesce_limit, now=now))

    async def run(self, steps: Generator[Any, float, None]) -> None:
        """Carry out each step, telling the schedule the time once it is done. Where the channel
        can frame without I/O, the pacer runs the paced stretches itself (:meth:`Pacer.drive`)
        and hands back what it cannot do: a fault, an exact sleep, a write that must wait.

        ``steps`` yields :data:`.schedule.Step` values, dispatched on their exact type (which
        mypy does not narrow through ``kind``: hence ``Any``)."""
        channel = self.channel
        framing = self.framing = channel if self.paced and can_frame_now(channel) else None
        try:
            step = next(steps)
            while True:
                kind = type(step)
                if kind is Write:
                    if framing is not None:
                        await self.write_now(framing, step.pieces)
                    else:
                        await self.write(step.pieces)
                elif kind is Sleep:
                    if step.exact:
                        await trio.sleep_until(_trio_deadline(step.until))
                    elif framing is not None:
                        back = await pacer().drive(step.until, steps, self)
                        if not back.written:
                            await framing.flush_queued()
                            self.noted(back.pending)
                        if back.step is None:
                            return
                        step = back.step
                        continue  # a step the schedule already gave: carried out before it hears the time
                    else:
                        await pacer().sleep_until_monotonic(step.until)
                elif kind is Fire:
                    await self.fire(step.firing, step.pieces)
                elif kind is Mark:
                    self._mark(step.firing)
                else:
                    self._not_reached(step.firing, step.why)
                step = steps.send(time.monotonic())
        except StopIteration:
            pass
        finally:
            steps.close()

    def _mark(self, firing: Firing) -> None:
        fault = firing.rule.fault
        assert _rewrites_event(fault)  # a Mark step is only ever for an EVENT fault (see _plan_cuts)
        self.record["faults"].append(fault_note(firing.index, firing.rule, "events", wire=self.record, mode=fault.mode))

    def _not_reached(self, firing: Firing, why: str) -> None:
        self.record["faults"].append(fault_note(firing.index, firing.rule, not_reached=why))

    def _plan_cuts(self, events: Sequence[WireEvent]) -> schedule.Cuts:
        cutting = [f for f in self.firings if f.rule.fault.acts_as not in (REPLY, PACING)]
        return schedule.plan_cuts(
            events, cutting, lambda f: f.rule.fault.acts_as == EVENT, self.t_headers, self.state.faults.t0, self.record["body_bytes"]
        )

    def _delays(self, events: Sequence[WireEvent]) -> list[float]:
        config = self.state.config
        pacing = Pacing(config.time_to_first_token_s, config.tokens_per_second)
        for firing in self.firings:
            fault = firing.rule.fault
            if not _paces(fault):
                continue
            pacing = Pacing(fault.ttft_s, fault.tokens_per_second or pacing.tokens_per_second, fault.jitter)
            self.record["faults"].append(fault_note(firing.index, firing.rule, "headers", events_out=0, bytes_out=0))
        delays = event_delays(pacing, events)
        if pacing.jitter and self.facts is not None:
            seed, facts = self.state.faults.plan.seed, self.facts
            for index, delay in enumerate(delays):
                if delay > 0:
                    draw = uniform(seed, "jitter", facts.trial, facts.logical, facts.attempt, index)
                    delays[index] = delay * (1 + pacing.jitter * (2 * draw - 1))
        return delays


def _trio_deadline(monotonic_at: float) -> float:
    """Convert a time.monotonic() instant to trio's clock."""
    return trio.current_time() + (monotonic_at - time.monotonic())
