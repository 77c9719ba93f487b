"""The two load experiments of tests/test_metastability.py and benchmarks/bench_metastability.py:
a metastable failure after a capacity dip, and Brooker's backoff study (optimistic concurrency).
Each gives the simulator's capacity plan and the load generator's specs; the runs are theirs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.measure import strategies
from harness.measure.loadgen import LoadSpec
from harness.measure.strategies import Strategy

NAIVE = Strategy("naive", backoff="fixed", base_s=0.025, max_attempts=20)  # short fixed backoff, many attempts, no budget


@dataclass(frozen=True, slots=True)
class DipExperiment:
    """A metastable failure: ``clients`` closed-loop clients (think time between requests) against
    ``limit`` slots of ``service_s`` each, a FIFO queue that drops waiters after
    ``queue_timeout_s``, and a capacity dip. Offered load before the dip is about two thirds of
    capacity; clients give up on an attempt after ``attempt_timeout_s``, which the server does not
    notice (HTTP/1.1), so a queue longer than the timeout serves only abandoned attempts. Times are
    a tenth of a real deployment's (strategies are scaled by ``strategy_scale``)."""

    clients: int = 40
    limit: int = 10
    service_s: float = 0.1
    queue: int = 1000
    queue_timeout_s: float = 1.0
    dip_s: tuple[float, float] = (3.0, 5.0)
    dip_limit: int = 2
    duration_s: float = 15.0
    think_s: float = 0.5
    attempt_timeout_s: float = 0.25
    start_spread_s: float = 0.6
    strategy_scale: float = 0.1
    pre_s: tuple[float, float] = (1.0, 3.0)  # the goodput windows compared
    post_s: tuple[float, float] = (10.0, 15.0)  # the throttle's window keeps the dip's failures for a while

    def plan(self, seed: int = 1) -> dict[str, Any]:
        return {
            "seed": seed,
            "capacity": {
                "limit": self.limit,
                "service_s": self.service_s,
                "queue": self.queue,
                "queue_timeout_s": self.queue_timeout_s,
                "dips": [{"window_s": list(self.dip_s), "limit": self.dip_limit}],
            },
        }

    def spec(self, strategy: Strategy, seed: int = 1) -> LoadSpec:
        return LoadSpec(
            self.clients,
            strategy,
            duration_s=self.duration_s,
            deadline_s=self.duration_s + 1,
            think_s=self.think_s,
            attempt_timeout_s=self.attempt_timeout_s,
            start_spread_s=self.start_spread_s,
            seed=seed,
            key_prefix=strategy.name,
        )

    def strategies(self) -> dict[str, Strategy]:
        return {
            "naive": NAIVE,
            **{name: strategies.scaled(strategies.get(name), self.strategy_scale) for name in ("full-jitter", "retry-budget", "adaptive-throttle")},
        }

    @property
    def capacity_per_s(self) -> float:
        return self.limit / self.service_s


@dataclass(frozen=True, slots=True)
class OccExperiment:
    """Brooker's backoff study on the simulator: ``clients`` each make one optimistic-concurrency
    write (one request: the row is read when the request is admitted and written when its service
    ends); a conflict (409) is retried with the backoff under test, without limit.

    :meth:`published` is Brooker's setting: network 10 ms each way (sd 2 ms), so a write window
    (read to write at the server) of 20 ms, backoff base 5 ms, cap 2 s. Its no-jitter run takes
    about 35 s. The default is the quick version the tests run: the backoff scaled by 1/4 and the
    network and window doubled. The window cannot shrink with the rest: the simulator and the
    clients spend about 0.5 ms of CPU per request, so a herd of 50 takes ~25 ms to pass the
    server, and a window smaller than that spreads the herd over several windows and hides what
    no jitter does (``benchmarks/bench_metastability.py`` runs the same model as discrete events:
    with no CPU cost it gives the published calls within 1 % and times within 10 %; with that cost,
    the measured ones)."""

    clients: int = 50
    window_s: float = 0.04
    jitter: float = 0.25  # uniform +-25 %: sd 14 % of the window, as the sum of Brooker's two delays
    net_delay_s: tuple[float, float] = (0.02, 0.004)
    base_s: float = 0.005
    cap_s: float = 2.0
    backoff_scale: float = 0.25
    deadline_s: float = 120.0

    BACKOFFS = ("exponential", "full_jitter", "decorrelated_jitter")

    @classmethod
    def published(cls) -> OccExperiment:
        return cls(window_s=0.02, net_delay_s=(0.01, 0.002), backoff_scale=1.0)

    def plan(self, seed: int = 1) -> dict[str, Any]:
        return {"seed": seed, "capacity": {"limit": 10_000, "service_s": self.window_s, "jitter": self.jitter, "overload": "conflict"}}

    def spec(self, backoff: str, seed: int = 1) -> LoadSpec:
        strategy = Strategy(
            backoff, backoff=backoff, base_s=self.base_s * self.backoff_scale, cap_s=self.cap_s * self.backoff_scale, max_attempts=100_000
        )
        return LoadSpec(
            self.clients,
            strategy,
            requests_per_client=1,
            net_delay_s=self.net_delay_s,
            deadline_s=self.deadline_s,
            seed=seed,
            key_prefix=f"occ-{backoff}-{seed}",
        )
