"""goaway_after_streams: a connection serves ``streams`` requests, then the server ends it
gracefully, as a real server with a per-connection quota does (nginx ``http2_max_requests``,
``keepalive_requests``). On HTTP/2, at the headers of the connection's ``streams``-th request:
GOAWAY NO_ERROR covering every stream opened so far (they are all answered), later streams
refused, then the final GOAWAY and FIN once they are done (at most ``grace_s``). On HTTP/1.1:
``connection: close`` on that response, and the close after it. Nothing is lost: a correct
client sends what follows on a new connection without reporting an error.

Every request the connection carried counts, as a server counts them; the rule's selector must
take the ``streams``-th (``select.path_prefix = "/"`` when other paths share the connection)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ..base import Fault
from ..facts import RequestFacts
from ..registry import register
from ..validate import MAX_VALUE, PlanError, bounded, count


@register
@dataclass(frozen=True, slots=True)
class GoawayAfterStreams(Fault):
    kind: ClassVar[str] = "goaway_after_streams"
    terminal: ClassVar[bool] = False
    headers_only: ClassVar[bool] = True
    streams: int = 100
    grace_s: float = 30.0

    def check(self, path: str) -> None:
        count(self.streams, f"{path}.streams", minimum=1)
        if self.streams > MAX_VALUE:
            raise PlanError(f"{path}.streams", f"must be at most {MAX_VALUE:g}, not {self.streams}")
        bounded(self.grace_s, f"{path}.grace_s")

    def scaled(self, factor: float) -> GoawayAfterStreams:
        return replace(self, grace_s=self.grace_s * factor)

    def durations(self) -> list[tuple[str, float]]:
        return [("grace_s", self.grace_s)]

    def selects(self, facts: RequestFacts) -> bool:
        return facts.on_connection == self.streams

    async def act(self, channel: Any, out: Any) -> bool:
        await channel.close_after_reply(self.grace_s)
        return True
