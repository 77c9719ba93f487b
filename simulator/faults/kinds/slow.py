"""slow: pacing for the selected replies: time to first token, tokens per second, jitter (a share
of each interval, drawn from the plan's seed)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from ..base import PACING, Fault
from ..registry import register
from ..validate import MAX_RATE, PlanError, bounded, positive


@register
@dataclass(frozen=True, slots=True)
class Slow(Fault):
    kind: ClassVar[str] = "slow"
    terminal: ClassVar[bool] = False
    acts_as: ClassVar[str] = PACING
    ttft_s: float = 0.0
    tokens_per_second: float | None = None
    jitter: float = 0.0

    def check(self, path: str) -> None:
        bounded(self.ttft_s, f"{path}.ttft_s")
        if self.tokens_per_second is not None:
            positive(self.tokens_per_second, f"{path}.tokens_per_second", MAX_RATE)
        if not 0 <= self.jitter <= 1:
            raise PlanError(f"{path}.jitter", f"must be between 0 and 1, not {self.jitter}")

    def scaled(self, factor: float) -> Slow:
        rate = None if self.tokens_per_second is None else self.tokens_per_second / factor
        return replace(self, ttft_s=self.ttft_s * factor, tokens_per_second=rate)

    def durations(self) -> list[tuple[str, float]]:
        return [("ttft_s", self.ttft_s)]
