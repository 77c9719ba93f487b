"""HTTP/1.1 with h11: keep-alive, chunked streaming bodies, 100-continue, real 4xx on bad input.

Malformed input is answered once and the connection is closed, as nginx does: one 4xx with the
real JSON error body and ``connection: close``, then a clean FIN (half-close, bounded drain);
nothing after the malformed bytes is parsed or answered. A request head must end its lines with
CRLF: a bare LF (which h11 would accept as a line end) makes the head malformed, so the framing of
whatever follows is never guessed. Complete, well-formed requests sent back to back are answered in
order (HTTP/1.1 pipelining), and the first malformed one ends the connection the same way.
"""

from __future__ import annotations

import re
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

import h11
import trio
from h11._writers import ChunkedWriter as _ChunkedWriter

from ..api.errors import ApiError
from .exchange import ClientGone, Headers, run_exchange
from .sockets import raw_socket, send_now

if TYPE_CHECKING:
    from ..state import ServerState
    from .link import Link

READ_SIZE = 65536
MAX_HEADER_BYTES = 256 * 1024
_HEAD_END = re.compile(rb"\n\r?\n")  # where h11 ends a head
_BARE_LF = re.compile(rb"(?<!\r)\n")


class H1Channel:
    protocol = "http/1.1"

    def __init__(self, handler: H1Handler) -> None:
        self._handler = handler

    def response_started(self) -> bool:
        return self._handler.conn.our_state is not h11.SEND_RESPONSE

    def _head(self, headers: Headers) -> list[tuple[bytes, bytes]]:
        return [*headers, (b"connection", b"close")] if self._handler.last_reply else list(headers)

    async def send_head(self, status: int, headers: Headers) -> None:
        await self._handler.send(h11.Response(status_code=status, headers=self._head(headers), reason=_phrase(status).encode()))

    async def send_body(self, data: bytes) -> None:
        await self._handler.send(h11.Data(data=data))

    async def send_frames(self, pieces: list[bytes]) -> None:
        """Each piece its own chunk, all in one write."""
        handler = self._handler
        conn = handler.conn
        if conn.our_state is h11.SEND_BODY and type(getattr(conn, "_writer", None)) is _ChunkedWriter:
            # h11 would frame each Data exactly so, without changing any state: framed here
            await handler.write(b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces if piece))
        else:
            await handler.send(*[h11.Data(data=piece) for piece in pieces])

    async def end(self) -> None:
        await self._handler.send(h11.EndOfMessage())

    async def send_simple(self, status: int, headers: Headers, body: bytes) -> None:
        head = h11.Response(
            status_code=status, headers=[*self._head(headers), (b"content-length", str(len(body)).encode())], reason=_phrase(status).encode()
        )
        await self._handler.send(head, h11.Data(data=body), h11.EndOfMessage())

    async def send_whole(self, status: int, headers: Headers, body: bytes) -> None:
        """Head, the whole chunked body and its end, in one write."""
        head = h11.Response(status_code=status, headers=self._head(headers), reason=_phrase(status).encode())
        await self._handler.send(head, h11.Data(data=body), h11.EndOfMessage())

    # -- fault primitives ----------------------------------------------------------------------
    async def reset_connection(self) -> None:
        await self._handler.link.reset()

    async def close_connection(self, close_notify: bool) -> None:
        await self._handler.link.fin(close_notify)

    def stop_answering(self) -> None:
        """HTTP/1.1 answers nothing unasked: nothing to stop."""

    async def blackhole(self) -> None:
        await self._handler.link.blackhole()

    async def stall(self, seconds: float) -> None:
        """Send nothing for ``seconds``; notice (and end) if the client leaves meanwhile."""
        handler = self._handler
        with trio.move_on_after(seconds):
            while True:
                try:
                    data = await handler.stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                    raise ClientGone() from error
                if not data:
                    raise ClientGone()
                handler.conn.receive_data(data)  # type: ignore[arg-type]  # pipelined bytes, kept for h11 (see _next_event)

    async def reset_stream(self, code: int) -> None:
        raise NotImplementedError("HTTP/1.1 has no streams")

    async def goaway(self, last_stream_id, code, debug, graceful, grace_s) -> bool:
        raise NotImplementedError("HTTP/1.1 has no GOAWAY")

    async def close_after_reply(self, grace_s: float) -> None:
        """HTTP/1.1's graceful GOAWAY: ``connection: close`` in this reply's head (if not sent
        yet), and the connection closes once the reply is written."""
        self._handler.last_reply = True


