"""The capacity model with no sockets: validation, admission decisions, the queue, dips and the
optimistic-concurrency row, under trio's MockClock where time matters."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.api.router import JsonReply, MessagesApi
from simulator.capacity_gate import CapacityGate, admit, release
from simulator.config import SimulatorConfig
from simulator.fault_state import FaultState
from simulator.faults import FaultPlan, PlanError
from simulator.faults.capacity import Capacity
from simulator.faults.model import scaled


def capacity(**values) -> Capacity:
    return Capacity.from_data({"limit": 2, **values})


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, path",
    [
        ({"capacity": {}}, "capacity.limit"),
        ({"capacity": {"limit": 0}}, "capacity.limit"),
        ({"capacity": {"limit": 1.5}}, "capacity.limit"),
        ({"capacity": {"limit": True}}, "capacity.limit"),
        ({"capacity": {"limit": 1, "service_s": -1}}, "capacity.service_s"),
        ({"capacity": {"limit": 1, "service_s": "inf"}}, "capacity.service_s"),
        ({"capacity": {"limit": 1, "jitter": 2}}, "capacity.jitter"),
        ({"capacity": {"limit": 1, "queue": -1}}, "capacity.queue"),
        ({"capacity": {"limit": 1, "queue_timeout_s": "soon"}}, "capacity.queue_timeout_s"),
        ({"capacity": {"limit": 1, "overload": "503"}}, "capacity.overload"),
        ({"capacity": {"limit": 1, "overload": "conflict", "retry_after": 1}}, "capacity.retry_after"),
        ({"capacity": {"limit": 1, "dips": {"window_s": [1, 2], "limit": 0}}}, "capacity.dips"),
        ({"capacity": {"limit": 1, "dips": [{"window_s": [2, 1], "limit": 0}]}}, "capacity.dips[0].window_s"),
        ({"capacity": {"limit": 1, "dips": [{"window_s": [1], "limit": 0}]}}, "capacity.dips[0].window_s"),
        ({"capacity": {"limit": 1, "dips": [{"window_s": [1, 2], "limit": -1}]}}, "capacity.dips[0].limit"),
        ({"capacity": {"limit": 1, "dips": [{"window_s": [1, 2]}]}}, "capacity.dips[0].limit"),
        ({"capacity": {"limit": 1, "dips": [{"window_s": [1, 2], "limit": 1, "until": 3}]}}, "capacity.dips[0].until"),
        ({"capacity": {"limit": 1, "burst": 3}}, "capacity.burst"),
        ({"capacity": [1]}, "capacity"),
    ],
)
def test_invalid_capacity_names_the_key(bad, path):
    with pytest.raises(PlanError) as error:
        FaultPlan.from_data(bad)
    assert error.value.path == path


numbers = st.one_of(st.integers(-3, 50), st.floats(-3, 50), st.just(math.nan), st.just("inf"), st.text(max_size=3), st.none(), st.booleans())
documents = st.fixed_dictionaries(
    {},
    optional={
        "limit": numbers,
        "service_s": numbers,
        "jitter": numbers,
        "queue": numbers,
        "queue_timeout_s": numbers,
        "retry_after": numbers,
        "overload": st.sampled_from(["529", 529, "conflict", "x", None]),
        "path_prefix": st.sampled_from(["/v1/messages", "/", 3]),
        "dips": st.one_of(
            st.lists(st.fixed_dictionaries({}, optional={"window_s": st.lists(numbers, max_size=3), "limit": numbers}), max_size=3), numbers
        ),
    },
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_arbitrary_capacity_tables_load_or_fail_with_a_plan_error(document):
    try:
        plan = FaultPlan.from_data({"capacity": document})
    except PlanError as error:
        assert error.path.startswith("capacity")
        return
    assert FaultPlan.from_data(plan.to_data()) == plan


valid = st.builds(
    lambda limit, service, jitter, queue, windows, overload: {
        "limit": limit,
        "service_s": service,
        "jitter": jitter,
        "queue": queue,
        "overload": overload,
        "dips": [{"window_s": sorted(w), "limit": lim} for w, lim in windows],
    },
    st.integers(1, 100),
    st.floats(0, 5),
    st.floats(0, 1),
    st.integers(0, 1000),
    st.lists(st.tuples(st.lists(st.integers(0, 10_000).map(lambda cs: cs / 100), min_size=2, max_size=2), st.integers(0, 100)), max_size=4),
    st.sampled_from(["529", "conflict"]),
)


# windows and instants on a millisecond grid: scaling two floats a hair apart may round them together
@given(valid, st.floats(0.01, 10), st.integers(0, 200_000).map(lambda ms: ms / 1000))
def test_scaling_keeps_the_shape_of_the_limit_over_plan_time(table, factor, t):
    plan = FaultPlan.from_data({"capacity": table})
    small = scaled(plan, factor)
    assert FaultPlan.from_data(plan.to_data()) == plan
    assert small.capacity.limit_at(t * factor) == plan.capacity.limit_at(t)
    assert small.capacity.service_s == pytest.approx(plan.capacity.service_s * factor)


def test_plans_without_capacity_are_unchanged():
    plan = FaultPlan.from_data({"seed": 3, "faults": [{"type": "fin"}]})
    assert plan.capacity is None and "capacity" not in plan.to_data()
    assert FaultState(plan).capacity is None


# -- decisions without waiting -------------------------------------------------------------------


def test_limit_over_plan_time_dips_and_boundaries():
    c = capacity(limit=10, dips=[{"window_s": [5, 8], "limit": 2}, {"window_s": [7, 9], "limit": 4}])
    assert [c.limit_at(t) for t in (0, 4.99, 5, 6.5, 7, 7.99, 8, 8.99, 9, 100)] == [10, 10, 2, 2, 2, 2, 4, 4, 10, 10]
    assert [c.next_change(t) for t in (0, 5, 7.5, 8.5, 9)] == [5, 7, 8, 9, math.inf]


def test_admits_up_to_the_limit_then_refuses_and_release_frees_a_slot():
    gate = CapacityGate(capacity(limit=2), t0=0.0, clock=lambda: 1.0)
    a, b = gate.try_admit(), gate.try_admit()
    assert a and b and gate.in_flight == 2
    assert gate.try_admit() is None
    gate.release(a)
    gate.release(a)  # idempotent
    assert gate.in_flight == 1
    assert gate.try_admit() is not None
    assert gate.counts["admitted"] == 3


def test_a_dip_lowers_the_limit_for_new_arrivals_and_in_flight_requests_finish():
    now = [0.0]
    gate = CapacityGate(capacity(limit=3, dips=[{"window_s": [10, 20], "limit": 1}]), t0=0.0, clock=lambda: now[0])
    held = [gate.try_admit() for _ in range(3)]
    now[0] = 12.0
    assert gate.try_admit() is None  # 3 in flight, limit 1
    gate.release(held[0])
    gate.release(held[1])
    assert gate.try_admit() is None  # still 1 in flight: at the dip's limit
    gate.release(held[2])
    assert gate.try_admit() is not None
    now[0] = 20.0
    assert gate.try_admit() is not None and gate.try_admit() is not None and gate.try_admit() is None


def test_an_outage_dip_to_zero_admits_nothing():
    gate = CapacityGate(capacity(limit=5, dips=[{"window_s": [0, 1], "limit": 0}]), t0=0.0, clock=lambda: 0.5)
    assert gate.try_admit() is None


def test_optimistic_concurrency_first_committer_wins():
    gate = CapacityGate(capacity(limit=100, overload="conflict"), t0=0.0)
    a, b = gate.try_admit(), gate.try_admit()  # both read version 0
    assert gate.commit(a) is True
    assert gate.commit(b) is False  # a committed while b was in flight
    c = gate.try_admit()  # reads version 1
    assert gate.commit(c) is True
    assert gate.counts == {"admitted": 3, "rejected": 0, "committed": 2, "conflict": 1}


def test_service_time_jitter_is_bounded_and_replays():
    c = capacity(service_s=0.1, jitter=0.25)
    times = [c.service_time(7, n) for n in range(1, 500)]
    assert all(0.075 <= t <= 0.125 for t in times)
    assert times == [c.service_time(7, n) for n in range(1, 500)]
    assert times != [c.service_time(8, n) for n in range(1, 500)]
    assert capacity(service_s=0.1).service_time(7, 3) == 0.1


@given(st.lists(st.sampled_from(["arrive", "release", "tick"]), max_size=60), st.integers(1, 4), st.integers(0, 3))
def test_admission_invariants(ops, limit, dip_limit):
    """Never more in flight than the limit at the moment of admission; counters add up."""
    now = [0.0]
    gate = CapacityGate(capacity(limit=limit, dips=[{"window_s": [3, 6], "limit": dip_limit}]), t0=0.0, clock=lambda: now[0])
    held, admitted, refused = [], 0, 0
    for op in ops:
        if op == "arrive":
            before = gate.in_flight
            ticket = gate.try_admit()
            if ticket is None:
                refused += 1
                assert before >= gate.limit_now()
            else:
                admitted += 1
                held.append(ticket)
                assert gate.in_flight <= gate.limit_now()
        elif op == "release" and held:
            gate.release(held.pop(0))
        elif op == "tick":
            now[0] += 1
    assert gate.in_flight == len(held) and gate.counts["admitted"] == admitted


# -- the queue, under a MockClock -----------------------------------------------------------------


def run_mock(fn):
    trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


def test_the_queue_is_first_in_first_out_and_times_out():
    order, rejected = [], []

    async def main():
        gate = CapacityGate(capacity(limit=1, service_s=1.0, queue=2, queue_timeout_s=1.5), t0=trio.current_time(), clock=trio.current_time)

        async def request(name):
            admission = await gate.enter()
            if admission.ticket is None:
                rejected.append((name, trio.current_time()))
                return
            order.append((name, round(admission.queued_s, 6)))
            await gate.serve(admission.ticket)
            gate.release(admission.ticket)

        async with trio.open_nursery() as nursery:
            for name in "abcd":
                nursery.start_soon(request, name)
                await trio.sleep(0.01)
        assert gate.in_flight == 0 and not gate.waiting

    run_mock(main)
    # a served at once; b and c queue (d finds the queue full: refused at once); c times out at 1.5 s (b holds the slot until 2 s)
    assert [name for name, _ in order] == ["a", "b"]
    assert order[1][1] == pytest.approx(0.99)
    assert [name for name, _ in rejected] == ["d", "c"]
    assert rejected[1][1] == pytest.approx(0.02 + 1.5)


def test_waiters_are_admitted_when_a_dip_ends_even_if_nobody_leaves():
    admitted_at = []

    async def main():
        gate = CapacityGate(capacity(limit=2, queue=10, dips=[{"window_s": [0, 3], "limit": 0}]), t0=trio.current_time(), clock=trio.current_time)

        async def request():
            admission = await gate.enter()
            admitted_at.append(trio.current_time())
            gate.release(admission.ticket)

        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(request)

    run_mock(main)
    assert admitted_at == [pytest.approx(3.0)] * 2


def test_a_cancelled_waiter_leaves_the_queue():
    async def main():
        gate = CapacityGate(capacity(limit=1, queue=5), t0=trio.current_time(), clock=trio.current_time)
        holder = gate.try_admit()
        with trio.move_on_after(1):
            await gate.enter()
        assert not gate.waiting and gate.in_flight == 1
        gate.release(holder)
        assert gate.in_flight == 0

    run_mock(main)


# -- the call run_exchange makes ------------------------------------------------------------------


def fake_state(table):
    gate = CapacityGate(Capacity.from_data(table), t0=trio.current_time(), clock=trio.current_time)
    return SimpleNamespace(gate=gate, api=MessagesApi(SimulatorConfig()))


def test_admit_answers_529_or_409_and_notes_the_journal_record():
    results = {}

    async def main():
        for overload in ("529", "conflict"):
            state = fake_state({"limit": 2, "service_s": 0.5, "overload": overload, **({"retry_after": 3} if overload == "529" else {})})
            records = [{} for _ in range(3)]

            async def request(i):
                slot, reply = await admit(state.gate, state.api, records[i], "/v1/messages", "ANSWER", f"req_{i}")
                release(slot, records[i])
                results[(overload, i)] = reply

            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(request, i)
                    await trio.sleep(0.1)
            results[overload] = records
            slot, reply = await admit(state.gate, state.api, {}, "/v1/models", "MODELS", "req_x")
            assert slot is None and reply == "MODELS"  # outside path_prefix

    run_mock(main)
    ok, second, over = (results[("529", i)] for i in range(3))
    assert ok == "ANSWER" == second
    assert isinstance(over, JsonReply) and over.status == 529 and (b"retry-after", b"3") in over.headers
    assert b"overloaded_error" in over.body
    records = results["529"]
    assert [r["capacity"]["outcome"] for r in records] == ["admitted", "admitted", "rejected"]
    assert [r["capacity"]["in_flight"] for r in records] == [1, 2, 2]
    assert records[0]["capacity"]["in_flight_after"] == 1
    # conflict: the second write overlapped the first and lost; the third was over the limit
    first, lost, refused = (results[("conflict", i)] for i in range(3))
    assert first == "ANSWER" and lost.status == 409 and refused.status == 409
    assert [r["capacity"]["outcome"] for r in results["conflict"]] == ["committed", "conflict", "rejected"]


def test_loading_a_plan_starts_a_fresh_gate():
    state = FaultState(FaultPlan.from_data({"capacity": {"limit": 1}}))
    gate = state.capacity
    gate.try_admit()
    state.load(state.plan)
    assert state.capacity is not gate and state.capacity.in_flight == 0
    assert state.capacity.t0 == state.t0
    state.load(FaultPlan())
    assert state.capacity is None
