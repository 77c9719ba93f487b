"""HTTP/2 with h2: one reader task per connection, one task per stream, flow control honoured.

The h2 state machine is shared; every task that changes it flushes ``data_to_send()`` under one
lock, so when a write returns its bytes are in the kernel. A graceful GOAWAY that keeps open
streams running is written with hyperframe, because h2 closes its state machine on GOAWAY.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hpack
import outcome
import trio
from hyperframe.frame import GoAwayFrame

from ..api.errors import ApiError
from .exchange import ClientGone, Headers, run_exchange
from .sockets import raw_socket, send_now

if TYPE_CHECKING:
    from ..state import ServerState
    from .link import Link

READ_SIZE = 65536
RECEIVE_WINDOW = 16 * 1024 * 1024


class CachingEncoder(hpack.Encoder):
    """HPACK that does not redo work for the same response headers.

    Each response carries a unique ``request-id``: sent never-indexed, it leaves the dynamic
    table alone, so once the other headers are all in the table their encoding is the same bytes
    for every response until one of them changes (the rate-limit reset, once a second). Encoding
    them costs more than the rest of a response, so those bytes are kept."""

    UNIQUE = (b"request-id",)

    def __init__(self) -> None:
        super().__init__()
        self._key: tuple | None = None
        self._block = b""
        self._stable = False

    def encode(self, headers, huffman: bool = True) -> bytes:
        headers = list(headers)
        unique = [hpack.NeverIndexedHeaderTuple(n, v) for n, v in headers if n in self.UNIQUE]
        rest = [(n, v) for n, v in headers if n not in self.UNIQUE]
        key = tuple(rest)
        if key == self._key and self._stable and not self.table_size_changes:
            block = self._block
        else:
            before = (len(self.header_table.dynamic_entries), self.header_table._current_size)
            block = super().encode(rest, huffman)
            after = (len(self.header_table.dynamic_entries), self.header_table._current_size)
            self._stable = key == self._key and before == after  # a repeat that changed nothing
            self._key, self._block = key, block
        return block + (super().encode(unique, huffman) if unique else b"")


# Inbound headers are validated (malformed requests get the protocol's answer); outbound ones
# are ours, so h2 need not validate and normalize them on every response.
CONFIG = h2.config.H2Configuration(
    client_side=False,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    logger=h2.config.DummyLogger(),  # h2 logs a debug line per frame: formatting them would cost more than a request
)


class _InboundStream:
    __slots__ = ("body", "headers", "reset_by_peer", "scope", "t_headers", "too_large")

    def __init__(self, headers: list[tuple[bytes, bytes]], t_headers: float) -> None:
        self.headers = headers
        self.body = bytearray()
        self.t_headers = t_headers
        self.too_large = False
        self.scope: trio.CancelScope | None = None
        self.reset_by_peer = False


class H2Channel:
    protocol = "h2"

    def __init__(self, handler: H2Handler, stream_id: int, inbound: _InboundStream) -> None:
        self._h = handler
        self._id = stream_id
        self._inbound = inbound
        self._started = False

    def response_started(self) -> bool:
        return self._started

    @property
    def cancel_reason(self) -> str | None:
        return "reset_by_client" if self._inbound.reset_by_peer else None

    async def send_head(self, status: int, headers: Headers) -> None:
        self._started = True
        self._h.call(self._h.conn.send_headers, self._id, [(b":status", str(status).encode()), *headers])
        await self._h.flush()

    async def send_body(self, data: bytes) -> None:
        await self._h.send_data(self._id, data)

    async def send_frames(self, pieces: list[bytes]) -> None:
        """Each piece its own DATA frame (or more, flow control permitting), flushed together."""
        await self._h.send_pieces(self._id, pieces)

    # -- for the pacer (transport/pacer.py): frame now, the connection writes once per tick -----
    @property
    def can_frame_now(self) -> bool:
        return self._h._sock is not None  # plain TCP: the pacer can write without waiting

    def frame_now(self, pieces: list[bytes]) -> tuple[int, H2Handler]:
        """Each piece its own DATA frame, queued without I/O while flow control and the stream's
        state allow; how many were, and the handler whose ``flush_now`` writes them."""
        return self._h._frame_fast(self._id, pieces, 0), self._h

    async def flush_queued(self) -> None:
        await self._h.flush()

    async def end(self) -> None:
        self._h.call(self._h.conn.end_stream, self._id)
        await self._h.flush()

    async def send_simple(self, status: int, headers: Headers, body: bytes) -> None:
        head = [(b":status", str(status).encode()), *headers, (b"content-length", str(len(body)).encode())]
        self._started = True
        self._h.call(self._h.conn.send_headers, self._id, head, end_stream=not body)
        if body:
            await self._h.send_data(self._id, body, end_stream=True)
        else:
            await self._h.flush()

    async def send_whole(self, status: int, headers: Headers, body: bytes) -> None:
        """HEADERS and the whole body with END_STREAM, flushed together (flow control permitting)."""
        self._started = True
        self._h.call(self._h.conn.send_headers, self._id, [(b":status", str(status).encode()), *headers])
        await self._h.send_data(self._id, body, end_stream=True)

    # -- fault primitives ----------------------------------------------------------------------
    async def reset_connection(self) -> None:
        await self._h.abort(lambda: self._h.link.reset())

    async def close_connection(self, close_notify: bool) -> None:
        await self._h.abort(lambda: self._h.link.fin(close_notify))

    def stop_answering(self) -> None:
        self._h.blackholed = True

    async def blackhole(self) -> None:
        self._h.blackholed = True
        self._h.link.fault_end = self._h.link.fault_end or "fault:blackhole"
        await trio.sleep_forever()  # until the peer leaves and the connection is torn down

    async def stall(self, seconds: float) -> None:
        await trio.sleep(seconds)  # the reader keeps running: PINGs are answered

    async def reset_stream(self, code: int) -> None:
        self._h.call(self._h.conn.reset_stream, self._id, code)
        await self._h.flush()

    async def goaway(self, last_stream_id: int | str, code: int, debug: bytes, graceful: bool, grace_s: float) -> bool:
        """True if this stream is covered by the GOAWAY and goes on."""
        if last_stream_id == "current":
            last = self._id
        elif last_stream_id == "previous":
            last = max(0, self._id - 2)
        else:
            last = int(last_stream_id)
        if graceful:
            await self._h.goaway_graceful(last, code, debug)
            self._h.spawn(self._h.close_after_streams, grace_s, self._id if last < self._id else None)
            return last >= self._id
        await self._h.goaway_abrupt(last, code, debug)
        return False

    async def close_after_reply(self, grace_s: float) -> None:
        """A server's graceful end (nginx's max requests): GOAWAY NO_ERROR covering every stream
        opened so far, this one included (they are all served: the GOAWAY must not disown work
        in progress), then, once they are done (at most ``grace_s``), the final GOAWAY and FIN."""
        await self._h.goaway_graceful(None, 0, b"")
        self._h.spawn(self._h.close_after_streams, grace_s)


class H2Handler:
    protocol = "h2"

    def __init__(self, state: ServerState, link: Link, initial: bytes) -> None:
        self.state = state
        self.link = link
        self.stream = link.stream
        self.connection = link.record
        self.blackholed = False
        self.conn = h2.connection.H2Connection(CONFIG)
        self.conn.encoder = CachingEncoder()
        self._initial = initial
        self._send_lock = trio.Lock()
        self._round: list[trio.lowlevel.Task] | None = None  # streams waiting for the gathered write now being collected
        # plain TCP: a flush writes straight to the non-blocking socket when it can (see flush)
        self._sock = raw_socket(link)
        self._window_changed = trio.Event()
        self._streams: dict[int, _InboundStream] = {}
        self._stream_ended: trio.Event | None = None  # set when a stream leaves _streams, for close_after_streams
        self._nursery: trio.Nursery | None = None
        self.goaway_sent_for: int | None = None  # last_stream_id of a graceful GOAWAY we sent
        self.highest_stream = 0
        self.closed = False

    # -- writing -------------------------------------------------------------------------------
    def call(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as error:
            raise ClientGone() from error

    async def flush_gathered(self) -> None:
        """Like :meth:`flush`, but streams of this connection writing at the same moment (woken
        together by the pacer, or a burst after a stall) share one socket write: the first
        lets the other runnable tasks queue their frames, then writes them all and wakes their
        writers; each returns, as with flush, once its bytes are in the kernel."""
        if len(self._streams) < 2:
            await self.flush()
            return
        waiting = self._round
        if waiting is not None:
            task = trio.lowlevel.current_task()
            waiting.append(task)

            def abort(_raise_cancel) -> trio.lowlevel.Abort:
                waiting.remove(task)  # its frames are queued and still go out with the others
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
            return
        gathered: list[trio.lowlevel.Task] = []
        self._round = gathered
        await trio.lowlevel.cancel_shielded_checkpoint()  # the other tasks due now queue their frames
        self._round = None
        failed = True
        try:
            await self.flush()
            failed = False
        finally:
            for task in gathered:  # an outcome is unwrapped once: one each
                trio.lowlevel.reschedule(task, outcome.Error(ClientGone()) if failed else outcome.Value(None))

    async def flush(self) -> None:
        """Hand everything h2 has queued (any stream's) to the kernel; return once it is there.

        Uncontended, this takes no trio round trip: the lock is taken without waiting and, on
        plain TCP, the bytes go straight to the non-blocking socket; only what the kernel does
        not take at once is left to trio's ``send_all``. Bytes queued by other streams before
        this call leave in the same write."""
        lock = self._send_lock
        if lock.locked():
            async with lock:
                data = self.conn.data_to_send()
                if data:
                    await self._send_all(data)
            return
        data = self.conn.data_to_send()
        if not data:
            return
        lock.acquire_nowait()
        try:
            rest: bytes | memoryview = data
            if self._sock is not None:
                try:
                    rest = send_now(self._sock, data)
                except OSError as error:
                    raise ClientGone() from error
                if not rest:
                    return
            await self._send_all(rest)
        finally:
            lock.release()

    def flush_now(self) -> bool:
        """Hand what h2 has queued to the kernel without waiting: True once all of it is there;
        False if it must wait (the send lock is held, or the kernel took part): the rest stays
        queued, first, for the next :meth:`flush`."""
        if self._sock is None or self._send_lock.locked():
            return False
        data = self.conn.data_to_send()
        if not data:
            return True
        try:
            rest = send_now(self._sock, data)
        except OSError as error:
            raise ClientGone() from error
        if rest:
            self.conn._data_to_send[:0] = rest
            return False
        return True

    async def _send_all(self, data: bytes | memoryview) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise ClientGone() from error

    async def send_raw(self, frame_bytes: bytes) -> None:
        """Write bytes h2 does not know about, after everything h2 has queued."""
        async with self._send_lock:
            data = self.conn.data_to_send() + frame_bytes
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                raise ClientGone() from error

    async def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        if not end_stream and self._frame_fast(stream_id, (data,), 0):  # one frame, the common case
            await self.flush_gathered()
            return
        view = memoryview(data)
        # What fits one frame and the peer's windows as they start waits to leave whole: one DATA
        # frame per event (frame per event) even while other streams use up the window.
        whole = len(view) <= min(self.conn.max_outbound_frame_size, self.conn.remote_settings.initial_window_size, 65535)
        while True:
            window = self.call(self.conn.local_flow_control_window, stream_id)
            size = min(window, self.conn.max_outbound_frame_size, len(view))
            if (size <= 0 and len(view)) or (whole and size < len(view)):
                waiter = self._window_changed
                await self.flush()
                await waiter.wait()
                continue
            last = size == len(view)
            self.call(self.conn.send_data, stream_id, bytes(view[:size]), end_stream=end_stream and last)
            view = view[size:]
            if last:
                break
        await self.flush_gathered()

    async def send_pieces(self, stream_id: int, pieces: list[bytes]) -> None:
        """Each piece in its own DATA frame(s), then one flush for all of them.

        While the stream is half-closed (remote) and the connection open, sending DATA changes
        neither state, so frames that fit both flow-control windows and the frame size are framed
        here and booked exactly as h2 books them (both windows, the outbound buffer), at a
        fraction of h2's cost; anything else (END_STREAM, splitting, waiting for the window, an
        unexpected state) goes through h2."""
        conn = self.conn
        index = 0
        while index < len(pieces):
            index = self._frame_fast(stream_id, pieces, index)
            if index == len(pieces):
                break
            piece = pieces[index]
            if len(piece) <= conn.max_outbound_frame_size and len(piece) <= self.call(conn.local_flow_control_window, stream_id):
                self.call(conn.send_data, stream_id, piece)
                index += 1
                index = self._frame_fast(stream_id, pieces, index)
            else:  # a piece that needs splitting or waiting: what is queued goes first
                await self.send_data(stream_id, piece)
                index += 1
        await self.flush_gathered()

    def _frame_fast(self, stream_id: int, pieces, index: int) -> int:
        """DATA frames (no flags) for pieces[index:] while they fit; the index of the first left."""
        conn = self.conn
        stream = conn.streams.get(stream_id)
        if (
            stream is None
            or stream.state_machine.state is not h2.stream.StreamState.HALF_CLOSED_REMOTE
            or conn.state_machine.state is not h2.connection.ConnectionState.SERVER_OPEN
        ):
            return index
        limit = conn.max_outbound_frame_size
        out = conn._data_to_send
        tail = stream_id.to_bytes(4, "big")
        while index < len(pieces):
            piece = pieces[index]
            size = len(piece)
            if not size or size > limit or size > conn.outbound_flow_control_window or size > stream.outbound_flow_control_window:
                break
            out += size.to_bytes(3, "big") + b"\x00\x00" + tail
            out += piece
            conn.outbound_flow_control_window -= size
            stream.outbound_flow_control_window -= size
            index += 1
        return index

    def _wake_writers(self) -> None:
        self._window_changed.set()
        self._window_changed = trio.Event()

    # -- reading -------------------------------------------------------------------------------
    async def run(self) -> str:
        self.conn.initiate_connection()
        self.conn.update_settings(
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW,
            }
        )
        self.conn.increment_flow_control_window(RECEIVE_WINDOW)
        end = "client_close"
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._receive(self._initial)
                    while not self.closed:
                        data = await self.stream.receive_some(READ_SIZE)
                        if not data:
                            break
                        self.connection["bytes_in"] += len(data)
                        # closed while this read was under way (our final GOAWAY is out: h2 would
                        # answer any frame now with a GOAWAY PROTOCOL_ERROR), or not answering
                        if not self.blackholed and not self.closed:
                            await self._receive(data)
                except h2.exceptions.ProtocolError as error:
                    end = "protocol_error"
                    if self.conn.state_machine.state is not h2.connection.ConnectionState.CLOSED:
                        # h2 queues no GOAWAY for an invalid preface (it fails before any frame)
                        self.conn.close_connection(error_code=getattr(error, "error_code", None) or h2.errors.ErrorCodes.PROTOCOL_ERROR)
                    await self.flush()
                except (trio.BrokenResourceError, trio.ClosedResourceError, ClientGone):
                    end = "reset_by_client"
                nursery.cancel_scope.cancel()
        finally:
            self.closed = True
        return "server_close" if self.goaway_sent_for is not None and end == "client_close" else end

    async def _receive(self, data: bytes | bytearray) -> None:
        if not data:
            return
        for event in self.conn.receive_data(data):
            self._dispatch(event)
        await self.flush()

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.highest_stream = max(self.highest_stream, event.stream_id)
            if self.goaway_sent_for is not None and event.stream_id > self.goaway_sent_for:
                self.conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            self._streams[event.stream_id] = _InboundStream(list(event.headers), time.monotonic())
        elif isinstance(event, h2.events.DataReceived):
            if event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            inbound = self._streams.get(event.stream_id)
            if inbound is not None and not inbound.too_large:
                inbound.body += event.data
                if len(inbound.body) > self.state.config.max_body_bytes:
                    inbound.too_large = True
                    inbound.body = bytearray()
        elif isinstance(event, h2.events.StreamEnded):
            inbound = self._streams.get(event.stream_id)
            if inbound is not None and inbound.scope is None:
                nursery = self._nursery
                assert nursery is not None  # run() opens it before it reads a frame
                inbound.scope = scope = trio.CancelScope()
                nursery.start_soon(self._serve_stream, event.stream_id, inbound, scope)
        elif isinstance(event, h2.events.StreamReset):
            inbound = self._forget(event.stream_id)
            if inbound is not None and inbound.scope is not None:
                inbound.reset_by_peer = True
                inbound.scope.cancel()
            self._wake_writers()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._wake_writers()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True
            for inbound in self._streams.values():
                if inbound.scope is not None:
                    inbound.reset_by_peer = True
                    inbound.scope.cancel()

    async def _serve_stream(self, stream_id: int, inbound: _InboundStream, scope: trio.CancelScope) -> None:
        with scope:
            try:
                pseudo = {k: v for k, v in inbound.headers if k.startswith(b":")}
                headers = [(k, v) for k, v in inbound.headers if not k.startswith(b":")]
                channel = H2Channel(self, stream_id, inbound)
                if inbound.too_large:
                    await self._reject(channel, ApiError(413, error_type="request_too_large"))
                    return
                await run_exchange(
                    self.state,
                    self.connection,
                    stream_id,
                    channel,
                    pseudo.get(b":method", b"").decode("latin-1"),
                    pseudo.get(b":path", b"/").decode("latin-1"),
                    headers,
                    bytes(inbound.body),
                    inbound.t_headers,
                )
            except ClientGone:
                pass
            except Exception as error:  # a bug of ours: this stream pays for it, not the connection
                self.state.errors.note(error, "stream", self.connection)
                try:
                    self.call(self.conn.reset_stream, stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    await self.flush()
                except Exception:
                    pass
            finally:
                self._forget(stream_id)

    def _forget(self, stream_id: int) -> _InboundStream | None:
        """The stream leaves the connection's open streams (close_after_streams hears of it)."""
        inbound = self._streams.pop(stream_id, None)
        ended = self._stream_ended
        if inbound is not None and ended is not None:
            self._stream_ended = None
            ended.set()
        return inbound

    async def _reject(self, channel: H2Channel, error: ApiError) -> None:
        reply = self.state.api.error_reply(error, self.state.api.new_request_id())
        await channel.send_simple(reply.status, reply.headers, reply.body)

    # -- closing -------------------------------------------------------------------------------
    def spawn(self, fn, *args) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    async def abort(self, close) -> None:
        """End the whole connection below HTTP/2 (RST or FIN): no GOAWAY, streams die with it."""
        self.closed = True
        async with self._send_lock:  # nothing h2 queued may follow the close
            await close()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def goaway_abrupt(self, last_stream_id: int, error_code: int, debug: bytes) -> None:
        """GOAWAY then FIN at once: streams above ``last_stream_id`` (and any in flight) are cut."""
        frame = GoAwayFrame(stream_id=0, last_stream_id=last_stream_id, error_code=error_code, additional_data=debug)
        self.goaway_sent_for = last_stream_id
        self.link.fault_end = "fault:goaway"
        try:
            await self.send_raw(frame.serialize())
        except ClientGone:
            pass
        await self.abort(lambda: self.link.fin(close_notify=True))

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def goaway_graceful(self, last_stream_id: int | None = None, error_code: int = 0, debug: bytes = b"") -> None:
        """GOAWAY that lets streams up to ``last_stream_id`` finish; later ones get REFUSED_STREAM."""
        last = self.highest_stream if last_stream_id is None else last_stream_id
        self.goaway_sent_for = last
        frame = GoAwayFrame(stream_id=0, last_stream_id=last, error_code=error_code, additional_data=debug)
        await self.send_raw(frame.serialize())

    async def close_after_streams(self, grace_s: float, abandoned: int | None = None) -> None:
        """Wait (bounded) for open streams, then the final GOAWAY and a clean FIN. ``abandoned``
        is a stream the GOAWAY did not cover: it is not waited for."""
        with trio.move_on_after(grace_s):
            while any(stream_id != abandoned for stream_id in self._streams):
                if self._stream_ended is None:
                    self._stream_ended = trio.Event()
                await self._stream_ended.wait()
        try:
            last = self.goaway_sent_for if self.goaway_sent_for is not None else self.highest_stream
            self.conn.close_connection(last_stream_id=last)
            await self.flush()  # the FIN follows when the connection's owner closes the link
        except (ClientGone, trio.BrokenResourceError, trio.ClosedResourceError, h2.exceptions.ProtocolError):
            pass
        self.closed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def shutdown(self, grace_s: float = 5.0) -> None:
        """GOAWAY, then let the streams finish. A peer that has already closed its socket needs
        no GOAWAY: that is a normal end, not a failure of the server's shutdown."""
        try:
            await self.goaway_graceful()
        except ClientGone:
            pass
        await self.close_after_streams(grace_s)
