"""tcp_reset: RST of the whole connection, after the kernel has sent what was written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..base import Fault
from ..registry import register


@register
@dataclass(frozen=True, slots=True)
class TcpReset(Fault):
    kind: ClassVar[str] = "tcp_reset"
    connection_level: ClassVar[bool] = True

    async def act(self, channel: Any, out: Any) -> bool:
        await channel.reset_connection()
        return False

    async def act_on_link(self, link: Any) -> None:
        await link.reset()
