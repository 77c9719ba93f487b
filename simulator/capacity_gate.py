"""The live side of finite capacity (:mod:`simulator.faults.capacity` is its model): the slots in
use, the queue and the shared row's version, and the one call ``run_exchange`` makes.

Admission happens once per request in :func:`admit` (``run_exchange`` calls it before writing the
reply) and the slot is given back by :func:`release` when the reply ends, however it ends. Each
request's journal record gets a ``capacity`` entry: admitted or rejected or conflict, the
in-flight count and the limit then, and the time spent queued.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from .api.errors import ApiError
from .faults.capacity import Capacity
from .records import RequestRecord


@dataclass(eq=False)
class Ticket:
    """One request's place: waiting, then in service (holding a slot), then released."""

    gate: CapacityGate
    admitted: bool = False
    released: bool = False
    version: int = 0
    event: trio.Event = field(default_factory=trio.Event)


@dataclass(frozen=True, slots=True)
class Admission:
    outcome: str  # "admitted" | "rejected"
    ticket: Ticket | None
    in_flight: int
    limit: int
    queued_s: float
    waiting: int


class CapacityGate:
    """The live counters of one capacity table (fresh each time its plan is loaded): slots in use,
    the queue, the shared row's version."""

    def __init__(self, spec: Capacity, t0: float, seed: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.t0 = t0
        self.seed = seed
        self.clock = clock  # time.monotonic in the server; trio.current_time under a MockClock in tests
        self.in_flight = 0
        self.waiting: deque[Ticket] = deque()
        self.version = 0
        self.ordinal = 0
        self.counts = {"admitted": 0, "rejected": 0, "committed": 0, "conflict": 0}

    def elapsed(self, now: float | None = None) -> float:
        return (self.clock() if now is None else now) - self.t0

    def limit_now(self, now: float | None = None) -> int:
        return self.spec.limit_at(self.elapsed(now))

    # -- decisions with no waiting (unit-testable without trio) ----------------------------------
    def try_admit(self, now: float | None = None) -> Ticket | None:
        """A slot at once, or None: every slot is busy (or others are already waiting)."""
        self.pump(now)
        if self.waiting or self.in_flight >= self.limit_now(now):
            return None
        return self._take(Ticket(self))

    def can_wait(self) -> bool:
        return len(self.waiting) < self.spec.queue

    def release(self, ticket: Ticket | None, now: float | None = None) -> None:
        """Give the slot back (idempotent); a ticket still waiting leaves the queue."""
        if ticket is None or ticket.released:
            return
        ticket.released = True
        if ticket.admitted:
            self.in_flight -= 1
        elif ticket in self.waiting:
            self.waiting.remove(ticket)
        self.pump(now)

    def pump(self, now: float | None = None) -> None:
        """Admit waiters, oldest first, while slots are free."""
        limit = self.limit_now(now)
        while self.waiting and self.in_flight < limit:
            ticket = self.waiting.popleft()
            self._take(ticket)
            ticket.event.set()

    def commit(self, ticket: Ticket) -> bool:
        """End of a write's service: True if no other write committed since it was admitted."""
        if self.version != ticket.version:
            self.counts["conflict"] += 1
            return False
        self.version += 1
        self.counts["committed"] += 1
        return True

    def _take(self, ticket: Ticket) -> Ticket:
        self.in_flight += 1
        self.counts["admitted"] += 1
        ticket.admitted = True
        ticket.version = self.version
        return ticket

    # -- with waiting ----------------------------------------------------------------------------
    async def enter(self) -> Admission:
        t_start = self.clock()
        ticket = self.try_admit(t_start)
        if ticket is None and self.can_wait():
            ticket = Ticket(self)
            self.waiting.append(ticket)
            try:
                await self._wait_turn(ticket, t_start + self.spec.queue_timeout_s)
            except BaseException:
                self.release(ticket)
                raise
            if not ticket.admitted:
                self.release(ticket)
                ticket = None
        now = self.clock()
        if ticket is None:
            self.counts["rejected"] += 1
        return Admission("admitted" if ticket else "rejected", ticket, self.in_flight, self.limit_now(now), now - t_start, len(self.waiting))

    async def _wait_turn(self, ticket: Ticket, deadline: float) -> None:
        """Until admitted or the queue timeout; wakes at dip boundaries, when the limit may rise."""
        while not ticket.admitted:
            now = self.clock()
            if now >= deadline:
                return
            wake = min(deadline, self.t0 + self.spec.next_change(self.elapsed(now)))
            with trio.move_on_at(trio.current_time() + max(0.0, wake - now) if math.isfinite(wake) else math.inf):
                await ticket.event.wait()
            self.pump()

    async def serve(self, ticket: Ticket) -> bool:
        """Hold the slot for the service time; False: the write lost to a concurrent commit."""
        self.ordinal += 1
        service = self.spec.service_time(self.seed, self.ordinal)
        if service > 0:
            await trio.sleep(service)
        return self.spec.overload != "conflict" or self.commit(ticket)


# -- the one call in run_exchange -----------------------------------------------------------------


async def admit(gate: CapacityGate | None, api: Any, record: RequestRecord, path: str, reply: Any, request_id: str) -> tuple[Ticket | None, Any]:
    """Wait for a slot and the service time; the reply to write (the original, or 529 / 409) and
    the ticket to give back with :func:`release` when the reply ends. ``api`` writes the error
    replies in the form of the API the path belongs to."""
    if gate is None or not path.startswith(gate.spec.path_prefix):
        return None, reply
    admission = await gate.enter()
    note: dict[str, Any] = {
        "outcome": admission.outcome,
        "in_flight": admission.in_flight,
        "limit": admission.limit,
        "waiting": admission.waiting,
        "queued_s": round(admission.queued_s, 6),
    }
    record["capacity"] = note
    if admission.ticket is None:
        return None, _over_capacity(api, gate.spec, request_id, path)
    try:
        committed = await gate.serve(admission.ticket)
    except BaseException:  # cancelled while served: run_exchange never saw the ticket
        release(admission.ticket, record)
        raise
    if not committed:
        note["outcome"] = "conflict"
        return admission.ticket, _conflict(api, request_id, path)
    if gate.spec.overload == "conflict":
        note["outcome"] = "committed"
    return admission.ticket, reply


def release(ticket: Ticket | None, record: RequestRecord) -> None:
    if ticket is not None and not ticket.released:
        ticket.gate.release(ticket)
        if "capacity" in record:
            record["capacity"]["in_flight_after"] = ticket.gate.in_flight


def _over_capacity(api: Any, spec: Capacity, request_id: str, path: str | None = None) -> Any:
    if spec.overload == "conflict":
        return _conflict(api, request_id, path)
    extra = [] if spec.retry_after is None else [(b"retry-after", _header_number(spec.retry_after))]
    return api.error_reply(ApiError(529, "Overloaded", "overloaded_error"), request_id, extra, path=path)  # path: the API's error form


def _conflict(api: Any, request_id: str, path: str | None = None) -> Any:
    return api.error_reply(ApiError(409, "Conflict: another write committed first; read and try again"), request_id, path=path)


def _header_number(value: float) -> bytes:
    return (str(int(value)) if float(value).is_integer() else repr(float(value))).encode()