class H1Handler:
    """One HTTP/1.1 connection, one request at a time."""

    protocol = "http/1.1"

    def __init__(self, state: ServerState, link: Link, initial: bytes) -> None:
        self.state = state
        self.link = link
        self.stream = link.stream
        self.connection = link.record
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.conn.receive_data(initial)
        self.connection["bytes_in"] += len(initial)
        self.busy = False
        self.closing = False
        self.last_reply = False  # a fault made the reply in flight the connection's last
        self.method = b""
        # plain TCP: writes go straight to the non-blocking socket when the kernel takes them whole
        self._sock = raw_socket(link)

    async def send(self, *events: h11.Event) -> None:
        await self.write(b"".join(self.conn.send(event) or b"" for event in events))

    async def write(self, data: bytes) -> None:
        """Bytes h11 has framed (or would frame so) to the kernel."""
        rest: bytes | memoryview = data
        if self._sock is not None and data:
            try:
                rest = send_now(self._sock, data)
            except OSError as error:
                raise ClientGone() from error
            if not rest:
                return
        try:
            await self.stream.send_all(rest)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise ClientGone() from error

    async def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while True:
            if self.conn.their_state is h11.IDLE:
                _check_head(self.conn.trailing_data[0])
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.conn.they_are_waiting_for_100_continue:
                await self.send(h11.InformationalResponse(status_code=100, headers=[]))
            with trio.move_on_after(self.state.idle_timeout_s if not self.busy else float("inf")):
                data = await self.stream.receive_some(READ_SIZE)
                self.connection["bytes_in"] += len(data)
                # h11 takes any bytes-like (it appends to a bytearray); its annotation says bytes
                self.conn.receive_data(data)  # type: ignore[arg-type]
                continue
            return h11.ConnectionClosed()

    async def run(self) -> str:
        """Serve requests until the peer closes; return how the connection ended."""
        try:
            while not self.closing:
                try:
                    done = await self._serve_one()
                except h11.RemoteProtocolError as error:
                    await self._protocol_error(error)
                    return "protocol_error"
                if done:
                    return done
            return "server_close"
        except (trio.BrokenResourceError, trio.ClosedResourceError, ClientGone):
            return "reset_by_client"

    async def _serve_one(self) -> str | None:
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return "client_close"
        if not isinstance(event, h11.Request):
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
        self.busy = True
        self.method = event.method
        t_headers = time.monotonic()
        limit = self.state.config.max_body_bytes
        declared = _content_length(event.headers)
        body = bytearray()
        too_large = declared is not None and declared > limit
        if too_large:
            await self._reject(ApiError(413, error_type="request_too_large"))
            return "request_too_large"
        while True:
            part = await self._next_event()
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > limit:
                    await self._reject(ApiError(413, error_type="request_too_large"))
                    return "request_too_large"
            elif isinstance(part, h11.EndOfMessage):
                break
            elif isinstance(part, h11.ConnectionClosed):
                return "client_close"
        await run_exchange(
            self.state,
            self.connection,
            None,
            H1Channel(self),
            event.method.decode(),
            event.target.decode("latin-1"),
            event.headers,
            bytes(body),
            t_headers,
        )
        if self.link.closed or self.link.fault_end:
            return self.link.fault_end or "server_close"
        if self.last_reply or self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
            return "server_close"
        if self.conn.our_state is not h11.DONE:
            return "incomplete"
        self.conn.start_next_cycle()
        self.busy = False
        return None

    async def _reject(self, error: ApiError) -> None:
        request_id = self.state.api.new_request_id()
        reply = self.state.api.error_reply(error, request_id)
        headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode()), (b"connection", b"close")]
        body = b"" if self.method == b"HEAD" else reply.body  # a HEAD answer has no body
        await self.send(
            h11.Response(status_code=reply.status, headers=headers, reason=_phrase(reply.status).encode()), h11.Data(data=body), h11.EndOfMessage()
        )

    async def _protocol_error(self, error: h11.RemoteProtocolError) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = error.error_status_hint if 400 <= error.error_status_hint < 500 else 400
        message = f"Malformed HTTP request: {error}"
        request_id = self.state.api.new_request_id()
        body = ApiError(status, message, "invalid_request_error").body(request_id)
        response = (
            f"HTTP/1.1 {status} {_phrase(status)}\r\ncontent-type: application/json\r\nrequest-id: {request_id}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode() + body
        try:
            await self.stream.send_all(response)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def shutdown(self) -> None:
        """Close now if idle; otherwise after the reply in progress."""
        self.closing = True
        if not self.busy:
            await self.stream.aclose()


def _check_head(buffered: bytes) -> None:
    """Refuse a request head (complete or not yet) with a line ended by a bare LF."""
    end = _HEAD_END.search(buffered)
    head = buffered[: end.end()] if end else buffered
    if _BARE_LF.search(head):
        raise h11.RemoteProtocolError("bare LF in the request head: lines must end with CRLF", error_status_hint=400)


def _content_length(headers: Headers) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _phrase(status: int) -> str:
    """The reason phrase: some HTTP/1.1 parsers (h2load's among them) reject an empty one."""
    if status == 529:
        return "Site Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
