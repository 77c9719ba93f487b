"""The reference client (harness/clients/reference/), one built-in per retry strategy."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from harness.clients.adapter import ContractClient, Invocation, Launch
from harness.clients.launch import contract_env
from harness.measure.strategies import STRATEGIES, Strategy
from harness.measure.strategies import get as get_strategy

REFERENCE = (sys.executable, "-m", "harness.clients.reference")


@dataclass(frozen=True)
class ReferenceClient(ContractClient):
    """The reference client with one retry strategy, its durations scaled by ``time_scale``, or
    when that is None by the trial's own scale."""

    strategy: str = "sdk-default"
    time_scale: float | None = None

    def invocation(self, launch: Launch) -> Invocation:
        env = {**self.env, "STREAMCHAOS_STRATEGY": self.strategy}
        scale = self.time_scale if self.time_scale is not None else launch.time_scale
        if scale != 1:
            env["STREAMCHAOS_TIME_SCALE"] = repr(scale)
        return Invocation(self.argv, contract_env(launch.base_url, launch.api_key, launch.script, launch.ca_file, env, script_dir=launch.workdir))


def strategy_policy(strategy: Strategy) -> str:
    """A strategy in one line, as ``streamchaos clients`` shows a client's declared policy."""
    parts = [
        f"{strategy.max_attempts} attempt(s)",
        f"backoff {strategy.backoff} (base {strategy.base_s:g} s, cap {strategy.cap_s:g} s)",
        "mid-stream retried" if strategy.retry_mid_stream else "never mid-stream",
    ]
    if strategy.resume:
        parts.append("resume without duplicates")
    if strategy.idle_timeout_s is not None:
        parts.append(f"idle watchdog {strategy.idle_timeout_s:g} s")
    if strategy.fresh_connection:
        parts.append("fresh connection after a connection failure")
    if strategy.hedge_after_s is not None:
        parts.append(f"hedge after {strategy.hedge_after_s:g} s")
    if strategy.pool_idle_s is not None:
        parts.append(f"idle connections pooled {strategy.pool_idle_s:g} s")
    if strategy.keepalive_idle_s is not None:
        parts.append(f"TCP keepalive {strategy.keepalive_idle_s} s (interval {strategy.keepalive_interval_s} s, {strategy.keepalive_count} probes)")
    if strategy.user_timeout_s is not None:
        parts.append(f"TCP_USER_TIMEOUT {strategy.user_timeout_s:g} s")
    if strategy.budget_max_tokens:
        parts.append(f"retry budget {strategy.budget_max_tokens:g}/{strategy.budget_token_ratio:g}")
    if strategy.throttle_k:
        parts.append(f"adaptive throttling K={strategy.throttle_k:g}")
    return "; ".join(parts)


def reference_client(strategy: str, http2: bool = False, time_scale: float | None = None, name: str | None = None) -> ReferenceClient:
    """The reference client with ``strategy`` (HTTP/1.1, or h2 over TLS by ALPN)."""
    chosen = get_strategy(strategy)
    return ReferenceClient(
        name or f"ref-{strategy}{'-h2' if http2 else ''}",
        f"reference client (httpx{', h2' if http2 else ', HTTP/1.1'}), strategy {strategy}",
        ("h2",) if http2 else ("http/1.1",),
        strategy_policy(chosen),
        on_by_default=False,
        argv=REFERENCE,
        env={"STREAMCHAOS_HTTP2": "1"} if http2 else {},
        strategy=strategy,
        time_scale=time_scale,
        apis=("messages", "chat"),
    )


CLIENTS = (*(reference_client(name) for name in STRATEGIES), reference_client("resilient", http2=True))
