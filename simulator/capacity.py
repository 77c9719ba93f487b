"""Finite capacity as data: a server that can serve ``limit`` requests at once, each for
``service_s``, with capacity dips, an optional queue, and optimistic-concurrency conflicts.

The plan's top-level ``capacity`` table::

    capacity = {limit = 10, service_s = 0.1, queue = 200, dips = [{window_s = [5, 8], limit = 2}]}

* ``limit``: requests in service at once; ``dips`` lower it during ``window_s`` (seconds since the
  plan was loaded; overlapping dips: the lowest limit wins; a dip to 0 is an outage).
* ``service_s``: how long each admitted request holds its slot before its answer is written
  (the answer's time to first byte); ``jitter`` spreads it by that share, drawn from the plan's
  seed and the admission ordinal, so a run replays.
* ``queue``: requests that find every slot busy wait, first in first out, up to this many
  (0: none wait); a waiter gets the over-capacity answer after ``queue_timeout_s``.
  The server does not notice an HTTP/1.1 client that left while its request waits or is served:
  the slot stays taken until the work is done (wasted work, what makes retry storms metastable).
  An HTTP/2 RST_STREAM cancels the exchange and frees the slot at once.
* ``overload``: what an over-capacity request gets at once: ``"529"`` (overloaded_error, with
  ``retry_after`` if set) or ``"conflict"`` (409). With ``"conflict"`` every request is also a
  write to one shared row under optimistic concurrency, as in Brooker's backoff study: it reads
  the row's version when admitted and commits when its service ends; if another write committed
  in between it gets 409 instead of its answer (first committer wins, so each overlapping group
  makes progress).

Admission happens once per request in :func:`admit` (``run_exchange`` calls it before writing the
reply) and the slot is given back by :func:`release` when the reply ends, however it ends. Each
request's journal record gets a ``capacity`` entry: admitted or rejected or conflict, the
in-flight count and the limit then, and the time spent queued.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping

import trio

from .api.errors import ApiError
from .api.router import JsonReply
from .faults.decide import uniform
from .faults.model import PlanError, _is_number, _join, _mapping, _non_negative, _only, _typed

if TYPE_CHECKING:
    from .server import ServerState

OVERLOADS = ("529", "conflict")


# -- the model -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Dip:
    window_s: tuple[float, float]
    limit: int


@dataclass(frozen=True, slots=True)
class Capacity:
    limit: int
    service_s: float = 0.0
    jitter: float = 0.0
    queue: int = 0
    queue_timeout_s: float = math.inf
    overload: str = "529"
    retry_after: float | None = None
    dips: tuple[Dip, ...] = ()
    path_prefix: str = "/v1/messages"

    KEYS = ("limit", "service_s", "jitter", "queue", "queue_timeout_s", "overload", "retry_after", "dips", "path_prefix")

    def check(self, path: str = "capacity") -> "Capacity":
        _count(self.limit, f"{path}.limit", minimum=1)
        _non_negative(self.service_s, f"{path}.service_s")
        if math.isinf(self.service_s):
            raise PlanError(f"{path}.service_s", "must be finite")
        if not _is_number(self.jitter) or not 0 <= self.jitter <= 1:
            raise PlanError(f"{path}.jitter", f"must be between 0 and 1, not {self.jitter!r}")
        _count(self.queue, f"{path}.queue", minimum=0)
        _non_negative(self.queue_timeout_s, f"{path}.queue_timeout_s")
        if self.overload not in OVERLOADS:
            raise PlanError(f"{path}.overload", f"must be '529' or 'conflict', not {self.overload!r}")
        if self.retry_after is not None:
            _non_negative(self.retry_after, f"{path}.retry_after")
            if self.overload != "529":
                raise PlanError(f"{path}.retry_after", "only applies to overload = '529'")
        for index, dip in enumerate(self.dips):
            where = f"{path}.dips[{index}]"
            window = dip.window_s
            if len(window) != 2 or not all(_is_number(v) and math.isfinite(v) for v in window) or not 0 <= window[0] <= window[1]:
                raise PlanError(f"{where}.window_s", "must be [start, end] seconds with 0 <= start <= end")
            _count(dip.limit, f"{where}.limit", minimum=0)
        return self

    def limit_at(self, elapsed_s: float) -> int:
        """The limit ``elapsed_s`` seconds after the plan was loaded."""
        limit = self.limit
        for dip in self.dips:
            if dip.window_s[0] <= elapsed_s < dip.window_s[1]:
                limit = min(limit, dip.limit)
        return limit

    def next_change(self, elapsed_s: float) -> float:
        """The first dip boundary after ``elapsed_s`` (inf: none)."""
        return min((edge for dip in self.dips for edge in dip.window_s if edge > elapsed_s), default=math.inf)

    def service_time(self, seed: int, ordinal: int) -> float:
        if not self.jitter:
            return self.service_s
        return self.service_s * (1 + self.jitter * (2 * uniform(seed, "capacity", ordinal) - 1))

    def scaled(self, factor: float) -> "Capacity":
        """Every duration (and dip window) multiplied by ``factor``."""
        return replace(
            self, service_s=self.service_s * factor, queue_timeout_s=self.queue_timeout_s * factor,
            retry_after=None if self.retry_after is None else self.retry_after * factor,
            dips=tuple(Dip((d.window_s[0] * factor, d.window_s[1] * factor), d.limit) for d in self.dips),
        )

    # -- plain data ----------------------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: Any, path: str = "capacity") -> "Capacity":
        data = _mapping(data, path)
        _only(data, set(cls.KEYS), path)
        if "limit" not in data:
            raise PlanError(_join(path, "limit"), "is required: requests in service at once")
        values: dict[str, Any] = {"limit": _typed(data["limit"], int, _join(path, "limit"))}
        for name in ("service_s", "jitter", "queue_timeout_s", "retry_after"):
            if name in data and not (name == "retry_after" and data[name] is None):
                values[name] = _number(data[name], _join(path, name))
        if "queue" in data:
            values["queue"] = _typed(data["queue"], int, _join(path, "queue"))
        if "overload" in data:
            overload = data["overload"]
            values["overload"] = str(overload) if isinstance(overload, int) and not isinstance(overload, bool) else _typed(overload, str, _join(path, "overload"))
        if "path_prefix" in data:
            values["path_prefix"] = _typed(data["path_prefix"], str, _join(path, "path_prefix"))
        raw_dips = data.get("dips", [])
        if not isinstance(raw_dips, list):
            raise PlanError(_join(path, "dips"), "must be a list of tables {window_s = [start, end], limit = N}")
        values["dips"] = tuple(_dip(item, f"{_join(path, 'dips')}[{i}]") for i, item in enumerate(raw_dips))
        return cls(**values).check(path)

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"limit": self.limit, "service_s": self.service_s, "jitter": self.jitter, "queue": self.queue,
                               "queue_timeout_s": "inf" if math.isinf(self.queue_timeout_s) else self.queue_timeout_s,
                               "overload": self.overload, "path_prefix": self.path_prefix,
                               "dips": [{"window_s": list(d.window_s), "limit": d.limit} for d in self.dips]}
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out


def _dip(data: Any, path: str) -> Dip:
    data = _mapping(data, path)
    _only(data, {"window_s", "limit"}, path)
    for key in ("window_s", "limit"):
        if key not in data:
            raise PlanError(_join(path, key), "is required")
    window = data["window_s"]
    if not isinstance(window, list) or len(window) != 2 or not all(_is_number(v) for v in window):
        raise PlanError(_join(path, "window_s"), f"must be a list of two numbers [start, end], not {window!r}")
    return Dip((float(window[0]), float(window[1])), _typed(data["limit"], int, _join(path, "limit")))


def _number(value: Any, path: str) -> float:
    if value in ("inf", "forever"):
        return math.inf
    if not _is_number(value) or math.isnan(value):
        raise PlanError(path, f"must be a number, not {value!r}")
    return float(value)


def _count(value: Any, path: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PlanError(path, f"must be a whole number >= {minimum}, not {value!r}")


# -- the live side ---------------------------------------------------------------------------------

@dataclass(eq=False)
class Ticket:
    """One request's place: waiting, then in service (holding a slot), then released."""

    gate: "CapacityGate"
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
    """The counters of one loaded plan: slots in use, the queue, the row's version."""

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

