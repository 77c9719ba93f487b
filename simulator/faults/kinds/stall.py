"""stall: stop sending for ``seconds`` (inf: until the client leaves); PINGs are still answered."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ..base import Fault
from ..registry import register
from ..validate import bounded


@register
@dataclass(frozen=True, slots=True)
class Stall(Fault):
    kind: ClassVar[str] = "stall"
    seconds: float = math.inf

    def check(self, path: str) -> None:
        if not (isinstance(self.seconds, float) and self.seconds == math.inf):
            bounded(self.seconds, f"{path}.seconds")

    @property
    def terminal(self) -> bool:  # type: ignore[override]
        return math.isinf(self.seconds)

    def scaled(self, factor: float) -> Stall:
        return replace(self, seconds=self.seconds * factor)

    def durations(self) -> list[tuple[str, float]]:
        return [] if self.seconds == math.inf else [("seconds", self.seconds)]

    async def act(self, channel: Any, out: Any) -> bool:
        await channel.stall(self.seconds)
        return not math.isinf(self.seconds)
