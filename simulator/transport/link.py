"""One accepted connection below HTTP: the raw TCP stream, the (maybe TLS) stream above it, and
the connection-level fault primitives both HTTP versions share."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from ..records import ConnectionRecord
from . import sockets


@dataclass
class Link:
    raw: trio.SocketStream
    stream: trio.abc.Stream  # raw, or TLS over raw
    record: ConnectionRecord  # the journal's connection record
    tls: bool = False
    fault_end: str | None = None  # how a fault ended the connection, for the journal
    closed: bool = field(default=False)

    async def reset(self) -> None:
        """TCP RST once the peer has everything written (TLS: no close_notify, by nature)."""
        self.fault_end = self.fault_end or "fault:tcp_reset"
        self.closed = True
        with trio.CancelScope(shield=True):  # half a reset would leave the close to the GC: a FIN
            await sockets.reset(self.raw)

    async def fin(self, close_notify: bool = True) -> None:
        """A clean close; over TLS with a close_notify alert first, or without one."""
        self.fault_end = self.fault_end or "fault:fin"
        self.closed = True
        with trio.CancelScope(shield=True):
            if self.tls and close_notify:
                try:
                    with trio.move_on_after(2):
                        await self.stream.aclose()  # close_notify, then a clean FIN below (see _Replay)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
            await sockets.close_cleanly(self.raw, drain=True)

    async def close(self, drain: bool) -> None:
        """The ordinary end: close_notify over TLS, and a FIN that unread input cannot turn into RST."""
        self.closed = True
        if self.tls:
            try:
                with trio.move_on_after(2):
                    await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        await sockets.close_cleanly(self.raw, drain=drain)

    async def blackhole(self) -> None:
        """Read and drop everything, answer nothing, until the peer gives up."""
        self.fault_end = self.fault_end or "fault:blackhole"
        await sockets.discard_until_eof(self.raw)
        self.closed = True
