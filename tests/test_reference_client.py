"""The reference client and its retry strategies: decisions without sockets, then on the wire.

Unit tests drive the strategy objects and the client's tenacity loop with fake attempts, a fake
sleep and seeded randomness. Wire tests run the client as the harness does (a process, the
contract's environment) against a simulator process and read what happened from its journal.
Strategy durations are scaled with STREAMCHAOS_TIME_SCALE so nothing waits long.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import cli
from harness.clients import registry
from harness.clients.adapter import Launch
from harness.clients.launch import contract_env, run_client
from harness.clients.reference.accumulator import Accumulator
from harness.clients.reference.client import ReferenceClient
from harness.clients.reference.failures import (
    ConnectionFailure,
    IncompleteStream,
    MalformedStream,
    StatusFailure,
    StreamErrorEvent,
    retry_after_s,
    status_failure,
)
from harness.clients.reference.pool import http_client_factory
from harness.clients.reference.transcript import Transcript
from harness.drive.simulator_process import SimulatorProcess
from harness.measure import strategies
from harness.present import compare
from simulator import sse

CLIENT = (sys.executable, "-m", "harness.clients.reference")
_keys = itertools.count(1)


# -- strategies: delays, budget, throttle -----------------------------------------------------------


def test_delays_per_backoff():
    rng = random.Random(1)
    get = strategies.get
    assert [get("none").delay(n, 0, rng) for n in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert [get("fixed").delay(n, 0, rng) for n in (1, 2, 3)] == [1.0, 1.0, 1.0]
    assert [get("exponential").delay(n, 0, rng) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for n in range(1, 8):
        ceiling = min(0.5 * 2 ** (n - 1), 8.0)
        assert 0.75 * ceiling <= get("sdk-default").delay(n, 0, rng) <= ceiling  # the SDKs' own formula
    half = strategies.scaled(get("exponential"), 0.1)
    assert [round(half.delay(n, 0, rng), 9) for n in (1, 2, 5, 6)] == [0.05, 0.1, 0.8, 0.8]


def test_controller_gives_up_at_max_attempts_and_mid_stream_as_the_strategy_says():
    sdk = strategies.RetryController(strategies.get("sdk-default"), random.Random(2))
    assert sdk.next_delay(1, 0, mid_stream=False) is not None
    assert sdk.next_delay(2, 0, mid_stream=False) is not None
    assert sdk.next_delay(3, 0, mid_stream=False) is None  # 3 attempts, the first included
    assert sdk.next_delay(1, 0, mid_stream=True) is None  # the SDKs never retry a started stream
    jitter = strategies.RetryController(strategies.get("full-jitter"), random.Random(2))
    assert jitter.next_delay(1, 0, mid_stream=True) is not None
    assert strategies.RetryController(strategies.get("none")).next_delay(1, 0, mid_stream=False) is None


def test_retry_budget_stops_retries_after_failures_and_successes_refill_it():
    controller = strategies.RetryController(strategies.get("retry-budget"), random.Random(3))
    allowed = []
    for _ in range(7):
        controller.record(False)
        allowed.append(controller.next_delay(1, 0, mid_stream=False) is not None)
    assert allowed == [True, True, True, True, False, False, False]  # 10 tokens; retries while tokens > 5
    for _ in range(10):  # token_ratio 0.1: ten successes give one token back
        controller.record(True)
    assert controller.budget.tokens == pytest.approx(4.0)
    for _ in range(20):
        controller.record(True)
    assert controller.next_delay(1, 0, mid_stream=False) is not None


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_adaptive_throttle_rejects_with_the_sre_probability():
    now = [1000.0]
    samples = [(999.0, i < 20) for i in range(100)]  # 100 requests, 20 accepted
    p = (100 - 2 * 20) / (100 + 1)
    for draw, rejected in ((p - 1e-6, True), (p + 1e-6, False)):
        controller = strategies.RetryController(strategies.get("adaptive-throttle"), FixedRandom(draw), clock=lambda: now[0])
        controller.throttle.samples.extend(samples)
        assert controller.throttle.reject_probability(now[0]) == pytest.approx(p)
        assert controller.may_send() is (not rejected)
    # empirically: the local rejection rate is p within 4 binomial standard deviations
    controller = strategies.RetryController(strategies.get("adaptive-throttle"), random.Random(4), clock=lambda: now[0])
    controller.throttle.samples.extend(samples)
    draws, rejections = 4000, 0
    for _ in range(draws):
        if not controller.may_send():
            rejections += 1
            controller.throttle.samples.pop()  # keep the window as it was: one draw at a time
    assert abs(rejections / draws - p) <= 4 * math.sqrt(p * (1 - p) / draws)
    # no failures, no rejections; samples older than the window no longer count
    fresh = strategies.RetryController(strategies.get("adaptive-throttle"), random.Random(5), clock=lambda: now[0])
    fresh.throttle.samples.extend((0.0, False) for _ in range(50))
    assert fresh.throttle.reject_probability(now[0]) == 0.0


@settings(max_examples=300, deadline=None)
@given(retry=st.integers(1, 12), base=st.floats(0.001, 5), cap=st.floats(0.001, 60), previous=st.floats(0, 100), seed=st.integers(0, 2**32))
def test_jittered_delays_stay_in_their_bounds(retry, base, cap, previous, seed):
    rng = random.Random(seed)
    ceiling = min(cap, base * 2 ** (retry - 1))
    full = strategies.Strategy("f", backoff="full_jitter", base_s=base, cap_s=cap).delay(retry, previous, rng)
    equal = strategies.Strategy("e", backoff="equal_jitter", base_s=base, cap_s=cap).delay(retry, previous, rng)
    assert 0 <= full <= ceiling
    assert ceiling / 2 - 1e-12 <= equal <= ceiling + 1e-12
    if base <= cap:
        decorrelated = strategies.Strategy("d", backoff="decorrelated_jitter", base_s=base, cap_s=cap).delay(retry, previous, rng)
        assert base - 1e-12 <= decorrelated <= cap


# -- the client's pieces, no sockets -----------------------------------------------------------------


def stream_events(text_pieces, thinking=(), tool=None, stop=True) -> list[sse.Event]:
    raw = [sse.encode("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}})]
    index = 0
    if thinking:
        raw.append(sse.encode("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}))
        raw += [sse.encode("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": p}}) for p in thinking]
        raw.append(sse.encode("content_block_delta", {"index": index, "delta": {"type": "signature_delta", "signature": "sig"}}))
        raw.append(sse.encode("content_block_stop", {"index": index}))
        index += 1
    raw.append(sse.encode("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}))
    raw.append(sse.encode("ping", {"type": "ping"}))
    raw += [sse.encode("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": p}}) for p in text_pieces]
    raw.append(sse.encode("content_block_stop", {"index": index}))
    if tool:
        index += 1
        raw.append(
            sse.encode("content_block_start", {"index": index, "content_block": {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}}})
        )
        raw += [
            sse.encode("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": p}})
            for p in ('{"comm', 'and": "ls"}')
        ]
        raw.append(sse.encode("content_block_stop", {"index": index}))
    raw.append(sse.encode("message_delta", {"delta": {"stop_reason": "tool_use" if tool else "end_turn"}, "usage": {"output_tokens": 12}}))
    if stop:
        raw.append(sse.encode("message_stop", {"type": "message_stop"}))
    return sse.Decoder().feed(b"".join(raw))


def test_accumulator_builds_the_message_and_the_next_request_s_assistant_content():
    seen = []
    acc = Accumulator(lambda channel, piece: seen.append((channel, piece)))
    for event in stream_events(["Hello", " world"], thinking=["hm", "m"], tool="Bash"):
        acc.apply(event)
    assert acc.stopped and acc.stop_reason == "tool_use"
    assert acc.channel("text") == "Hello world" and acc.channel("thinking") == "hmm"
    assert acc.tool_uses() == [{"id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]
    assert (acc.input_tokens, acc.output_tokens) == (7, 12)
    assert acc.assistant_content() == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Hello world"},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
    ]
    assert seen == [("thinking", "hm"), ("thinking", "m"), ("text", "Hello"), ("text", " world")]


def test_accumulator_failures_are_typed():
    acc = Accumulator()
    with pytest.raises(StreamErrorEvent) as overloaded:
        acc.apply(sse.Event("error", json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})))
    assert overloaded.value.retryable and overloaded.value.mid_stream
    with pytest.raises(StreamErrorEvent) as invalid:
        acc.apply(sse.Event("error", json.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": "no"}})))
    assert not invalid.value.retryable
    with pytest.raises(MalformedStream):
        acc.apply(sse.Event("content_block_delta", '{"index": 0, "delta": {"type": "text_de'))


def test_retry_after_and_x_should_retry():
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None
    assert status_failure(529, {}, b"").retryable and status_failure(408, {}, b"").retryable
    assert not status_failure(400, {}, b"").retryable
    assert not status_failure(500, {"x-should-retry": "false"}, b"").retryable
    assert status_failure(400, {"x-should-retry": "true"}, b"").retryable
    failure = status_failure(429, {"retry-after-ms": "200"}, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}')
    assert failure.retry_after_s == 0.2 and failure.error_type == "rate_limit_error" and "slow down" in str(failure)


def test_transcript_resume_skips_the_kept_prefix_and_falls_back_on_a_different_answer():
    shown: list[str] = []
    transcript = Transcript(shown.append)
    transcript.begin_attempt(resume=True)
    first = transcript.feed()
    for piece in ("The river ", "bends "):
        first("text", piece)
    transcript.begin_attempt(resume=True)  # the stream broke: the retry re-sends the conversation
    second = transcript.feed()
    acc = Accumulator(second)
    for event in stream_events(["The river ", "bends ", "slowly."]):
        acc.apply(event)
    transcript.settle(acc, second)
    assert "".join(shown) == "The river bends slowly."  # nothing shown twice, nothing lost
    assert transcript.resumed_chars == len("The river bends ") and transcript.mismatches == 0

    shown.clear()
    transcript = Transcript(shown.append)
    transcript.begin_attempt(resume=True)
    transcript.feed()("text", "The river bends ")
    transcript.begin_attempt(resume=True)
    other = transcript.feed()
    acc = Accumulator(other)
    for event in stream_events(["A lake ", "is still."]):
        acc.apply(event)
    transcript.settle(acc, other)
    assert transcript.mismatches == 1 and transcript.shown["text"] == "A lake is still."
    assert "".join(shown).endswith(Transcript.DIFFERS + "A lake is still.")


def test_transcript_without_resume_starts_the_answer_again():
    shown: list[str] = []
    transcript = Transcript(shown.append)
    transcript.begin_attempt(resume=False)
    transcript.feed()("text", "The river ")
    transcript.begin_attempt(resume=False)
    feed = transcript.feed()
    acc = Accumulator(feed)
    for event in stream_events(["The river ", "bends."]):
        acc.apply(event)
    transcript.settle(acc, feed)
    assert "".join(shown) == "The river " + Transcript.RESTART + "The river bends."
    assert transcript.shown["text"] == "The river bends." and transcript.restarts == 1


def whole_answer() -> Accumulator:
    acc = Accumulator()
    for event in stream_events(["ok"]):
        acc.apply(event)
    return acc


def loop(
    strategy: str, outcomes: list, scale: float = 1.0, controller_rng: int = 6
) -> tuple[list[float], list[int], BaseException | None, ReferenceClient]:
    """Run ReferenceClient.ask with ``attempt`` replaced by the given outcomes, in order; the sleeps
    it asked for, the attempt numbers it made, and what it raised."""
    chosen = strategies.scaled(strategies.get(strategy), scale)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def scenario() -> tuple[list[int], BaseException | None, ReferenceClient]:
        client = ReferenceClient(
            chosen,
            "http://127.0.0.1:9",
            "k",
            http_client_factory(5.0),
            controller=strategies.RetryController(chosen, random.Random(controller_rng)),
            sleep=sleep,
        )
        numbers: list[int] = []
        pending = iter(outcomes)

        async def attempt(body, number, transcript):
            numbers.append(number)
            outcome = next(pending)
            if isinstance(outcome, BaseException):
                client.controller.record(not getattr(outcome, "retryable", False))
                raise outcome
            return outcome

        client.attempt = attempt
        try:
            await client.ask({"stream": True})
            error = None
        except BaseException as raised:
            error = raised
        await client.aclose()
        return numbers, error, client

    numbers, error, client = asyncio.run(scenario())
    return sleeps, numbers, error, client


def reset(mid_stream: bool = True) -> ConnectionFailure:
    return ConnectionFailure("ReadError: connection reset", mid_stream=mid_stream, connection_level=True)


def test_the_tenacity_loop_sleeps_the_strategy_s_delays_and_stops_where_it_says():
    sleeps, numbers, error, _ = loop("exponential", [reset(), reset(), reset(), whole_answer()])
    assert error is None and numbers == [1, 2, 3, 4] and sleeps == [0.5, 1.0, 2.0]

    sleeps, numbers, error, _ = loop("exponential", [reset()] * 5)
    assert numbers == [1, 2, 3, 4, 5] and sleeps == [0.5, 1.0, 2.0, 4.0]
    assert isinstance(error, ConnectionFailure) and "5 attempt(s) used" in error.line(5)

    sleeps, numbers, error, _ = loop("sdk-default", [reset(mid_stream=True)])
    assert numbers == [1] and sleeps == [] and "never retries after the stream started" in error.gave_up

    sleeps, numbers, error, _ = loop("sdk-default", [reset(mid_stream=False), whole_answer()])
    assert numbers == [1, 2] and error is None and 0.375 <= sleeps[0] <= 0.5

    sleeps, numbers, error, _ = loop("none", [reset(mid_stream=False)])
    assert numbers == [1] and isinstance(error, ConnectionFailure)


def test_the_loop_honours_retry_after_and_never_retries_what_is_not_retryable():
    busy = StatusFailure(429, "rate_limit_error", "slow down", retryable=True, retry_after_s=1.25)
    sleeps, numbers, error, _ = loop("fixed", [busy, whole_answer()])
    assert error is None and sleeps == [1.25]
    sleeps, numbers, error, _ = loop("fixed", [status_failure(400, {}, b""), whole_answer()])
    assert numbers == [1] and isinstance(error, StatusFailure) and error.gave_up == "not retryable"
    sleeps, numbers, error, _ = loop("full-jitter", [IncompleteStream("no message_stop", mid_stream=True), whole_answer()])
    assert numbers == [1, 2] and error is None and 0 <= sleeps[0] <= 0.5


def test_the_budget_stops_the_loop_before_max_attempts():
    overloaded = StatusFailure(529, "overloaded_error", "Overloaded", retryable=True)
    _sleeps, numbers, error, client = loop("resilient", [overloaded] * 6, scale=0.01)
    assert numbers == [1, 2, 3, 4, 5]  # max_attempts is 6; the 5th failure leaves 5 of 10 tokens
    assert "retry budget exhausted" in error.gave_up and client.controller.budget.tokens == 5


# -- the registry and the CLI's default selection -----------------------------------------------------


def test_reference_clients_are_built_in_but_not_run_by_default(tmp_path):
    names = [f"ref-{name}" for name in strategies.STRATEGIES] + ["ref-resilient-h2"]
    assert all(name in registry.BUILT_IN for name in names)
    assert registry.get("ref-resilient-h2").protocols == ("h2",) and registry.get("ref-resume").protocols == ("http/1.1",)
    default = cli._select_clients(argparse.Namespace(client_cmd=None, clients=None))
    assert default and not any(c.name.startswith("ref-") for c in default)
    chosen = cli._select_clients(argparse.Namespace(client_cmd=None, clients=["ref-hedging"]))
    assert [c.name for c in chosen] == ["ref-hedging"]
    script = {"scenario": "agentic_nat_eviction", "turns": [{"prompt": "x"}]}
    invocation = registry.get("ref-idle-watchdog").invocation(Launch("http://127.0.0.1:1", "k", None, script, 40.0, tmp_path, time_scale=1 / 30))
    assert invocation.env["STREAMCHAOS_STRATEGY"] == "idle-watchdog"
    assert float(invocation.env["STREAMCHAOS_TIME_SCALE"]) == pytest.approx(1 / 30)  # the trial's scale
    unscaled = registry.get("ref-idle-watchdog").invocation(Launch("http://127.0.0.1:1", "k", None, script, 1200.0, tmp_path))
    assert "STREAMCHAOS_TIME_SCALE" not in unscaled.env
    pinned = registry.reference_client("hedging", time_scale=0.5).invocation(
        Launch("http://127.0.0.1:1", "k", None, script, 40.0, tmp_path, time_scale=1 / 30)
    )
    assert pinned.env["STREAMCHAOS_TIME_SCALE"] == "0.5"


def test_compare_rows_order_strategies_and_count_time_to_recover_over_recovered_trials_only():
    def record(client, scenario, outcome, ttr):
        return {
            "scenario": scenario,
            "client": client,
            "trial": 0,
            "outcome": outcome,
            "faults_fired": 1,
            "error_line": None,
            "backoff_ms": [],
            "time_to_recover_ms": ttr,
            "bytes_needed": 100,
            "bytes_out": 150,
            "elapsed_s": 1.0,
            "attempts": [],
        }

    records = [
        record("ref-full-jitter", "b", "recovered", 300.0),
        record("ref-full-jitter", "b", "hung", 20000.0),
        record("ref-none", "b", "failed", None),
        record("ref-none", "a", "recovered", 100.0),
        record("python-sdk", "a", "failed", None),
    ]
    table = compare.rows(records, ["none", "full-jitter"], ["a", "b"])
    assert [(r["strategy"], r["scenario"]) for r in table] == [("none", "a"), ("none", "b"), ("full-jitter", "b")]
    jitter = table[-1]
    assert jitter["ttr_mean_ms"] == 300.0 and jitter["hangs"] == 1 and jitter["amplification"] == 1.5
    assert compare.strategy_of("ref-resilient-h2") == "resilient" and compare.strategy_of("ref-sdk-default") == "sdk-default"
    with pytest.raises(KeyError):
        compare.CompareConfig(("no-such-strategy",), ())


# -- on the wire ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(["--seed", "9"]) as process:
        yield process


@pytest.fixture
def faults(sim):
    def load(*rules):
        sim.load_plan({"seed": 1, "faults": list(rules)})

    yield load
    sim.load_plan({"faults": []})


def run_ref(sim, strategy: str, plan: dict, scale: float = 0.1, deadline_s: float = 20.0, extra: dict | None = None, tls: bool = False):
    key = f"sk-ref-{strategy}-{next(_keys)}"
    env = contract_env(
        sim.lane_url(sim.port, tls),
        key,
        plan,
        sim.ca_file if tls else None,
        {"STREAMCHAOS_STRATEGY": strategy, "STREAMCHAOS_TIME_SCALE": str(scale), **(extra or {})},
    )
    result = run_client(CLIENT, env, deadline_s)
    requests = sorted((r for r in sim.journal(key) if r["kind"] == "request"), key=lambda r: r["t_headers"])
    return result, requests


def both(*calls):
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(*call) for call in calls]]


ONE_TURN = {"model": "claude-sonnet-4-6", "turns": [{"prompt": "Explain rivers.\n@sc words=80"}]}
RESET_AT_20 = {"type": "tcp_reset", "trigger": {"at": "events", "value": 20}, "select": {"attempts": [1]}}


def answer_of(requests) -> str:
    return next(r["answer"]["text"] for r in requests if r.get("answer"))


@pytest.mark.slow
def test_none_fails_on_a_mid_stream_reset_and_full_jitter_recovers(sim, faults):
    faults(RESET_AT_20)
    (none, none_requests), (jitter, jitter_requests) = both((run_ref, sim, "none", ONE_TURN), (run_ref, sim, "full-jitter", ONE_TURN))
    assert none.exit_code == 1 and "ConnectionFailure" in none.turns[0]["error"] and "mid-stream" in none.turns[0]["error"]
    assert [r["end"] for r in none_requests] == ["fault:tcp_reset"]
    assert jitter.exit_code == 0, jitter.stderr
    assert [r["end"] for r in jitter_requests] == ["fault:tcp_reset", "complete"]
    assert jitter.turns[0]["text"] == answer_of(jitter_requests) and jitter.turns[0]["stop_reason"] == "end_turn"
    assert [r["retry_count"] for r in jitter_requests] == [0, 1]


@pytest.mark.slow
def test_resume_recovers_with_the_text_shown_once(sim, faults, tmp_path):
    faults(RESET_AT_20)
    live = {name: tmp_path / f"{name}.txt" for name in ("resume", "full-jitter")}
    (resumed, requests), (restarted, _other) = both(
        (run_ref, sim, "resume", ONE_TURN, 0.1, 20.0, {"STREAMCHAOS_LIVE": str(live["resume"])}),
        (run_ref, sim, "full-jitter", ONE_TURN, 0.1, 20.0, {"STREAMCHAOS_LIVE": str(live["full-jitter"])}),
    )
    assert resumed.exit_code == 0, resumed.stderr
    answer = answer_of(requests)
    assert [r["end"] for r in requests] == ["fault:tcp_reset", "complete"]
    assert resumed.turns[0]["text"] == answer
    assert live["resume"].read_text() == answer  # the live display: the kept prefix was not shown again
    assert resumed.turns[0]["resumed_chars"] > 0
    shown = live["full-jitter"].read_text()  # without resume the display starts over: the prefix twice
    assert restarted.exit_code == 0 and shown.endswith(answer) and Transcript.RESTART in shown and len(shown) > len(answer) + len(Transcript.RESTART)


@pytest.mark.slow
def test_idle_watchdog_recovers_from_a_stall_where_sdk_default_hangs(sim, faults):
    faults({"type": "stall", "seconds": "inf", "trigger": {"at": "events", "value": 5}, "select": {"attempts": [1]}})
    plan = {**ONE_TURN, "timeout_s": 30.0}  # the SDK's read timeout, shortened: still far past the harness deadline
    (watchdog, requests), (sdk, sdk_requests) = both((run_ref, sim, "idle-watchdog", plan, 0.1, 8.0), (run_ref, sim, "sdk-default", plan, 0.1, 6.0))
    assert watchdog.exit_code == 0, watchdog.stderr
    assert watchdog.elapsed_s < 5.0  # a 1 s watchdog (10 s scaled by 0.1), then a retry
    assert "IdleTimeout" in watchdog.stderr
    assert requests[0]["events_out"] == 5 and requests[-1]["end"] == "complete" and watchdog.turns[0]["text"] == answer_of(requests)
    assert sdk.hung and len(sdk_requests) == 1  # no watchdog and no mid-stream retry: it waits


@pytest.mark.slow
def test_fresh_connection_recovers_from_idle_eviction_where_full_jitter_reuses_the_dead_pool(sim, faults):
    faults({"type": "idle_eviction", "idle_s": 0.4})
    # five pooled connections after turn 1; turn 2 comes after they went idle past the NAT's timeout
    plan = {
        "timeout_s": 0.5,
        "turns": [{"prompt": "Start.\n@sc words=20", "parallel": 5}, {"prompt": "The tool finished.\n@sc words=20", "idle_before_s": 0.6}],
    }
    (fresh, fresh_requests), (jitter, jitter_requests) = both((run_ref, sim, "fresh-connection", plan), (run_ref, sim, "full-jitter", plan))

    assert fresh.exit_code == 0, fresh.stderr
    pooled = {r["conn"] for r in fresh_requests[:5]}
    evicted, retry = fresh_requests[5], fresh_requests[6]
    assert evicted["conn"] in pooled and evicted["end"] != "complete" and any(f["type"] == "idle_eviction" for f in evicted["faults"])
    assert retry["conn"] not in pooled and retry["end"] == "complete" and len(fresh_requests) == 7
    assert fresh.turns[-1]["turn"] == 1 and fresh.turns[-1]["text"] == retry["answer"]["text"]

    pooled = {r["conn"] for r in jitter_requests[:5]}
    later = jitter_requests[5:]
    assert jitter.exit_code == 1 and "timeout" in jitter.turns[-1]["error"]  # each attempt waits out its timeout
    assert len(later) == 5 and all(r["conn"] in pooled and r["end"] != "complete" for r in later)  # retried on the dead pool
    assert len({r["conn"] for r in later}) == 5


@pytest.mark.slow
def test_hedging_answers_when_the_first_copy_stalls_at_headers(sim, faults):
    faults({"type": "stall", "seconds": "inf", "trigger": {"at": "headers"}, "select": {"attempts": [1]}})
    result, requests = run_ref(sim, "hedging", ONE_TURN)  # hedge after 0.2 s (2 s scaled by 0.1)
    assert result.exit_code == 0, result.stderr
    assert result.elapsed_s < 5.0 and "hedge copy won" in result.stderr
    stalled, hedge = requests
    assert stalled["events_out"] == 0 and stalled["end"] != "complete"  # cancelled once the hedge won
    assert hedge["end"] == "complete" and hedge["conn"] != stalled["conn"] and hedge["t_headers"] - stalled["t_headers"] >= 0.19
    assert result.turns[0]["text"] == hedge["answer"]["text"]


@pytest.mark.slow
def test_the_retry_budget_stops_retrying_when_every_attempt_is_overloaded(sim, faults):
    faults({"type": "http_error", "status": 529})
    plan = {"turns": [{"prompt": "Four at once.", "parallel": 4}]}
    (budget, budget_requests), (jitter, jitter_requests) = both((run_ref, sim, "retry-budget", plan), (run_ref, sim, "full-jitter", plan))
    assert budget.exit_code == 1 and jitter.exit_code == 1
    assert len(jitter_requests) == 4 * 5  # every part uses all its attempts
    assert len(budget_requests) <= 4 + 4  # 10 tokens, a failure takes one, retries only while more than 5 are left
    per_part: dict[str, int] = {}
    for request in budget_requests:
        per_part[request["conversation"]] = per_part.get(request["conversation"], 0) + 1
    assert len(per_part) == 4 and max(per_part.values()) < 5
    assert all(r["status"] == 529 for r in budget_requests)
    assert any("retry budget exhausted" in turn["error"] for turn in budget.turns)


@pytest.mark.slow
@pytest.mark.parametrize("mode, tls", [("1", True), ("prior-knowledge", False)], ids=["h2-tls", "h2c"])
def test_over_h2_a_goaway_is_retried_on_a_new_connection(sim, faults, mode, tls):
    faults({"type": "goaway", "last_stream_id": 0, "graceful": False, "trigger": {"at": "events", "value": 10}, "select": {"attempts": [1]}})
    result, requests = run_ref(sim, "resilient", ONE_TURN, extra={"STREAMCHAOS_HTTP2": mode}, tls=tls)
    assert result.exit_code == 0, result.stderr
    assert [r["protocol"] for r in requests] == ["h2", "h2"] and [r["end"] for r in requests] == ["fault:goaway", "complete"]
    assert requests[0]["conn"] != requests[1]["conn"] and "GoawayFailure" in result.stderr
    assert result.turns[0]["text"] == requests[1]["answer"]["text"]


@pytest.mark.slow
def test_compare_end_to_end_writes_the_table_and_plots(tmp_path, capsys):
    code = cli.main(
        [
            "compare",
            "--strategies",
            "none",
            "full-jitter",
            "--scenarios",
            "reset_mid_thinking",
            "--trials",
            "3",
            "--results",
            str(tmp_path),
            "--run-id",
            "cmp",
            "--time-scale",
            "0.1",
        ]
    )
    assert code == 0
    directory = tmp_path / "cmp"
    for name in ("compare_recovery", "compare_time_to_recover", "compare_amplification", "outcomes"):
        png = directory / f"{name}.png"
        assert png.exists() and png.read_bytes().startswith(b"\x89PNG")
    for name in ("summary.json", "summary.csv", "report.html", "compare.csv", "trials.jsonl"):
        assert (directory / name).exists()
    rows = {row["strategy"]: row for row in json.loads((directory / "compare.json").read_text())["rows"]}
    assert rows["none"]["trials"] == 3 and rows["none"]["recovered"] == 0
    assert rows["full-jitter"]["recovered"] == 3 and rows["full-jitter"]["hangs"] == 0 and rows["full-jitter"]["data_loss"] == 0
    assert rows["full-jitter"]["ttr_mean_ms"] > 0 and rows["full-jitter"]["amplification"] > 1
    out = capsys.readouterr().out
    assert "streamchaos compare" in out and "full-jitter" in out and "reset_mid_thinking" in out
    records = [json.loads(line) for line in (directory / "trials.jsonl").read_text().splitlines()]
    assert {r["client"] for r in records} == {"ref-none", "ref-full-jitter"}
    assert all(r["extra"]["time_scale"] == 0.1 for r in records)
