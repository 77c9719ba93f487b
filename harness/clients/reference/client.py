"""The reference client itself: one process's strategy, controller and pool, asking one logical
request at a time (retried, hedged, resumed as the strategy says)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying

from harness.clients import script as client_script
from harness.clients.reference import chat
from harness.clients.reference.accumulator import Accumulator
from harness.clients.reference.failures import Failure, IncompleteStream, MalformedStream, ThrottledLocally, status_failure, transport_failure
from harness.clients.reference.pool import Pool
from harness.clients.reference.retrying import Decision
from harness.clients.reference.transcript import Feed, Transcript
from harness.clients.reference.watchdog import guarded
from harness.measure import strategies
from simulator import sse

API_VERSION = "2023-06-01"


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

    api = "messages"  # or "chat": Chat Completions (chat.py), from the script's api

    def __init__(
        self,
        strategy: strategies.Strategy,
        base_url: str,
        api_key: str,
        factory: Callable[[], httpx.AsyncClient],
        live: Callable[[str], None] | None = None,
        log: Callable[[str], None] | None = None,
        controller: strategies.RetryController | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
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
        retrying = AsyncRetrying(retry=decision.strategy_decides, wait=decision.wait, stop=decision.stop, sleep=self.sleep, reraise=True)
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
                    error = task.exception()
                    if error is None:
                        winner = task
                        break
                    failures.append(error)
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

    async def _exchange(
        self, client: httpx.AsyncClient, body: dict[str, Any], number: int, feed: Feed, first_byte: asyncio.Event | None
    ) -> Accumulator:
        idle = self.strategy.idle_timeout_s
        headers = {
            "x-api-key": self.api_key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
            "accept": "text/event-stream" if body.get("stream") else "application/json",
            "x-stainless-retry-count": str(number - 1),
            "user-agent": f"streamchaos-reference/{self.strategy.name}",
        }
        if self.api == "chat":
            headers["authorization"] = f"Bearer {self.api_key}"
        path, accumulator = ("/v1/messages", Accumulator) if self.api != "chat" else ("/v1/chat/completions", chat.ChatAccumulator)
        request = client.build_request("POST", f"{self.base_url}{path}", content=json.dumps(body).encode(), headers=headers)
        response: httpx.Response | None = None
        acc: Accumulator | None = None
        streaming = bool(body.get("stream"))  # a non-streaming body is read whole, like the SDKs, inside the retry
        try:
            response = await guarded(client.send(request, stream=True), idle, False, "before the response headers")
            if first_byte is not None:
                first_byte.set()
            if response.status_code != 200:
                error_body = await guarded(response.aread(), idle, False, "in the error body")
                raise status_failure(response.status_code, response.headers, error_body)
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


def request_body(script: Mapping[str, Any], turn: Mapping[str, Any], messages: list) -> dict[str, Any]:
    """A turn's request on the script's API (Messages, or Chat Completions)."""
    if script.get("api") == "chat":
        return chat.request_body(script, turn, messages)
    return client_script.request_body(script, turn, messages, stream=bool(turn.get("stream", True)))
