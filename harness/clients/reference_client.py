"""The reference client: a contract client whose retry behaviour is a pluggable strategy.

It speaks the Messages API itself, on httpx (HTTP/1.1; STREAMCHAOS_HTTP2=1 for h2 over TLS by ALPN,
=prior-knowledge for h2c), streams ``POST /v1/messages`` and parses the SSE with the project's
decoder, so every retry decision is its own and follows the strategy named by
STREAMCHAOS_STRATEGY (a name from :data:`harness.measure.strategies.STRATEGIES`, default ``sdk-default``),
with its durations multiplied by STREAMCHAOS_TIME_SCALE when set.

What it treats as retryable: connection errors, resets, incomplete bodies, HTTP 408/409/429/5xx
(``x-should-retry`` overrides; ``retry-after-ms`` then ``retry-after`` replace the backoff), an SSE
``error`` event (overloaded_error, api_error, rate_limit_error, timeout_error), a stream that ends
without ``message_stop`` (never a short answer), and the idle watchdog. How it retries comes from
the strategy, applied through :class:`harness.measure.strategies.RetryController` inside a tenacity loop:

* max attempts and the backoff delays; whether a failure after the response headers (mid-stream)
  may be retried at all; the gRPC A6 retry budget and SRE adaptive throttling, shared by every
  request of the process;
* ``idle_timeout_s``: a watchdog on the gap between bytes (and before the headers) that aborts the
  attempt;
* ``fresh_connection``: after a connection-level failure (transport error, GOAWAY, a timeout or the
  watchdog) the httpx client and its pool are retired and a new one is made, so the retry never
  goes out on a dead pooled connection; the old client is closed once nothing uses it;
* ``hedge_after_s``: with no first byte (response headers) after that long, a second copy goes out
  on a connection of its own; whichever finishes first wins and the other is cancelled;
* ``resume``: the retry re-sends the same conversation and the text already shown is not shown
  again: the new stream must start with it (it is skipped), then only the rest is shown; if the new
  answer does not start with it, the whole new answer is shown after a marker. (A prefilled
  assistant message would make this simulator, like the API, generate a different answer.)

Output: the contract's JSON line per turn (plus ``attempts``), or ``{"turn": i, "error": ...}`` and
exit 1. Retry decisions are logged to stderr. STREAMCHAOS_LIVE=stderr|<file> also writes the text
as it is shown, live, with a marker wherever a retry restarted it: what a user watching the answer
would have seen (duplicates included, for a strategy without resume).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, TextIO, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState

from harness.measure import strategies
from harness.clients import contract
from harness.clients.contract import read_plan
from simulator import sse

API_VERSION = "2023-06-01"
RETRYABLE_SSE_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
CHANNELS = ("thinking", "text")
T = TypeVar("T")


# -- failures -------------------------------------------------------------------------------------

class Failure(Exception):
    """One attempt's failure, carrying what the retry decision needs."""

    def __init__(self, message: str, *, retryable: bool = True, mid_stream: bool = False, connection_level: bool = False,
                 retry_after_s: float | None = None, reached_server: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.mid_stream = mid_stream  # the response headers had arrived: the request was committed
        self.connection_level = connection_level  # the connection itself is suspect
        self.retry_after_s = retry_after_s
        self.reached_server = reached_server
        self.attempt = 0
        self.gave_up = ""

    def line(self, max_attempts: int) -> str:
        where = ", mid-stream" if self.mid_stream else ""
        why = f"; {self.gave_up}" if self.gave_up else ""
        return f"{type(self).__name__}: {self} (attempt {self.attempt}/{max_attempts}{where}{why})"


class ConnectionFailure(Failure):
    """A transport error: refused, reset, closed mid-body, a protocol error, a timeout."""


class GoawayFailure(ConnectionFailure):
    """h2 GOAWAY ended the stream."""


class StreamResetFailure(Failure):
    """h2 RST_STREAM: the stream ended, the connection lives on."""


class IdleTimeout(ConnectionFailure):
    """The strategy's watchdog: no byte for ``idle_timeout_s``."""


class StatusFailure(Failure):
    def __init__(self, status: int, error_type: str, message: str, **kwargs: Any) -> None:
        super().__init__(f"HTTP {status} {error_type}: {message}".rstrip(": "), **kwargs)
        self.status = status
        self.error_type = error_type


class StreamErrorEvent(Failure):
    """An SSE ``error`` event after HTTP 200."""


class IncompleteStream(Failure):
    """The body ended without ``message_stop``: the answer is not whole."""


class MalformedStream(Failure):
    """An event the client cannot read (bad JSON, a missing field)."""


class ThrottledLocally(Failure):
    """Adaptive throttling dropped the attempt before it was sent."""


def describe(error: BaseException) -> str:
    """``Class: message``; an empty message is taken from the exception's causes (httpx's
    ReadError often says nothing itself)."""
    text, seen, cause = str(error), set(), error
    while not text and cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
        if cause is None or not isinstance(cause, Exception):  # a cancellation says nothing useful
            break
        text = str(cause)
        if text:
            text = f"{type(cause).__name__}: {text}"
    if not text and isinstance(error, httpx.TimeoutException):
        text = "the client's timeout (timeout_s) expired"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def transport_failure(error: BaseException, mid_stream: bool) -> Failure:
    text = describe(error)
    if "ConnectionTerminated" in text:
        return GoawayFailure(text, mid_stream=mid_stream, connection_level=True)
    if "StreamReset" in text:
        return StreamResetFailure(text, mid_stream=mid_stream)
    return ConnectionFailure(text, mid_stream=mid_stream, connection_level=True)


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``retry-after-ms`` first, then ``retry-after`` (seconds or an HTTP date); None if absent or bad."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            seconds = float(value) / 1000
            if seconds >= 0:
                return seconds
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError):
            return None
    return seconds if seconds >= 0 else None


