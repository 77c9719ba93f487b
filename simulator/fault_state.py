"""The live side of a plan: the ordinals and attempt counts that turn a request into facts.

Everything random is in :mod:`.decide`; this only counts, so that the same sequence of requests
yields the same facts and therefore the same decisions.
"""

from __future__ import annotations

import time
from typing import Any

from .capacity_gate import CapacityGate
from .faults.facts import ConnectionFacts, RequestFacts
from .faults.model import FaultPlan
from .records import ConnectionRecord

MAX_TRACKED = 1_000_000


class FaultState:
    def __init__(self, plan: FaultPlan = FaultPlan()) -> None:
        self.load(plan)

    def load(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.t0 = time.monotonic()
        self._attempts: dict[tuple[str, str], int] = {}
        self._requests: dict[str, int] = {}
        self._connections: dict[str, int] = {}
        self.generation = getattr(self, "generation", 0) + 1
        self.capacity = None if plan.capacity is None else CapacityGate(plan.capacity, self.t0, plan.seed)

    @property
    def active(self) -> bool:
        return bool(self.plan.rules)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def connection_facts(self, trial: str, phase: str, connection: ConnectionRecord) -> ConnectionFacts:
        """Facts at accept or after TLS: the ordinal counts connections of the lane's trial, or all
        connections since the plan was loaded when the connection is on no lane."""
        ordinals = self._ordinals(connection)
        if trial not in ordinals:
            ordinals[trial] = self._next(self._connections, trial)
        return ConnectionFacts(trial, ordinals[trial], self.elapsed(), phase)

    def request_facts(self, connection: ConnectionRecord, trial: str, logical: str, streaming: bool, path: str, idle_s: float) -> RequestFacts:
        ordinals = self._ordinals(connection)
        if trial not in ordinals:
            ordinals[trial] = self._next(self._connections, trial)
        attempt = self._next(self._attempts, (trial, logical))
        request = self._next(self._requests, trial)
        return RequestFacts(
            trial=trial,
            logical=logical,
            attempt=attempt,
            connection=ordinals[trial],
            request=request,
            elapsed_s=self.elapsed(),
            streaming=streaming,
            path=path,
            protocol=connection.get("protocol") or "",
            idle_s=idle_s,
            on_connection=connection.get("requests", 1),
        )

    def _ordinals(self, connection: ConnectionRecord) -> dict[str, int]:
        """A connection's ordinal per trial, valid for the plan generation that assigned it."""
        live = connection.live
        if live.plan_generation != self.generation:
            live.plan_generation, live.ordinals = self.generation, {}
        return live.ordinals

    @staticmethod
    def _next(counter: dict, key: Any) -> int:
        if len(counter) >= MAX_TRACKED and key not in counter:
            counter.clear()
        counter[key] = counter.get(key, 0) + 1
        return counter[key]
