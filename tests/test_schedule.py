"""The reply schedule, sans-IO: exact writes, sleeps and fault firings for every trigger type,
asserted as lists of steps (Playbook-style), with a fake clock and no socket. The wire tests
(faults/test_triggers.py, test_wire_transport.py, test_pacing_scale.py) check that the executor
does what these steps say."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from simulator import faults
from simulator.api.events import WireEvent
from simulator.faults.base import EVENT
from simulator.transport.exchange import Firing
from simulator.transport.schedule import (
    Cuts,
    Fire,
    Mark,
    Miss,
    Pacing,
    Sleep,
    Write,
    body_steps,
    event_delays,
    event_position,
    plan_cuts,
    reply_steps,
    run,
)

T = 100.0  # the fake clock when the reply starts (and its request's headers arrived)
LIMIT = 1 << 20  # coalescing limit that never splits these small replies


def _event(name: str, block: str | None = None, tokens: int = 0, text: str = "") -> WireEvent:
    return WireEvent(name, block, f"event: {name}\ndata: {{{text}}}\n\n".encode(), tokens)


# message_start, ping, a text block of four deltas, message_delta, message_stop: 10 events
EVENTS = (
    _event("message_start"),
    _event("ping"),
    _event("content_block_start", "text"),
    *(_event("content_block_delta", "text", 1, f"d{i}") for i in range(4)),
    _event("content_block_stop", "text"),
    _event("message_delta"),
    _event("message_stop"),
)
D = [e.data for e in EVENTS]
THINKING_THEN_TEXT = (
    _event("message_start"),
    _event("content_block_start", "thinking"),
    _event("content_block_delta", "thinking", 1, "t0"),
    _event("content_block_delta", "thinking", 1, "t1"),
    _event("content_block_stop", "thinking"),
    _event("content_block_start", "text"),
    _event("content_block_delta", "text", 1, "x0"),
    _event("content_block_stop", "text"),
    _event("message_stop"),
)


def firing(index: int, fault: faults.Fault, at: str, value: float = 0, block: str | None = None) -> Firing:
    return Firing(index, faults.Rule(fault, faults.Trigger(at, value, block)))


RST = firing(0, faults.TcpReset(), "events", 3)


def cuts(*firings: Firing, events=EVENTS, t_headers: float = T, plan_t0: float = 0.0, body_bytes: int = 1) -> Cuts:
    return plan_cuts(events, firings, lambda f: f.rule.fault.acts_as == EVENT, t_headers, plan_t0, body_bytes)


NO_CUTS = Cuts()


def steps(the_cuts: Cuts = NO_CUTS, delays=None, frames: bool = False, limit: int = LIMIT, events=EVENTS, cost=None) -> list:
    delays = delays if delays is not None else [0.0] * len(events)
    return run(reply_steps(events, the_cuts, delays, frames=frames, coalesce_limit=limit, now=T), T, cost)


def joined(*indexes: int) -> tuple:
    """One coalesced piece holding these events."""
    return ((b"".join(D[i] for i in indexes), len(indexes)),)


def framed(*indexes: int) -> tuple:
    """One piece (frame, journal entry) per event."""
    return tuple((D[i], 1) for i in indexes)


def size(*indexes: int) -> int:
    return sum(len(D[i]) for i in indexes)


# -- no cut, no pacing --------------------------------------------------------------------------


def test_coalesced_reply_is_one_write_of_every_event():
    assert steps() == [Write(joined(*range(10)))]


def test_coalesced_reply_writes_whenever_the_batch_reaches_the_limit():
    limit = size(0, 1, 2)  # the third event fills the batch
    assert steps(limit=limit) == [Write(joined(0, 1, 2)), Write(joined(3, 4, 5)), Write(joined(6, 7, 8)), Write(joined(9))]


def test_frame_per_event_reply_is_one_write_of_one_piece_per_event():
    assert steps(frames=True) == [Write(framed(*range(10)))]


# -- events -------------------------------------------------------------------------------------


def test_after_n_events_fires_after_exactly_n_events_coalesced():
    assert steps(cuts(RST)) == [
        Fire(RST, joined(0, 1, 2), 3, size(0, 1, 2)),
        Write(joined(*range(3, 10))),  # only if the fault let the reply go on (a stall, say)
    ]


def test_after_n_events_fires_after_exactly_n_events_frame_per_event():
    assert steps(cuts(RST), frames=True) == [
        Fire(RST, framed(0, 1, 2), 3, size(0, 1, 2)),
        Write(framed(*range(3, 10))),
    ]


def test_after_zero_events_fires_before_anything_and_after_all_fires_at_the_end():
    first, last = firing(0, faults.TcpReset(), "events", 0), firing(1, faults.Fin(), "events", 10)
    assert steps(cuts(first, last)) == [
        Fire(first, (), 0, 0),
        Fire(last, joined(*range(10)), 10, size(*range(10))),
    ]


def test_more_events_than_the_answer_has_fires_at_its_end():
    beyond = firing(0, faults.RstStream(), "events", 50)
    assert event_position(EVENTS, 50, None) == 10
    assert steps(cuts(beyond)) == [Fire(beyond, joined(*range(10)), 10, size(*range(10)))]


def test_two_faults_at_one_point_fire_in_plan_order_the_second_after_nothing_new():
    stall = firing(0, faults.Stall(seconds=1.0), "events", 3)
    rst = firing(1, faults.RstStream(), "events", 3)
    assert steps(cuts(stall, rst)) == [
        Fire(stall, joined(0, 1, 2), 3, size(0, 1, 2)),
        Fire(rst, (), 3, size(0, 1, 2)),
        Write(joined(*range(3, 10))),
    ]


def test_events_of_a_block_count_its_deltas_only():
    events = THINKING_THEN_TEXT
    assert event_position(events, 0, "thinking") == 2  # right after its content_block_start
    assert event_position(events, 1, "thinking") == 3
    assert event_position(events, 5, "thinking") == 4  # the block ended first: before its stop
    assert event_position(events, 1, "text") == 7
    assert event_position(events, 1, "tool_use") is None
    cut = firing(0, faults.SseError(), "events", 1, "text")
    data = [e.data for e in events]
    assert steps(cuts(cut, events=events), events=events) == [
        Fire(cut, ((b"".join(data[:7]), 7),), 7, sum(map(len, data[:7]))),
        Write(((b"".join(data[7:]), 2),)),
    ]


def test_a_block_the_answer_lacks_is_a_miss_and_the_reply_is_plain():
    absent = firing(0, faults.TcpReset(), "events", 1, "tool_use")
    planned = cuts(absent)
    assert planned.misses == ((absent, "the answer has no tool_use block"),)
    assert not planned
    assert steps(planned) == [Write(joined(*range(10)))]


# -- bytes --------------------------------------------------------------------------------------


def test_after_n_bytes_splits_the_event_it_falls_in_coalesced():
    offset = size(0) + 5
    cut = firing(0, faults.Fin(), "bytes", offset)
    assert steps(cuts(cut)) == [
        Fire(cut, ((D[0] + D[1][:5], 1),), 1, offset),
        Write(((D[1][5:] + b"".join(D[2:]), 9),)),  # the split event counts once, with its end
    ]


def test_after_n_bytes_splits_the_event_it_falls_in_frame_per_event():
    offset = size(0) + 5
    cut = firing(0, faults.Fin(), "bytes", offset)
    assert steps(cuts(cut), frames=True) == [
        Fire(cut, ((D[0], 1), (D[1][:5], 0)), 1, offset),
        Write(((D[1][5:], 1), *framed(*range(2, 10)))),
    ]


def test_bytes_at_an_event_boundary_fire_between_events_and_past_the_end_miss():
    at_boundary = firing(0, faults.TcpReset(), "bytes", size(0, 1))
    at_end = firing(1, faults.Fin(), "bytes", size(*range(10)))
    beyond = firing(2, faults.Blackhole(), "bytes", size(*range(10)) + 1)
    assert steps(cuts(at_boundary, at_end, beyond)) == [
        Fire(at_boundary, joined(0, 1), 2, size(0, 1)),
        Fire(at_end, joined(*range(2, 10)), 10, size(*range(10))),
        Miss(beyond, "the answer had fewer bytes"),
    ]


def test_a_json_reply_is_cut_at_its_byte_offsets_and_the_rest_follows():
    body = b'{"id": "msg_1", "content": []}'
    first, second = firing(0, faults.Stall(seconds=0.1), "bytes", 4), firing(1, faults.Fin(), "bytes", 10)
    assert run(body_steps(body, [(4, first), (10, second)])) == [
        Fire(first, ((body[:4], 0),), 0, 4),
        Fire(second, ((body[4:10], 0),), 0, 10),
        Write(((body[10:], 0),)),
    ]
    at_zero = firing(0, faults.TcpReset(), "bytes", 0)
    assert run(body_steps(body, [(0, at_zero)])) == [Fire(at_zero, (), 0, 0), Write(((body, 0),))]


# -- time: ms, budget, clock ----------------------------------------------------------------------

TICK = 1 / 64  # one token at 64 tokens/s (exact in binary, so the fake clock adds up exactly)
PACED = [0.0, 0.0, 0.5, 0.0, TICK, TICK, TICK, 0.0, 0.0, 0.0]  # ttft 0.5 s, then 64 tokens/s


def test_pacing_delays_are_ttft_then_one_interval_per_token():
    assert event_delays(Pacing(0.5, 64), EVENTS) == PACED
    two_tokens = (*EVENTS[:4], WireEvent("content_block_delta", "text", b"x", 2), *EVENTS[5:])
    assert event_delays(Pacing(0.0, 64), two_tokens)[4] == 2 * TICK


def test_paced_coalesced_reply_writes_what_is_due_before_each_sleep():
    assert steps(delays=PACED) == [
        Write(joined(0, 1)),
        Sleep(T + 0.5),
        Write(joined(2, 3)),
        Sleep(T + 0.5 + TICK),
        Write(joined(4)),
        Sleep(T + 0.5 + 2 * TICK),
        Write(joined(5)),
        Sleep(T + 0.5 + 3 * TICK),
        Write(joined(6, 7, 8, 9)),
    ]


def test_paced_frame_per_event_reply_keeps_a_piece_per_event_in_each_write():
    assert steps(delays=PACED, frames=True) == [
        Write(framed(0, 1)),
        Sleep(T + 0.5),
        Write(framed(2, 3)),
        Sleep(T + 0.5 + TICK),
        Write(framed(4)),
        Sleep(T + 0.5 + 2 * TICK),
        Write(framed(5)),
        Sleep(T + 0.5 + 3 * TICK),
        Write(framed(6, 7, 8, 9)),
    ]


def test_a_stall_restarts_the_schedule_from_its_end():
    stall = firing(0, faults.Stall(seconds=2.0), "events", 4)
    assert steps(cuts(stall), delays=PACED, cost={4: 2.0}) == [  # step 4 (the stall) takes 2 s
        Write(joined(0, 1)),
        Sleep(T + 0.5),
        Write(joined(2, 3)),
        Sleep(T + 0.5 + TICK),
        Fire(stall, (), 4, size(0, 1, 2, 3)),
        Write(joined(4)),
        Sleep(T + 2.5 + 2 * TICK),  # one interval after the stall's end, not T + 0.5 + 2 TICK
        Write(joined(5)),
        Sleep(T + 2.5 + 3 * TICK),
        Write(joined(6, 7, 8, 9)),
    ]


def test_ms_fires_at_its_instant_while_the_reply_sleeps():
    cut = firing(0, faults.Stall(seconds=0.25), "ms", 500 + 1000 * TICK / 2)
    assert steps(cuts(cut), delays=PACED, cost={4: 0.25}) == [
        Write(joined(0, 1)),
        Sleep(T + 0.5),
        Write(joined(2, 3)),
        Sleep(T + 0.5 + TICK / 2, exact=True),
        Fire(cut, (), 4, size(0, 1, 2, 3)),
        Sleep(T + 0.5 + TICK),  # event 4's own deadline (passed during the stall: written at once)
        Write(joined(4)),
        Sleep(T + 0.75 + TICK / 2 + TICK),  # what follows counts from the stall's end
        Write(joined(5)),
        Sleep(T + 0.75 + TICK / 2 + 2 * TICK),
        Write(joined(6, 7, 8, 9)),
    ]


def test_ms_already_due_fires_before_the_next_event_and_one_never_reached_misses():
    due = firing(0, faults.Fin(), "ms", 0)
    late = firing(1, faults.TcpReset(), "ms", 60_000)
    assert steps(cuts(due, late)) == [
        Fire(due, (), 0, 0),
        Write(joined(*range(10))),
        Miss(late, "the answer ended first"),
    ]


def test_ms_without_pacing_fires_once_a_slow_write_has_let_it_fall_due():
    cut = firing(0, faults.TcpReset(), "ms", 50)
    # the first write (at the limit) takes 0.1 s: the cut is due before the next event
    assert steps(cuts(cut), limit=size(0, 1, 2), cost={0: 0.1}) == [
        Write(joined(0, 1, 2)),
        Fire(cut, (), 3, size(0, 1, 2)),
        Write(joined(3, 4, 5)),
        Write(joined(6, 7, 8)),
        Write(joined(9)),
    ]


def test_budget_is_byte_seconds_over_the_request_body():
    cut = firing(0, faults.TcpReset(), "budget", 2000)  # 2000 byte-seconds over 4000 bytes: 0.5 s
    planned = cuts(cut, body_bytes=4000)
    assert planned.times == ((T + 0.5, cut),)
    assert steps(planned, delays=PACED) == [
        Write(joined(0, 1)),
        Sleep(T + 0.5, exact=True),
        Fire(cut, (), 2, size(0, 1)),
        Sleep(T + 0.5),
        Write(joined(2, 3)),
        Sleep(T + 0.5 + TICK),
        Write(joined(4)),
        Sleep(T + 0.5 + 2 * TICK),
        Write(joined(5)),
        Sleep(T + 0.5 + 3 * TICK),
        Write(joined(6, 7, 8, 9)),
    ]


def test_clock_counts_from_the_plan_load_but_never_before_the_headers():
    later = firing(0, faults.TcpReset(), "clock", 60.5 + TICK / 2)  # plan loaded at 40: fires at T + 0.5 + TICK/2
    past = firing(1, faults.Fin(), "clock", 1.0)  # long past: at the headers
    planned = cuts(later, past, plan_t0=40.0)
    assert planned.times == ((T, past), (T + 0.5 + TICK / 2, later))
    assert steps(planned, delays=PACED, frames=True) == [
        Fire(past, (), 0, 0),
        Write(framed(0, 1)),
        Sleep(T + 0.5),
        Write(framed(2, 3)),
        Sleep(T + 0.5 + TICK / 2, exact=True),
        Fire(later, (), 4, size(0, 1, 2, 3)),
        Sleep(T + 0.5 + TICK),
        Write(framed(4)),
        Sleep(T + 0.5 + 2 * TICK),
        Write(framed(5)),
        Sleep(T + 0.5 + 3 * TICK),
        Write(framed(6, 7, 8, 9)),
    ]


def test_headers_and_connection_triggers_are_not_the_streams_to_place():
    at_headers = firing(0, faults.TcpReset(), "headers")
    at_accept = firing(1, faults.TcpReset(), "accept")
    at_tls = firing(2, faults.Fin(), "tls")
    assert cuts(at_headers, at_accept, at_tls) == Cuts()


# -- malformed events ---------------------------------------------------------------------------


def test_a_garbled_event_is_noted_then_written_in_place_of_the_event():
    bad = firing(0, faults.MalformedSse(mode="garbled"), "events", 3)
    (piece,) = bad.rule.fault.pieces(D[3])
    assert (
        steps(cuts(bad))
        == [
            Mark(bad),  # coalesced: noted with what the earlier writes carried (nothing yet)
            Write(((b"".join(D[:3]) + piece + b"".join(D[4:]), 10),)),
        ]
    )
    assert steps(cuts(bad), frames=True) == [
        Write(framed(0, 1, 2)),
        Mark(bad),  # frame per event: noted after the events before it
        Write(((piece, 1), *framed(*range(4, 10)))),
    ]


def test_a_split_event_leaves_in_two_writes_gap_s_apart():
    split = firing(0, faults.MalformedSse(mode="split", gap_s=0.05), "events", 3)
    first, second = split.rule.fault.pieces(D[3])
    assert steps(cuts(split), frames=True) == [
        Write(framed(0, 1, 2)),
        Mark(split),
        Write(((first, 0),)),
        Sleep(T + 0.05, exact=True),
        Write(((second, 1), *framed(*range(4, 10)))),
    ]
    assert steps(cuts(split)) == [
        Mark(split),
        Write(((b"".join(D[:3]) + first, 3),)),
        Sleep(T + 0.05, exact=True),
        Write(((second + b"".join(D[4:]), 7),)),
    ]


def test_a_malformed_event_at_bytes_fires_like_any_cut_its_action_skips_it():
    odd = firing(0, faults.MalformedSse(), "bytes", size(0))
    assert steps(cuts(odd)) == [Fire(odd, joined(0), 1, size(0)), Write(joined(*range(1, 10)))]


# -- the property ---------------------------------------------------------------------------------


@st.composite
def replies(draw):
    sizes = draw(st.lists(st.integers(1, 40), min_size=1, max_size=30))
    events = tuple(WireEvent("content_block_delta", "text", bytes([65 + i % 26]) * n, 1) for i, n in enumerate(sizes))
    total = sum(sizes)
    chosen = []
    for index in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            chosen.append(firing(index, faults.Stall(seconds=0.0), "events", draw(st.integers(0, len(events) + 2))))
        else:
            chosen.append(firing(index, faults.Stall(seconds=0.0), "bytes", draw(st.integers(0, total + 2))))
    delays = draw(st.lists(st.sampled_from([0.0, 0.0, 0.01, 0.02]), min_size=len(events), max_size=len(events)))
    return events, chosen, delays, draw(st.booleans()), draw(st.integers(1, 200))


@given(replies())
def test_every_fault_fires_after_exactly_the_bytes_before_its_cut_in_order_and_nothing_after(reply):
    events, chosen, delays, frames, limit = reply
    data = b"".join(e.data for e in events)
    ends = [0]
    for event in events:
        ends.append(ends[-1] + len(event.data))
    out = run(reply_steps(events, cuts(*chosen, events=events), delays, frames=frames, coalesce_limit=limit, now=T), T)
    wire = b""
    counted = 0
    fired = {}
    clock = T
    for step in out:
        pieces = getattr(step, "pieces", ())
        if frames:
            assert all(n <= 1 for _, n in pieces)  # frame per event: never two events in one frame
        for piece, n in pieces:
            assert piece  # no empty write
            wire += piece
            counted += n
            assert counted == sum(1 for end in ends[1:] if end <= len(wire))  # an event counts with its last byte
        if isinstance(step, Fire):
            assert (step.events_out, step.bytes_out) == (counted, len(wire))
            fired[step.firing.index] = step
        if isinstance(step, Sleep):
            assert step.until >= clock - 1e-9
            clock = max(clock, step.until)
    assert wire == data and counted == len(events)  # everything, in order, once
    for cut in chosen:
        trigger = cut.rule.trigger
        if trigger.at == "events":
            n = min(int(trigger.value), len(events))
            assert (fired[cut.index].events_out, fired[cut.index].bytes_out) == (n, ends[n])
        elif trigger.value <= len(data):
            assert fired[cut.index].bytes_out == trigger.value
        else:
            assert cut.index not in fired