def status_failure(status: int, headers: Mapping[str, str], body: bytes) -> StatusFailure:
    retryable = status in (408, 409, 429) or status >= 500
    should = (headers.get("x-should-retry") or "").lower()
    if should == "true":
        retryable = True
    elif should == "false":
        retryable = False
    error_type, message = "", body.decode("utf-8", "replace")[:200]
    try:
        error = json.loads(body).get("error", {})
        error_type, message = error.get("type", ""), error.get("message", "")
    except (ValueError, AttributeError):
        pass
    return StatusFailure(status, error_type, message, retryable=retryable, retry_after_s=retry_after_s(headers))


# -- the answer as it streams in ------------------------------------------------------------------

class Accumulator:
    """Builds the message from its events; calls ``on_delta(channel, piece)`` for text and thinking."""

    def __init__(self, on_delta: Callable[[str, str], None] | None = None) -> None:
        self.on_delta = on_delta or (lambda channel, piece: None)
        self.blocks: dict[int, dict[str, Any]] = {}
        self.json_parts: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.stopped = False  # message_stop seen
        self.events = 0

    def apply(self, event: sse.Event) -> None:
        self.events += 1
        if event.name == "ping":
            return
        try:
            data = event.json()
        except ValueError:
            raise MalformedStream(f"unreadable JSON in a {event.name!r} event: {event.data[:80]!r}", mid_stream=True) from None
        try:
            self._apply(event.name, data)
        except (KeyError, TypeError, AttributeError) as error:
            raise MalformedStream(f"a {event.name!r} event without {error}", mid_stream=True) from None

    def _apply(self, name: str, data: dict[str, Any]) -> None:
        if name == "message_start":
            usage = data["message"].get("usage") or {}
            self.input_tokens = usage.get("input_tokens", 0)
            self.output_tokens = usage.get("output_tokens", 0)
        elif name == "content_block_start":
            index, block = data["index"], dict(data["content_block"])
            if block["type"] == "tool_use":
                block["input"] = {}
                self.json_parts[index] = []
            self.blocks[index] = block
        elif name == "content_block_delta":
            block, delta = self.blocks[data["index"]], data["delta"]
            kind = delta["type"]
            if kind == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
                self.on_delta("text", delta["text"])
            elif kind == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
                self.on_delta("thinking", delta["thinking"])
            elif kind == "signature_delta":
                block["signature"] = delta["signature"]
            elif kind == "input_json_delta":
                self.json_parts[data["index"]].append(delta["partial_json"])
        elif name == "content_block_stop":
            index = data["index"]
            if index in self.json_parts:
                raw = "".join(self.json_parts.pop(index))
                try:
                    self.blocks[index]["input"] = json.loads(raw) if raw else {}
                except ValueError:
                    raise MalformedStream(f"tool_use input is not JSON: {raw[:80]!r}", mid_stream=True) from None
        elif name == "message_delta":
            self.stop_reason = data["delta"].get("stop_reason")
            usage = data.get("usage") or {}
            self.output_tokens = usage.get("output_tokens", self.output_tokens)
            if usage.get("input_tokens") is not None:
                self.input_tokens = usage["input_tokens"]
        elif name == "message_stop":
            self.stopped = True
        elif name == "error":
            error = data.get("error") or {}
            kind = error.get("type", "error")
            raise StreamErrorEvent(f"SSE error event {kind}: {error.get('message', '')}", retryable=kind in RETRYABLE_SSE_ERRORS, mid_stream=True)

    @classmethod
    def from_message(cls, message: Mapping[str, Any], on_delta: Callable[[str, str], None] | None = None) -> "Accumulator":
        """A non-streaming answer: the Message object, whole."""
        acc = cls(on_delta)
        try:
            for index, block in enumerate(message["content"]):
                acc.blocks[index] = dict(block)
            acc.stop_reason = message.get("stop_reason")
            usage = message.get("usage") or {}
            acc.input_tokens, acc.output_tokens = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        except (KeyError, TypeError, AttributeError) as error:
            raise MalformedStream(f"a message without {error}") from None
        for block in acc.content():
            for channel in CHANNELS:
                if block["type"] == channel and block.get(channel):
                    acc.on_delta(channel, block[channel])
        acc.stopped = True
        return acc

    def content(self) -> list[dict[str, Any]]:
        return [self.blocks[i] for i in sorted(self.blocks)]

    def channel(self, name: str) -> str:
        return "".join(b.get(name, "") for b in self.content() if b["type"] == name)

    def assistant_content(self) -> list[dict[str, Any]]:
        """The blocks as the next request's assistant message carries them."""
        out = []
        for block in self.content():
            if block["type"] == "thinking":
                out.append({"type": "thinking", "thinking": block.get("thinking", ""), "signature": block.get("signature", "")})
            elif block["type"] == "text":
                out.append({"type": "text", "text": block.get("text", "")})
            elif block["type"] == "tool_use":
                out.append({"type": "tool_use", "id": block["id"], "name": block["name"], "input": block.get("input", {})})
        return out

    def tool_uses(self) -> list[dict[str, Any]]:
        return [{"id": b["id"], "name": b["name"], "input": b.get("input", {})} for b in self.content() if b["type"] == "tool_use"]


