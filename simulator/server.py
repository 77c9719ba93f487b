"""The data plane: accept, sniff TLS / h2 preface, dispatch, shut down gracefully."""

from __future__ import annotations

import ssl
import time
from functools import partial

import trio

from .faults.decide import connection_rule
from .records import ConnectionRecord, fault_note
from .state import ServerState
from .transport.h1 import H1Handler
from .transport.h2conn import H2Handler
from .transport.link import Link
from .transport.sockets import close_cleanly

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TLS_HANDSHAKE = 0x16
SNIFF_TIMEOUT_S = 30.0
MAX_LANES = 1024

Handler = H1Handler | H2Handler


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


class DataPlane:
    def __init__(self, state: ServerState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self.host = host
        self.port = port
        self._cancel = trio.CancelScope()
        self._accepting = trio.CancelScope()
        self.address: tuple[str, int] | None = None
        self._listener = ""  # "host:port" of self.address, as connection records name it
        self._nursery: trio.Nursery | None = None
        self._handlers_gone = trio.Event()  # set each time the last open connection's handler ends
        self.lanes: dict[int, tuple[str, trio.CancelScope]] = {}

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.address = listeners[0].socket.getsockname()[:2]
        self._listener = "%s:%d" % self.address
        with self._cancel:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started(self.address)
                with self._accepting:
                    await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)
                for listener in listeners:
                    await listener.aclose()

    # -- lanes: one listening port per trial --------------------------------------------------
    async def open_lane(self, trial: str, host: str | None = None) -> int:
        """A port whose connections all belong to ``trial``: accept-time faults can then count
        connections per trial, which no request header could tell before TLS. ``host``: bind
        the lane to that address instead (the network lab's host-side address), never a wildcard."""
        if len(self.lanes) >= MAX_LANES:
            raise ValueError(f"too many open lanes ({MAX_LANES}); close some first")
        if host is not None and host in ("0.0.0.0", "::", ""):
            raise ValueError("lanes bind one address, never a wildcard")
        listeners = await trio.open_tcp_listeners(0, host=host or self.host)
        port = listeners[0].socket.getsockname()[1]
        scope = trio.CancelScope()
        if self._nursery is None:
            raise RuntimeError("open_lane: the data plane is not serving")
        self.lanes[port] = (trial, scope)
        self._nursery.start_soon(self._serve_lane, listeners, trial, scope, port)
        return port

    def close_lane(self, port: int) -> bool:
        """Stop accepting on the lane; connections already open carry on."""
        lane = self.lanes.pop(port, None)
        if lane is not None:
            lane[1].cancel()
        return lane is not None

    async def _serve_lane(self, listeners, trial: str, scope: trio.CancelScope, port: int) -> None:
        handler = partial(self._handle, lane=trial)
        try:
            with scope:
                await trio.serve_listeners(handler, listeners, handler_nursery=self._nursery)
        finally:
            self.lanes.pop(port, None)
            for listener in listeners:
                await listener.aclose()

    async def _handle(self, stream: trio.SocketStream, lane: str | None = None) -> None:
        state = self.state
        try:
            peer = "%s:%d" % stream.socket.getpeername()[:2]
        except OSError:
            return
        record = state.journal.open_connection(peer, self._listener)
        if lane is not None:
            record["lane"] = lane
        link = Link(stream, stream, record)
        end = "client_close"
        try:
            if await self._connection_fault(link, record, "accept"):
                return
            with trio.move_on_after(SNIFF_TIMEOUT_S):
                first = await sniff(stream, len(H2_PREFACE))
            if first[:1] == bytes([TLS_HANDSHAKE]) and state.tls_context is not None:
                await self._start_tls(link, first, state.tls_context)
                if await self._connection_fault(link, record, "tls"):
                    return
                first = await sniff(link.stream, len(H2_PREFACE))
            if not first:
                return
            # ALPN's choice binds: after "h2" an invalid preface is an HTTP/2 connection error
            # (GOAWAY PROTOCOL_ERROR, then close), never an HTTP/1.1 request. Without TLS, one port
            # serves both, so a bad preface is read as HTTP/1.1 (h2spec 3.5/2, accepted for h2c).
            h2_by_alpn = record.get("alpn") == "h2"
            protocol = "h2" if h2_by_alpn or first.startswith(H2_PREFACE) else "http/1.1"
            record["protocol"] = protocol
            handler = (H2Handler if protocol == "h2" else H1Handler)(state, link, first)
            state.handlers.add(handler)
            try:
                end = await handler.run()
            finally:
                state.handlers.discard(handler)
                if not state.handlers:
                    self._handlers_gone.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            end = "reset_by_client"
        except ssl.SSLError:
            end = "tls_error"
        except Exception as error:  # a bug of ours: this connection pays for it, never the server
            end = "server_error"
            state.errors.note(error, "connection", record)
        finally:
            state.journal.finish(record, link.fault_end or end)
            if not link.closed:
                with trio.CancelScope(shield=True):
                    await link.close(drain=end not in ("reset_by_client", "client_close", "tls_error"))

    async def _connection_fault(self, link: Link, record: ConnectionRecord, phase: str) -> bool:
        """Accept-time and after-TLS faults; True if one ended the connection."""
        faults = self.state.faults
        if not faults.active:
            return False
        facts = faults.connection_facts(record.get("lane") or "", phase, record)
        index = connection_rule(faults.plan, facts)
        if index is None:
            return False
        rule = faults.plan.rules[index]
        record.faults.append(fault_note(index, rule, phase, connection=facts.connection))
        await rule.fault.act_on_link(link)
        return True

    async def _start_tls(self, link: Link, first: bytes, context: ssl.SSLContext) -> None:
        """TLS over a stream whose first bytes we already read: replay them into the handshake."""
        tls = trio.SSLStream(_Replay(link.raw, first), context, server_side=True)
        await tls.do_handshake()
        link.stream, link.tls = tls, True
        link.record["tls"] = True
        link.record["alpn"] = tls.selected_alpn_protocol()
        link.record["t_tls"] = time.monotonic()

    async def shutdown(self, grace_s: float = 5.0) -> None:
        """Stop accepting; GOAWAY to h2 peers; let replies in flight finish (bounded)."""
        self._accepting.cancel()
        for port in list(self.lanes):
            self.close_lane(port)
        async with trio.open_nursery() as nursery:
            for handler in list(self.state.handlers):
                if isinstance(handler, H2Handler):
                    nursery.start_soon(handler.shutdown, grace_s)
                else:
                    nursery.start_soon(handler.shutdown)
        with trio.move_on_after(grace_s):
            while self.state.handlers:
                self._handlers_gone = trio.Event()
                await self._handlers_gone.wait()
        self._cancel.cancel()


class _Replay(trio.abc.Stream):
    """A stream that first yields bytes already consumed by sniffing."""

    def __init__(self, inner: trio.SocketStream, first: bytes) -> None:
        self._inner = inner
        self._first = first

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
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
        await close_cleanly(self._inner, drain=True)
