"""blackhole: read and discard everything, answer nothing (no PING ACK), never close."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..base import Fault
from ..registry import register


@register
@dataclass(frozen=True, slots=True)
class Blackhole(Fault):
    kind: ClassVar[str] = "blackhole"
    connection_level: ClassVar[bool] = True
    silences: ClassVar[bool] = True

    async def act(self, channel: Any, out: Any) -> bool:
        await channel.blackhole()
        return False

    async def act_on_link(self, link: Any) -> None:
        await link.blackhole()
