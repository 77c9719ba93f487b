"""fin: a clean close mid-body: HTTP/1.1 without its last chunk; h2 without GOAWAY; over TLS with
or without close_notify."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..base import Fault
from ..registry import register


@register
@dataclass(frozen=True, slots=True)
class Fin(Fault):
    kind: ClassVar[str] = "fin"
    connection_level: ClassVar[bool] = True
    close_notify: bool = True

    async def act(self, channel: Any, out: Any) -> bool:
        await channel.close_connection(close_notify=self.close_notify)
        return False

    async def act_on_link(self, link: Any) -> None:
        await link.fin(close_notify=self.close_notify)
