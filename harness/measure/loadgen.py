"""Many simulated clients in one process, each retrying with a strategy from :mod:`harness.measure.strategies`.

``run_load(spec, host, port)`` starts ``spec.clients`` trio tasks. Each does logical requests
(a non-streaming ``POST /v1/messages``, a conversation of its own) one after another, with a
think time between them, and retries each with its own :class:`~harness.measure.strategies.RetryController`
(backoff, retry budget, adaptive throttling). Every attempt is recorded with its start and end
(``time.monotonic()``, the simulator journal's clock) and its outcome; the result gives per-second
goodput (successful logical requests per second, by completion time), offered load (attempts
sent per second, by start time), total calls and the time until every client was done.

Bounded: ``deadline_s`` cancels everything still running; ``max_calls`` stops sending.

Transport: raw h11 over trio sockets, one keep-alive connection per client, closed (and opened
again on the next attempt) after a timeout or error, as an SDK's pool would. ``"httpx"`` uses
one ``httpx.AsyncClient`` per client instead; h11 costs about a sixth of the CPU per request
(measured with both against a plain simulator), which matters when the client side must not be the
bottleneck (two cores, the simulator on the other one).

``net_delay_s`` (mean, sd) adds a simulated one-way network delay before each request and after
each answer, as in Brooker's backoff simulator (his network: mean 10 ms, sd 2 ms).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

from harness.measure.strategies import RetryController, Strategy
from simulator.api.errors import retryable_status


@dataclass(frozen=True, slots=True)
class LoadSpec:
    clients: int
    strategy: Strategy
    requests_per_client: int | None = None  # stop a client after this many logical requests
    duration_s: float | None = None  # start no logical request after this
    deadline_s: float = 60.0  # hard bound: cancel whatever still runs
    max_calls: int = 200_000  # hard bound on attempts sent, all clients together
    think_s: float = 0.0  # mean pause between logical requests (exponentially distributed)
    attempt_timeout_s: float = 10.0  # give up on one attempt after this long
    net_delay_s: tuple[float, float] = (0.0, 0.0)  # simulated one-way delay: mean, sd
    start_spread_s: float = 0.0  # clients start uniformly within this span
    seed: int = 0
    transport: str = "h11"  # or "httpx"
    words: int = 4
    key_prefix: str = "load"

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError("clients must be at least 1")
        if self.requests_per_client is None and self.duration_s is None:
            raise ValueError("bound each client: requests_per_client or duration_s")
        if self.transport not in ("h11", "httpx"):
            raise ValueError(f"transport must be 'h11' or 'httpx', not {self.transport!r}")


@dataclass(frozen=True, slots=True)
class LoadAttempt:
    """One try of a logical request (or one the throttle dropped before it was sent)."""

    client: int
    logical: int
    number: int  # 1-based within the logical request
    t_start: float
    t_end: float
    outcome: str  # "ok" | "http" (an error status) | "timeout" | "error" (connection) | "throttled" (dropped locally)
    status: int | None = None

    @property
    def sent(self) -> bool:
        return self.outcome != "throttled"


@dataclass(frozen=True, slots=True)
class Logical:
    client: int
    index: int
    t_start: float
    t_end: float
    ok: bool
    attempts: int


@dataclass
class LoadResult:
    spec: LoadSpec
    t0: float
    t_stop: float
    attempts: list[LoadAttempt] = field(default_factory=list)
    logicals: list[Logical] = field(default_factory=list)
    cancelled: int = 0  # logical requests cut by the deadline

    @property
    def calls(self) -> int:
        """Attempts that reached the network (locally throttled ones excluded)."""
        return sum(1 for a in self.attempts if a.sent)

    @property
    def successes(self) -> int:
        return sum(1 for item in self.logicals if item.ok)

    @property
    def completion_s(self) -> float:
        """Seconds from the start until the last logical request ended (inf if any was cut)."""
        if self.cancelled or not self.logicals:
            return math.inf
        return max(item.t_end for item in self.logicals) - self.t0

    def goodput(self, start_s: float, end_s: float) -> float:
        """Successful logical requests per second that ended in [start_s, end_s) after t0."""
        ended = sum(1 for item in self.logicals if item.ok and start_s <= item.t_end - self.t0 < end_s)
        return ended / (end_s - start_s)

    def offered(self, start_s: float, end_s: float) -> float:
        """Attempts sent per second that started in [start_s, end_s) after t0."""
        sent = sum(1 for a in self.attempts if a.sent and start_s <= a.t_start - self.t0 < end_s)
        return sent / (end_s - start_s)

    def goodput_series(self, bin_s: float = 1.0) -> list[float]:
        return self._series([item.t_end for item in self.logicals if item.ok], bin_s)

    def offered_series(self, bin_s: float = 1.0) -> list[float]:
        return self._series([a.t_start for a in self.attempts if a.sent], bin_s)

    def _series(self, times: list[float], bin_s: float) -> list[float]:
        bins = [0] * max(1, math.ceil((self.t_stop - self.t0) / bin_s))
        for t in times:
            index = int((t - self.t0) / bin_s)
            if 0 <= index < len(bins):
                bins[index] += 1
        return [count / bin_s for count in bins]

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for a in self.attempts:
            key = f"http {a.status}" if a.outcome == "http" else a.outcome
            counts[key] = counts.get(key, 0) + 1
        return counts

    def summary(self) -> dict[str, Any]:
        return {
            "strategy": self.spec.strategy.name,
            "clients": self.spec.clients,
            "logical": len(self.logicals),
            "successes": self.successes,
            "calls": self.calls,
            "completion_s": round(self.completion_s, 3),
            "amplification": round(self.calls / max(1, len(self.logicals)), 3),
            "outcomes": self.outcomes(),
        }


# -- transports ---------------------------------------------------------------------------------


class _H11Connection:
    """One client's keep-alive HTTP/1.1 connection, opened lazily."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.stream: trio.SocketStream | None = None
        self.conn: h11.Connection | None = None

    async def post(self, path: str, headers: list[tuple[str, str]], body: bytes) -> int:
        if self.stream is None or self.conn is None:  # both None, or both set (close() clears both)
            self.stream = await trio.open_tcp_stream(self.host, self.port)
            self.conn = h11.Connection(h11.CLIENT)
        conn = self.conn
        head = [("host", f"{self.host}:{self.port}"), ("content-length", str(len(body))), *headers]
        await self.stream.send_all(
            conn.send(h11.Request(method="POST", target=path, headers=head)) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        )
        status = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("server closed the connection")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.close()
        return status if status is not None else 0

    async def close(self) -> None:
        stream, self.stream, self.conn = self.stream, None, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()