# -- what the user was shown ----------------------------------------------------------------------

class Transcript:
    """What one logical request's answer has shown so far, per channel (thinking, text), across
    attempts and hedged copies. One copy at a time owns the display (the first to deliver a delta in
    an attempt); the winner's whole answer is reconciled at the end (:meth:`settle`), so what was
    shown always ends equal to the answer printed."""

    RESTART = "\n[streamchaos: the stream failed; the answer starts again]\n"
    DIFFERS = "\n[streamchaos: the retried answer differs from what was shown; here it is whole]\n"

    def __init__(self, live: Callable[[str], None] | None = None) -> None:
        self.shown = {channel: "" for channel in CHANNELS}
        self.live = live or (lambda text: None)
        self.owner: Feed | None = None
        self.attempts = 0
        self.restarts = 0  # times the display started over (no resume, or a mismatch)
        self.mismatches = 0
        self.resumed_chars = 0  # characters a resumed attempt re-received and did not show again

    def begin_attempt(self, resume: bool) -> None:
        self.attempts += 1
        self.owner = None
        if self.attempts > 1 and not resume and any(self.shown.values()):
            if self.shown["text"]:
                self.restarts += 1
                self._emit(self.RESTART)
            self.shown = {channel: "" for channel in CHANNELS}

    def feed(self) -> "Feed":
        return Feed(self, dict(self.shown))

    def offer(self, feed: "Feed", channel: str, full: str) -> None:
        if self.owner is None:
            self.owner = feed
        if self.owner is feed:
            self._advance(channel, full)

    def _advance(self, channel: str, full: str) -> None:
        shown = self.shown[channel]
        if len(full) <= len(shown):
            if shown.startswith(full):
                return  # the new stream is re-producing what was shown: skip it
        elif full.startswith(shown):
            if channel == "text":
                self._emit(full[len(shown):])
            self.shown[channel] = full
            return
        self._differs(channel, full)

    def _differs(self, channel: str, full: str) -> None:
        self.mismatches += 1
        if channel == "text":  # the live display shows the text only
            self.restarts += 1
            self._emit(self.DIFFERS + full)
        self.shown[channel] = full

    def settle(self, acc: Accumulator, feed: "Feed | None") -> None:
        """The winning copy's answer: show whatever of it is not shown yet; count what a resume skipped."""
        for channel in CHANNELS:
            full = acc.channel(channel)
            if self.shown[channel] != full:
                self._advance(channel, full)
            if self.shown[channel] != full:  # shown is longer than the final answer
                self._differs(channel, full)
            kept = feed.kept.get(channel, "") if feed is not None else ""
            if kept and full.startswith(kept):
                self.resumed_chars += len(kept)

    def _emit(self, text: str) -> None:
        if text:
            self.live(text)


