"""Retry strategies as data, and the small state machines that apply them.

Pure: time and randomness are passed in, so a strategy's decisions can be unit-tested and
replayed. Used by the reference client (``harness/clients/reference/``) and by the load
simulations that compare strategies side by side.

Formulas:
* exponential: ``min(cap, base * 2**n)``; full jitter: ``U(0, that)``; equal jitter: half fixed,
  half random; decorrelated: ``min(cap, U(base, 3 * previous))`` (Brooker, "Exponential Backoff And
  Jitter").
* sdk: ``min(0.5 * 2**n, 8) * (1 - 0.25 U)``, the official SDKs' default (REFERENCE §3).
* retry budget: gRPC A6 token bucket, ``max_tokens`` 10, ``token_ratio`` 0.1: a failure takes a
  token, a success gives back ``token_ratio``, retries are allowed while tokens > max / 2.
* adaptive throttling: Google SRE, reject locally with ``max(0, (requests - K*accepts) / (requests + 1))``
  over a sliding window, K = 2.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

BACKOFFS = ("none", "fixed", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter", "sdk")


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    backoff: str = "sdk"
    base_s: float = 0.5
    cap_s: float = 8.0
    max_attempts: int = 3  # the first try included
    retry_mid_stream: bool = False  # retry after the stream started (the SDKs never do)
    resume: bool = False  # on retry, ask to continue from the partial answer, print no duplicate
    idle_timeout_s: float | None = None  # give up on an attempt whose stream is silent this long
    fresh_connection: bool = False  # after a connection-level failure or GOAWAY, never reuse the pool
    hedge_after_s: float | None = None  # send a second copy if no first byte after this long
    budget_max_tokens: float | None = None  # gRPC A6 retry throttling
    budget_token_ratio: float = 0.1
    throttle_k: float | None = None  # SRE adaptive throttling multiplier
    throttle_window_s: float = 120.0
    # Socket options (kernel timers, real time: never scaled by time_scale; see socket_options()):
    keepalive_idle_s: int | None = None  # SO_KEEPALIVE with TCP_KEEPIDLE (then TCP_KEEPINTVL, TCP_KEEPCNT)
    keepalive_interval_s: int = 15
    keepalive_count: int = 4
    user_timeout_s: float | None = None  # TCP_USER_TIMEOUT: give up on unacknowledged data after this long
    pool_idle_s: float | None = None  # keep an idle pooled connection this long (None: httpx's 5 s, as the Python SDK)

    def __post_init__(self) -> None:
        if self.backoff not in BACKOFFS:
            raise ValueError(f"strategy {self.name}: backoff must be one of {', '.join(BACKOFFS)}, not {self.backoff!r}")
        if self.max_attempts < 1:
            raise ValueError(f"strategy {self.name}: max_attempts must be at least 1")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError(f"strategy {self.name}: base_s and cap_s must not be negative")

    def delay(self, retry: int, previous_s: float, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first retry)."""
        n = retry - 1
        ceiling = min(self.cap_s, self.base_s * 2**n)
        if self.backoff == "none":
            return 0.0
        if self.backoff == "fixed":
            return self.base_s
        if self.backoff == "exponential":
            return ceiling
        if self.backoff == "full_jitter":
            return rng.uniform(0, ceiling)
        if self.backoff == "equal_jitter":
            return ceiling / 2 + rng.uniform(0, ceiling / 2)
        if self.backoff == "decorrelated_jitter":
            return min(self.cap_s, rng.uniform(self.base_s, max(self.base_s, 3 * (previous_s or self.base_s))))
        return min(0.5 * 2**n, 8.0) * (1 - 0.25 * rng.random())  # sdk


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("none", backoff="none", max_attempts=1),
        Strategy("sdk-default", backoff="sdk", max_attempts=3),
        Strategy("fixed", backoff="fixed", base_s=1.0, max_attempts=5, retry_mid_stream=True),
        Strategy("exponential", backoff="exponential", max_attempts=5, retry_mid_stream=True),
        Strategy("full-jitter", backoff="full_jitter", max_attempts=5, retry_mid_stream=True),
        Strategy("equal-jitter", backoff="equal_jitter", max_attempts=5, retry_mid_stream=True),
        Strategy("decorrelated-jitter", backoff="decorrelated_jitter", max_attempts=5, retry_mid_stream=True),
        Strategy("retry-budget", backoff="full_jitter", max_attempts=5, retry_mid_stream=True, budget_max_tokens=10),
        Strategy("adaptive-throttle", backoff="full_jitter", max_attempts=5, retry_mid_stream=True, throttle_k=2.0),
        Strategy("resume", backoff="full_jitter", max_attempts=5, retry_mid_stream=True, resume=True),
        Strategy("idle-watchdog", backoff="full_jitter", max_attempts=5, retry_mid_stream=True, idle_timeout_s=10.0, fresh_connection=True),
        Strategy("fresh-connection", backoff="full_jitter", max_attempts=5, retry_mid_stream=True, fresh_connection=True),
        Strategy("hedging", backoff="full_jitter", max_attempts=3, retry_mid_stream=True, hedge_after_s=2.0),
        # Same retries as sdk-default, but idle connections stay pooled 90 s (Go's IdleConnTimeout; Bun
        # reuses them too): a socket option only matters on a connection that is reused after an idle.
        # pooled-90s has no socket option; the other two add one (the network lab shows what each changes).
        Strategy("pooled-90s", backoff="sdk", max_attempts=3, pool_idle_s=90.0),
        Strategy("tcp-keepalive", backoff="sdk", max_attempts=3, pool_idle_s=90.0, keepalive_idle_s=15, keepalive_interval_s=15, keepalive_count=4),
        Strategy("user-timeout", backoff="sdk", max_attempts=3, pool_idle_s=90.0, user_timeout_s=10.0),
        Strategy(
            "resilient",
            backoff="full_jitter",
            max_attempts=6,
            retry_mid_stream=True,
            resume=True,
            idle_timeout_s=10.0,
            fresh_connection=True,
            budget_max_tokens=10,
        ),
    )
}