class _HttpxConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.client = _httpx_client()

    async def post(self, path: str, headers: list[tuple[str, str]], body: bytes) -> int:
        response = await self.client.post(f"http://{self.host}:{self.port}{path}", headers=dict(headers), content=body)
        return response.status_code

    async def close(self) -> None:
        client, self.client = self.client, _httpx_client()  # a fresh pool, as after a timeout
        with trio.CancelScope(shield=True):
            await client.aclose()


def _httpx_client() -> Any:
    import httpx

    return httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=None)


# -- the clients --------------------------------------------------------------------------------


async def run_load(spec: LoadSpec, host: str, port: int) -> LoadResult:
    """Run the clients until each is done (or the deadline); return every attempt."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("load runs on loopback only")
    result = LoadResult(spec, time.monotonic(), 0.0)
    budget = [spec.max_calls]
    with trio.move_on_after(spec.deadline_s):
        async with trio.open_nursery() as nursery:
            for index in range(spec.clients):
                nursery.start_soon(_client, spec, host, port, index, result, budget)
    result.t_stop = time.monotonic()
    return result


async def _client(spec: LoadSpec, host: str, port: int, index: int, result: LoadResult, budget: list[int]) -> None:
    rng = random.Random(f"{spec.seed}:{index}")
    controller = RetryController(spec.strategy, random.Random(f"{spec.seed}:{index}:retry"))
    connection = _HttpxConnection(host, port) if spec.transport == "httpx" else _H11Connection(host, port)
    headers = [("content-type", "application/json"), ("x-api-key", f"{spec.key_prefix}-{index}"), ("anthropic-version", "2023-06-01")]
    try:
        if spec.start_spread_s:
            await trio.sleep(rng.uniform(0, spec.start_spread_s))
        logical = 0
        while spec.requests_per_client is None or logical < spec.requests_per_client:
            if spec.duration_s is not None and time.monotonic() - result.t0 >= spec.duration_s:
                return
            if budget[0] <= 0:
                return
            body = json.dumps(
                {
                    "model": "m",
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": f"client {index} request {logical}\n@sc words={spec.words}"}],
                }
            ).encode()
            t_start = time.monotonic()
            cancelled = True
            try:
                ok, attempts = await _logical(spec, connection, controller, rng, headers, body, index, logical, result, budget)
                cancelled = False
            finally:
                if cancelled:
                    result.cancelled += 1
            result.logicals.append(Logical(index, logical, t_start, time.monotonic(), ok, attempts))
            logical += 1
            if spec.think_s:
                await trio.sleep(rng.expovariate(1 / spec.think_s))
    finally:
        await connection.close()


async def _logical(
    spec: LoadSpec,
    connection: Any,
    controller: RetryController,
    rng: random.Random,
    headers: list,
    body: bytes,
    index: int,
    logical: int,
    result: LoadResult,
    budget: list[int],
) -> tuple[bool, int]:
    previous = 0.0
    number = 0
    while True:
        number += 1
        t_start = time.monotonic()
        if not controller.may_send():
            result.attempts.append(LoadAttempt(index, logical, number, t_start, t_start, "throttled"))
            controller.record(False, reached_server=False)
        else:
            if budget[0] <= 0:
                return False, number - 1
            budget[0] -= 1
            outcome, status = await _attempt(spec, connection, rng, headers, body)
            result.attempts.append(LoadAttempt(index, logical, number, t_start, time.monotonic(), outcome, status))
            if outcome == "ok":
                controller.record(True)
                return True, number
            controller.record(False)
            if outcome == "http" and status is not None and not retryable_status(status):  # "http" always has a status
                return False, number
        delay = controller.next_delay(number, previous, mid_stream=False)
        if delay is None:
            return False, number
        previous = delay
        await trio.sleep(delay)


async def _attempt(spec: LoadSpec, connection: Any, rng: random.Random, headers: list, body: bytes) -> tuple[str, int | None]:
    mean, sd = spec.net_delay_s
    if mean:
        await trio.sleep(abs(rng.normalvariate(mean, sd)))
    outcome, status = "timeout", None
    with trio.move_on_after(spec.attempt_timeout_s):
        try:
            status = await connection.post("/v1/messages", headers, body)
            outcome = "ok" if 200 <= status < 300 else "http"
        except (OSError, ConnectionError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as error:
            outcome = "error"
            del error
        except Exception as error:  # httpx transport errors
            if type(error).__module__.startswith(("httpx", "httpcore")):
                outcome = "error"
            else:
                raise
    if outcome in ("timeout", "error"):
        await connection.close()
    elif mean:
        await trio.sleep(abs(rng.normalvariate(mean, sd)))
    return outcome, status


async def run_many(runs: list[tuple[LoadSpec, int]]) -> list[LoadResult]:
    """Several loads at once, each against its own simulator port (one process, one trio run)."""
    results: list[LoadResult | None] = [None] * len(runs)

    async def one(index: int, spec: LoadSpec, port: int) -> None:
        results[index] = await run_load(spec, "127.0.0.1", port)

    async with trio.open_nursery() as nursery:
        for index, (spec, port) in enumerate(runs):
            nursery.start_soon(one, index, spec, port)
    return [r for r in results if r is not None]