@dataclass
class Feed:
    """One copy's view: its own text so far, offered to the transcript as it grows."""

    transcript: Transcript
    kept: dict[str, str]  # what had been shown when this copy started
    seen: dict[str, str] = field(default_factory=lambda: {channel: "" for channel in CHANNELS})

    def __call__(self, channel: str, piece: str) -> None:
        self.seen[channel] += piece
        self.transcript.offer(self, channel, self.seen[channel])


# -- connections ----------------------------------------------------------------------------------

class Pool:
    """The current httpx client, and the retired ones still in use (closed when the last user leaves)."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self.factory = factory
        self.client = factory()
        self.users: dict[int, int] = {id(self.client): 0}
        self.retired: dict[int, httpx.AsyncClient] = {}
        self.renewals = 0

    @asynccontextmanager
    async def use(self) -> AsyncIterator[httpx.AsyncClient]:
        client = self.client
        self.users[id(client)] = self.users.get(id(client), 0) + 1
        try:
            yield client
        finally:
            self.users[id(client)] -= 1
            if id(client) in self.retired and self.users[id(client)] == 0:
                del self.retired[id(client)], self.users[id(client)]
                await client.aclose()

    async def renew(self, failed: httpx.AsyncClient | None = None) -> bool:
        """A new client (new connections) from now on; False if ``failed`` was already replaced."""
        if failed is not None and failed is not self.client:
            return False
        old, self.client = self.client, self.factory()
        self.users[id(self.client)] = 0
        self.renewals += 1
        if self.users.get(id(old), 0) == 0:
            self.users.pop(id(old), None)
            await old.aclose()
        else:
            self.retired[id(old)] = old
        return True

    async def aclose(self) -> None:
        for client in [self.client, *self.retired.values()]:
            await client.aclose()
        self.retired.clear()


def http_client_factory(timeout_s: float, http2_mode: str = "", ca_file: str | None = None,
                        socket_options: list[tuple[int, int, int]] | None = None, pool_idle_s: float | None = None) -> Callable[[], httpx.AsyncClient]:
    """httpx clients as the Python SDK configures them: one timeout for connect, read, write and
    pool (the plan's ``timeout_s``, default 600 s), the SDK's connection limits; ``socket_options``
    (the strategy's keepalive / TCP_USER_TIMEOUT) set on every connection's socket; ``pool_idle_s``
    how long an idle connection stays pooled (httpx's default, 5 s, when None)."""

    def make() -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        kwargs: dict[str, Any] = {}
        if http2_mode == "1":
            kwargs["http2"] = True
        elif http2_mode == "prior-knowledge":
            kwargs.update(http2=True, http1=False)
        if socket_options or pool_idle_s is not None:
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100, **({"keepalive_expiry": pool_idle_s} if pool_idle_s is not None else {}))
            transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, socket_options=socket_options or None, **kwargs)
            return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), trust_env=False, transport=transport)
        return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), verify=verify, trust_env=False,
                                 limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100), **kwargs)

    return make