async def admit(state: "ServerState", record: dict, path: str, reply: Any, request_id: str) -> tuple[Ticket | None, Any]:
    """Wait for a slot and the service time; the reply to write (the original, or 529 / 409) and
    the ticket to give back with :func:`release` when the reply ends."""
    gate: CapacityGate | None = getattr(state.faults, "capacity", None)
    if gate is None or not path.startswith(gate.spec.path_prefix):
        return None, reply
    admission = await gate.enter()
    note: dict[str, Any] = {"outcome": admission.outcome, "in_flight": admission.in_flight, "limit": admission.limit,
                            "waiting": admission.waiting, "queued_s": round(admission.queued_s, 6)}
    record["capacity"] = note
    if admission.ticket is None:
        return None, _over_capacity(state, gate.spec, request_id, path)
    try:
        committed = await gate.serve(admission.ticket)
    except BaseException:  # cancelled while served: run_exchange never saw the ticket
        release(admission.ticket, record)
        raise
    if not committed:
        note["outcome"] = "conflict"
        return admission.ticket, _conflict(state, request_id, path)
    if gate.spec.overload == "conflict":
        note["outcome"] = "committed"
    return admission.ticket, reply


def release(ticket: Ticket | None, record: dict) -> None:
    if ticket is not None and not ticket.released:
        ticket.gate.release(ticket)
        if "capacity" in record:
            record["capacity"]["in_flight_after"] = ticket.gate.in_flight


def _over_capacity(state: "ServerState", spec: Capacity, request_id: str, path: str | None = None) -> JsonReply:
    if spec.overload == "conflict":
        return _conflict(state, request_id, path)
    extra = [] if spec.retry_after is None else [(b"retry-after", _header_number(spec.retry_after))]
    return state.api.error_reply(ApiError(529, "Overloaded", "overloaded_error"), request_id, extra, path=path)  # path: the API's error form


def _conflict(state: "ServerState", request_id: str, path: str | None = None) -> JsonReply:
    return state.api.error_reply(ApiError(409, "Conflict: another write committed first; read and try again"), request_id, path=path)


def _header_number(value: float) -> bytes:
    return (str(int(value)) if float(value).is_integer() else repr(float(value))).encode()


def from_data(data: Mapping[str, Any] | None, path: str = "capacity") -> Capacity | None:
    return None if data is None else Capacity.from_data(data, path)
