"""The data plane: accept, sniff TLS / h2 preface, dispatch, shut down gracefully."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from typing import Union

import trio

from .api.router import MessagesApi
from .config import SimulatorConfig
from .journal import Journal
from .transport.h1 import H1Handler
from .transport.h2conn import H2Handler

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TLS_HANDSHAKE = 0x16
SNIFF_TIMEOUT_S = 30.0

Handler = Union[H1Handler, H2Handler]


@dataclass
class ServerState:
    """What every connection handler shares."""

    config: SimulatorConfig
    journal: Journal
    api: MessagesApi
    tls_context: ssl.SSLContext | None = None
    idle_timeout_s: float = 300.0
    handlers: set = field(default_factory=set)


async def sniff(stream: trio.abc.Stream, want: int) -> bytes:
    """Read until ``want`` bytes or until the prefix can no longer be the h2 preface."""
    data = b""
    while len(data) < want:
        chunk = await stream.receive_some(want - len(data))
        if not chunk:
            break
        data += chunk
        if not H2_PREFACE.startswith(data[: len(H2_PREFACE)]):
            break
    return data


async def close_cleanly(stream: trio.SocketStream, drain: bool, drain_s: float = 1.0, drain_bytes: int = 1 << 20) -> None:
    """FIN, not RST: half-close, read (bounded) what the peer still sends, then close. Closing
    with unread input would make the kernel send RST and could destroy our last answer."""
    try:
        if drain:
            await stream.send_eof()
            with trio.move_on_after(drain_s):
                left = drain_bytes
                while left > 0:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    left -= len(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        with trio.move_on_after(1):
            try:
                await stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


class DataPlane:
    def __init__(self, state: ServerState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self.host = host
        self.port = port
        self._cancel = trio.CancelScope()
        self._accepting = trio.CancelScope()
        self.address: tuple[str, int] | None = None

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.address = listeners[0].socket.getsockname()[:2]
        with self._cancel:
            async with trio.open_nursery() as nursery:
                task_status.started(self.address)
                with self._accepting:
                    await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)
                for listener in listeners:
                    await listener.aclose()

    async def _handle(self, stream: trio.SocketStream) -> None:
        state = self.state
        try:
            peer = "%s:%d" % stream.socket.getpeername()[:2]
        except OSError:
            return
        record = state.journal.open_connection(peer, "%s:%d" % self.address)
        end = "client_close"
        try:
            with trio.move_on_after(SNIFF_TIMEOUT_S):
                first = await sniff(stream, len(H2_PREFACE))
            transport: trio.abc.Stream = stream
            if first[:1] == bytes([TLS_HANDSHAKE]) and state.tls_context is not None:
                transport, first = await self._start_tls(stream, first, record)
            if not first:
                end = "client_close"
                return
            protocol = "h2" if first.startswith(H2_PREFACE) else "http/1.1"
            record["protocol"] = protocol
            handler_type = H2Handler if protocol == "h2" else H1Handler
            handler = handler_type(state, transport, record, first)
            state.handlers.add(handler)
            try:
                end = await handler.run()
            finally:
                state.handlers.discard(handler)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            end = "reset_by_client"
        except ssl.SSLError:
            end = "tls_error"
        finally:
            state.journal.close_connection(record, end)
            with trio.CancelScope(shield=True):
                await close_cleanly(stream, drain=end not in ("reset_by_client", "client_close", "tls_error"))

    async def _start_tls(self, stream: trio.SocketStream, first: bytes, record: dict) -> tuple[trio.abc.Stream, bytes]:
        """TLS over a stream whose first bytes we already read: replay them into the handshake."""
        tls = trio.SSLStream(_Replay(stream, first), self.state.tls_context, server_side=True)
        await tls.do_handshake()
        record["tls"] = True
        record["alpn"] = tls.selected_alpn_protocol()
        record["t_tls"] = time.monotonic()
        return tls, await sniff(tls, len(H2_PREFACE))

    async def shutdown(self, grace_s: float = 5.0) -> None:
        """Stop accepting; GOAWAY to h2 peers; let replies in flight finish (bounded)."""
        self._accepting.cancel()
        async with trio.open_nursery() as nursery:
            for handler in list(self.state.handlers):
                if isinstance(handler, H2Handler):
                    nursery.start_soon(handler.shutdown, grace_s)
                else:
                    nursery.start_soon(handler.shutdown)
        with trio.move_on_after(grace_s):
            while self.state.handlers:
                await trio.sleep(0.01)
        self._cancel.cancel()


class _Replay(trio.abc.Stream):
    """A stream that first yields bytes already consumed by sniffing."""

    def __init__(self, inner: trio.abc.Stream, first: bytes) -> None:
        self._inner = inner
        self._first = first

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._first:
            data, self._first = self._first, b""
            return data
        return await self._inner.receive_some(max_bytes)

    async def send_all(self, data) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()
