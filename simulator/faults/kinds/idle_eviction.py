"""idle_eviction: NAT emulation. A request on a connection that was idle for ``idle_s`` goes into
a black hole (as a NAT that dropped the flow would); new connections work."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ..base import Fault
from ..facts import RequestFacts
from ..registry import register
from ..validate import positive


@register
@dataclass(frozen=True, slots=True)
class IdleEviction(Fault):
    kind: ClassVar[str] = "idle_eviction"
    headers_only: ClassVar[bool] = True
    silences: ClassVar[bool] = True
    idle_s: float = 90.0

    def check(self, path: str) -> None:
        positive(self.idle_s, f"{path}.idle_s")

    def scaled(self, factor: float) -> IdleEviction:
        return replace(self, idle_s=self.idle_s * factor)

    def durations(self) -> list[tuple[str, float]]:
        return [("idle_s", self.idle_s)]

    def selects(self, facts: RequestFacts) -> bool:
        return facts.idle_s >= self.idle_s

    async def act(self, channel: Any, out: Any) -> bool:
        await channel.blackhole()
        return False