def get(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def socket_options(strategy: Strategy) -> list[tuple[int, int, int]]:
    """``(level, option, value)`` for the client's TCP sockets: SO_KEEPALIVE with
    TCP_KEEPIDLE/INTVL/CNT, TCP_USER_TIMEOUT (milliseconds). Empty: the OS defaults."""
    import socket

    options: list[tuple[int, int, int]] = []
    if strategy.keepalive_idle_s is not None:
        options += [
            (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
            (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, int(strategy.keepalive_idle_s)),
            (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, int(strategy.keepalive_interval_s)),
            (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, int(strategy.keepalive_count)),
        ]
    if strategy.user_timeout_s is not None:
        options.append((socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(strategy.user_timeout_s * 1000)))
    return options


def scaled(strategy: Strategy, factor: float) -> Strategy:
    """The same strategy with its durations multiplied by ``factor`` (a scenario's time_scale)."""

    def times(value: float | None) -> float | None:
        return None if value is None else value * factor

    return replace(
        strategy,
        base_s=strategy.base_s * factor,
        cap_s=strategy.cap_s * factor,
        idle_timeout_s=times(strategy.idle_timeout_s),
        hedge_after_s=times(strategy.hedge_after_s),
        throttle_window_s=strategy.throttle_window_s * factor,
        pool_idle_s=times(strategy.pool_idle_s),
    )


@dataclass
class RetryBudget:
    """gRPC A6 retry throttling, shared by all requests of one client."""

    max_tokens: float
    token_ratio: float = 0.1
    tokens: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.max_tokens

    def record(self, success: bool) -> None:
        self.tokens = min(self.max_tokens, self.tokens + self.token_ratio) if success else max(0.0, self.tokens - 1)

    def allows_retry(self) -> bool:
        return self.tokens > self.max_tokens / 2


@dataclass
class AdaptiveThrottle:
    """Google SRE client-side throttling, over a sliding window of (time, accepted) samples."""

    k: float = 2.0
    window_s: float = 120.0
    samples: deque = field(default_factory=deque)

    def _trim(self, now: float) -> None:
        while self.samples and self.samples[0][0] < now - self.window_s:
            self.samples.popleft()

    def reject_probability(self, now: float) -> float:
        self._trim(now)
        requests = len(self.samples)
        accepts = sum(1 for _, accepted in self.samples if accepted)
        return max(0.0, (requests - self.k * accepts) / (requests + 1))

    def record(self, now: float, accepted: bool) -> None:
        self.samples.append((now, accepted))


class RetryController:
    """One client's retry state: its strategy, budget, throttle and random source."""

    def __init__(self, strategy: Strategy, rng: random.Random | None = None, clock: Callable[[], float] | None = None) -> None:
        import time

        self.strategy = strategy
        self.rng = rng or random.Random()
        self.clock = clock or time.monotonic
        self.budget = RetryBudget(strategy.budget_max_tokens, strategy.budget_token_ratio) if strategy.budget_max_tokens else None
        self.throttle = AdaptiveThrottle(strategy.throttle_k, strategy.throttle_window_s) if strategy.throttle_k else None

    def may_send(self) -> bool:
        """False: drop this attempt locally (adaptive throttling); it counts as a failure."""
        if self.throttle is None:
            return True
        if self.rng.random() < self.throttle.reject_probability(self.clock()):
            self.throttle.record(self.clock(), False)
            return False
        return True

    def record(self, success: bool, reached_server: bool = True) -> None:
        if self.budget is not None:
            self.budget.record(success)
        if self.throttle is not None and reached_server:
            self.throttle.record(self.clock(), success)

    def next_delay(self, retry: int, previous_s: float, mid_stream: bool) -> float | None:
        """Seconds before retry number ``retry``, or None to give up."""
        if retry >= self.strategy.max_attempts:
            return None
        if mid_stream and not self.strategy.retry_mid_stream:
            return None
        if self.budget is not None and not self.budget.allows_retry():
            return None
        return self.strategy.delay(retry, previous_s, self.rng)