async def guarded(awaitable: Awaitable[T], idle_s: float | None, mid_stream: bool, what: str) -> T:
    """``awaitable``, aborted by the idle watchdog after ``idle_s`` without progress."""
    if idle_s is None:
        return await awaitable
    watchdog = asyncio.timeout(idle_s)
    try:
        async with watchdog:
            return await awaitable
    except TimeoutError:
        if watchdog.expired():
            raise IdleTimeout(f"no byte for {idle_s:g} s {what}", mid_stream=mid_stream, connection_level=True) from None
        raise


# -- retry decisions --------------------------------------------------------------------------------

class Decision:
    """The tenacity callables for one logical request, all answering from one RetryController:
    ``retry`` decides (and explains a refusal), ``wait`` gives its delay, ``stop`` ends the loop."""

    def __init__(self, controller: strategies.RetryController, log: Callable[[str], None] = lambda line: None) -> None:
        self.controller = controller
        self.log = log
        self.previous_s = 0.0
        self.next_s: float | None = None

    def retry(self, state: RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        error = outcome.exception()
        if not isinstance(error, Failure):
            return False
        error.attempt = state.attempt_number
        if not error.retryable:
            error.gave_up = "not retryable"
            return False
        strategy = self.controller.strategy
        retry = state.attempt_number
        delay = self.controller.next_delay(retry, self.previous_s, error.mid_stream)
        if delay is None:
            if retry >= strategy.max_attempts:
                error.gave_up = f"strategy {strategy.name}: {strategy.max_attempts} attempt(s) used"
            elif error.mid_stream and not strategy.retry_mid_stream:
                error.gave_up = f"strategy {strategy.name}: never retries after the stream started"
            else:
                error.gave_up = f"strategy {strategy.name}: retry budget exhausted"
        elif error.retry_after_s is not None:
            delay = error.retry_after_s  # the server said when
        self.next_s = delay
        self.log(f"attempt {retry}/{strategy.max_attempts} failed: {type(error).__name__}: {error}"
                 + (" (mid-stream)" if error.mid_stream else "")
                 + (f"; {error.gave_up}" if delay is None else f"; retrying in {delay:.3f} s"))
        return True

    def wait(self, state: RetryCallState) -> float:
        if self.next_s is None:
            return 0.0
        self.previous_s = self.next_s
        return self.next_s

    def stop(self, state: RetryCallState) -> bool:
        return self.next_s is None


@dataclass
class Answer:
    acc: Accumulator
    transcript: Transcript

    def line(self, turn: int, started: float) -> dict[str, Any]:
        return {
            "turn": turn,
            "stop_reason": self.acc.stop_reason,
            "text": self.transcript.shown["text"],
            "thinking": self.acc.channel("thinking"),
            "tool_uses": self.acc.tool_uses(),
            "usage": {"input_tokens": self.acc.input_tokens, "output_tokens": self.acc.output_tokens},
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
            "attempts": self.transcript.attempts,
            "resumed_chars": self.transcript.resumed_chars,
        }


class ReferenceClient:
    """One process's client: a strategy, its RetryController (budget and throttle shared by every
    request), and a pool of connections."""

    api = "messages"  # or "chat": Chat Completions (harness/clients/reference_chat.py), from the plan's api

    def __init__(self, strategy: strategies.Strategy, base_url: str, api_key: str, factory: Callable[[], httpx.AsyncClient],
                 live: Callable[[str], None] | None = None, log: Callable[[str], None] | None = None,
                 controller: strategies.RetryController | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.strategy = strategy
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.factory = factory
        self.pool = Pool(factory)
        self.controller = controller or strategies.RetryController(strategy)
        self.live = live
        self.log = log or (lambda line: None)
        self.sleep = sleep

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def ask(self, body: dict[str, Any], label: str = "") -> Answer:
        """One logical request, retried as the strategy says."""
        transcript = Transcript(self.live)
        decision = Decision(self.controller, lambda line: self.log(f"{label}{line}"))
        retrying = AsyncRetrying(retry=decision.retry, wait=decision.wait, stop=decision.stop, sleep=self.sleep, reraise=True)
        acc: Accumulator | None = None
        async for attempt in retrying:
            with attempt:
                transcript.begin_attempt(resume=self.strategy.resume)
                acc = await self.attempt(body, attempt.retry_state.attempt_number, transcript)
        assert acc is not None
        return Answer(acc, transcript)

    async def attempt(self, body: dict[str, Any], number: int, transcript: Transcript) -> Accumulator:
        if not self.controller.may_send():
            self.controller.record(False, reached_server=False)
            raise ThrottledLocally("adaptive throttling dropped the attempt locally", reached_server=False)
        try:
            if self.strategy.hedge_after_s is not None:
                acc, feed = await self._hedged(body, number, transcript)
            else:
                feed = transcript.feed()
                acc = await self._copy(self.pool, body, number, feed)
        except Failure as failure:
            # a non-retryable answer (a 400, say) still shows the server accepting requests
            self.controller.record(not failure.retryable, reached_server=failure.reached_server)
            raise
        self.controller.record(True)
        transcript.settle(acc, feed)
        return acc

    async def _copy(self, pool: Pool, body: dict[str, Any], number: int, feed: Feed, first_byte: asyncio.Event | None = None) -> Accumulator:
        async with pool.use() as client:
            try:
                return await self._exchange(client, body, number, feed, first_byte)
            except Failure as failure:
                failed, error = client, failure
        if error.connection_level and self.strategy.fresh_connection and await pool.renew(failed):
            self.log(f"fresh connection: the pool is replaced after {type(error).__name__}")
        raise error

    async def _hedged(self, body: dict[str, Any], number: int, transcript: Transcript) -> tuple[Accumulator, Feed]:
        first_byte = asyncio.Event()
        feeds = {"primary": transcript.feed(), "hedge": transcript.feed()}
        primary = asyncio.create_task(self._copy(self.pool, body, number, feeds["primary"], first_byte))
        waiter = asyncio.create_task(first_byte.wait())
        try:
            done, _ = await asyncio.wait({primary, waiter}, timeout=self.strategy.hedge_after_s, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            primary.cancel()
            raise
        finally:
            waiter.cancel()
        if done:
            return await primary, feeds["primary"]
        self.log(f"no first byte after {self.strategy.hedge_after_s:g} s: hedging on a fresh connection")
        hedge_pool = Pool(self.factory)
        primary_client = self.pool.client
        secondary = asyncio.create_task(self._copy(hedge_pool, body, number, feeds["hedge"]))
        names = {primary: "primary", secondary: "hedge"}
        pending: set[asyncio.Task] = {primary, secondary}
        failures: list[BaseException] = []
        winner: asyncio.Task | None = None
        try:
            while pending and winner is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        winner = task
                        break
                    failures.append(task.exception())
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await hedge_pool.aclose()
        if winner is None:
            raise failures[-1]
        self.log(f"the {names[winner]} copy won")
        if winner is secondary:
            await self.pool.renew(primary_client)  # the primary's connection gave no byte: do not reuse it
        return winner.result(), feeds[names[winner]]

    async def _exchange(self, client: httpx.AsyncClient, body: dict[str, Any], number: int, feed: Feed,
                        first_byte: asyncio.Event | None) -> Accumulator:
        idle = self.strategy.idle_timeout_s
        headers = {
            "x-api-key": self.api_key, "anthropic-version": API_VERSION, "content-type": "application/json",
            "accept": "text/event-stream" if body.get("stream") else "application/json",
            "x-stainless-retry-count": str(number - 1), "user-agent": f"streamchaos-reference/{self.strategy.name}",
        }
        if self.api == "chat":
            headers["authorization"] = f"Bearer {self.api_key}"
        path, accumulator = ("/v1/messages", Accumulator) if self.api != "chat" else _chat_wire()
        request = client.build_request("POST", f"{self.base_url}{path}", content=json.dumps(body).encode(), headers=headers)
        response: httpx.Response | None = None
        acc: Accumulator | None = None
        streaming = bool(body.get("stream"))  # a non-streaming body is read whole, like the SDKs, inside the retry
        try:
            response = await guarded(client.send(request, stream=True), idle, False, "before the response headers")
            if first_byte is not None:
                first_byte.set()
            if response.status_code != 200:
                data = await guarded(response.aread(), idle, False, "in the error body")
                raise status_failure(response.status_code, response.headers, data)
            acc = accumulator(feed)
            decoder = sse.Decoder()
            data = bytearray()
            chunks = response.aiter_bytes()
            while True:
                try:
                    chunk = await guarded(anext(chunks), idle, streaming, "between bytes of the body")
                except StopAsyncIteration:
                    break
                if not streaming:
                    data += chunk
                    continue
                for event in decoder.feed(chunk):
                    acc.apply(event)
            if not streaming:
                try:
                    message = json.loads(bytes(data))
                except ValueError:
                    raise MalformedStream(f"the body is not JSON: {bytes(data[:80])!r}") from None
                return accumulator.from_message(message, feed)
            if not acc.stopped:
                raise IncompleteStream(f"the stream ended without message_stop after {acc.events} events", mid_stream=True)
            return acc
        except Failure as failure:
            if acc is not None and acc.stopped:
                return acc  # whatever happened after message_stop cannot spoil the answer
            raise failure
        except asyncio.CancelledError:
            raise
        except Exception as error:  # httpx, h2, ssl and socket errors alike
            if acc is not None and acc.stopped:
                return acc
            raise transport_failure(error, mid_stream=streaming and response is not None and response.status_code == 200) from error
        finally:
            if response is not None:
                try:
                    await response.aclose()
                except Exception:
                    pass


# -- the contract -----------------------------------------------------------------------------------

def request_body(plan: Mapping[str, Any], turn: Mapping[str, Any], messages: list) -> dict[str, Any]:
    if plan.get("api") == "chat":
        from harness.clients import reference_chat

        return reference_chat.request_body(plan, turn, messages)
    return contract.request_body(plan, turn, messages, stream=bool(turn.get("stream", True)))


def _chat_wire() -> tuple[str, type]:
    from harness.clients.reference_chat import ChatAccumulator

    return "/v1/chat/completions", ChatAccumulator


def strategy_from_env(environ: Mapping[str, str]) -> strategies.Strategy:
    strategy = strategies.get(environ.get("STREAMCHAOS_STRATEGY") or "sdk-default")
    scale = environ.get("STREAMCHAOS_TIME_SCALE")
    if scale:
        strategy = strategies.scaled(strategy, float(scale))
    # Kernel timers are real time and never scaled; these set them directly (tests with short NATs).
    if environ.get("STREAMCHAOS_KEEPALIVE_IDLE_S"):
        idle = int(environ["STREAMCHAOS_KEEPALIVE_IDLE_S"])
        strategy = replace(strategy, keepalive_idle_s=idle, keepalive_interval_s=idle)
    if environ.get("STREAMCHAOS_USER_TIMEOUT_S"):
        strategy = replace(strategy, user_timeout_s=float(environ["STREAMCHAOS_USER_TIMEOUT_S"]))
    return strategy


def live_sink(target: str | None) -> tuple[Callable[[str], None] | None, TextIO | None]:
    if not target:
        return None, None
    handle = sys.stderr if target == "stderr" else open(target, "a", encoding="utf-8")

    def write(text: str) -> None:
        handle.write(text)
        handle.flush()

    return write, (None if handle is sys.stderr else handle)


async def converse(plan: Mapping[str, Any], environ: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    strategy = strategy_from_env(environ)
    timeout = float(environ.get("STREAMCHAOS_TIMEOUT_S") or plan.get("timeout_s") or 600.0)
    factory = http_client_factory(timeout, environ.get("STREAMCHAOS_HTTP2", ""), environ.get("SSL_CERT_FILE") or None,
                                  strategies.socket_options(strategy), strategy.pool_idle_s)
    live, live_file = live_sink(environ.get("STREAMCHAOS_LIVE"))

    def log(line: str) -> None:
        print(f"[ref {strategy.name}] {line}", file=sys.stderr, flush=True)

    client = ReferenceClient(strategy, environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com"), environ.get("ANTHROPIC_API_KEY", ""),
                             factory, live=live, log=log)
    if plan.get("api") not in (None, "messages", "chat"):
        raise SystemExit(f"the reference client speaks the messages and chat APIs, not {plan.get('api')!r}")
    client.api = plan.get("api") or "messages"
    messages: list = []
    pending_tool_results: list = []
    try:
        for index, turn in enumerate(plan["turns"]):
            await asyncio.sleep(float(turn.get("idle_before_s", 0)))
            conversations = contract.turn_conversations(turn, messages, pending_tool_results)
            parts = len(conversations)
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(client.ask(request_body(plan, turn, conversation), f"turn {index}{f' part {p}' if parts > 1 else ''}: ")
                  for p, conversation in enumerate(conversations)),
                return_exceptions=True,
            )
            for part, outcome in enumerate(outcomes):
                if isinstance(outcome, Failure):
                    line = {"turn": index, "error": outcome.line(strategy.max_attempts)}
                elif isinstance(outcome, BaseException):
                    line = {"turn": index, "error": f"{type(outcome).__name__}: {outcome}"}
                else:
                    line = outcome.line(index, started)
                if parts > 1:
                    line["part"] = part
                print(json.dumps(line), file=out, flush=True)
            if any(isinstance(outcome, BaseException) for outcome in outcomes):
                return 1
            answer: Answer = outcomes[0]
            messages = conversations[0] + [{"role": "assistant", "content": answer.acc.assistant_content()}]
            pending_tool_results = [{"type": "tool_result", "tool_use_id": use["id"], "content": "ok"} for use in answer.acc.tool_uses()]
    finally:
        await client.aclose()
        if live_file is not None:
            live_file.close()
    return 0


def main() -> int:
    plan = read_plan()
    return asyncio.run(converse(plan, os.environ))


if __name__ == "__main__":
    sys.exit(main())
