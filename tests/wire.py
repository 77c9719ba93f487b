"""Wire-level probes: what a client sees, frame by frame and byte by byte.

:class:`H2Probe` is a small blocking HTTP/2 client written directly with hyperframe and hpack,
independent of any client library: it logs every frame it receives and answers only what a client
must (SETTINGS ACK, WINDOW_UPDATE, PING ACK unless told not to), so a test can assert "exactly N
events, then RST_STREAM(INTERNAL_ERROR)" or "PING answered during a stall". :func:`h1_exchange`
sends one HTTP/1.1 request on a raw socket and reports how the connection ended: EOF (FIN) or
ECONNRESET (RST).
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import hpack
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame

from simulator import sse

FRAME_HEADER = 9
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class LoggedFrame:
    t: float
    frame: Frame

    @property
    def kind(self) -> str:
        return type(self.frame).__name__.replace("Frame", "").upper()


@dataclass
class H2Probe:
    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    timeout_s: float = 5.0
    initial_window: int | None = None
    answer_pings: bool = True
    frames: list[LoggedFrame] = field(default_factory=list)
    closed: str | None = None  # "eof" | "reset" once the connection ended

    def __post_init__(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            context = ssl.create_default_context(cafile=self.ca_file)
            context.set_alpn_protocols(["h2"])
            raw = context.wrap_socket(raw, server_hostname="localhost")
            assert raw.selected_alpn_protocol() == "h2", raw.selected_alpn_protocol()
        self.sock = raw
        self._encoder = hpack.Encoder()
        self._next_stream = 1
        self._buffer = b""
        self._reset_seen = False
        settings = {SettingsFrame.INITIAL_WINDOW_SIZE: self.initial_window} if self.initial_window is not None else {}
        self.sock.sendall(PREFACE + SettingsFrame(0, settings=settings).serialize())

    # -- sending -------------------------------------------------------------------------------
    def send_frame(self, frame: Frame) -> None:
        self.sock.sendall(frame.serialize())

    def request(
        self, path: str = "/v1/messages", body: dict | bytes | None = None, headers: dict | None = None, method: str = "POST", key: str = "probe"
    ) -> int:
        stream_id = self._next_stream
        self._next_stream += 2
        payload = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        head = [
            (":method", method),
            (":path", path),
            (":scheme", "https" if self.tls else "http"),
            (":authority", f"localhost:{self.port}"),
            ("x-api-key", key),
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
        ]
        head += list((headers or {}).items())
        flags = ["END_HEADERS"] + ([] if payload else ["END_STREAM"])
        out = [HeadersFrame(stream_id, data=self._encoder.encode(head), flags=flags).serialize()]
        for offset in range(0, len(payload), 16384):
            last = offset + 16384 >= len(payload)
            out.append(DataFrame(stream_id, data=payload[offset : offset + 16384], flags=["END_STREAM"] if last else []).serialize())
        self.sock.sendall(b"".join(out))
        return stream_id

    def ping(self, opaque: bytes = b"probe123") -> None:
        self.send_frame(PingFrame(0, opaque_data=opaque))

    # -- receiving -----------------------------------------------------------------------------
    def read_until(self, done: Callable[[H2Probe], bool], timeout_s: float | None = None) -> bool:
        """Read frames until ``done(self)`` or the connection ends or the timeout passes."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        while not done(self):
            if self.closed:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except (ConnectionResetError, ssl.SSLError):
                self.closed = "reset"
                return done(self)
            if not chunk:
                self.closed = "reset" if self._reset_seen else "eof"
                return done(self)
            self._absorb(chunk)
        return True

    def _absorb(self, chunk: bytes) -> None:
        """Log complete frames; answer what any client must (SETTINGS ACK, WINDOW_UPDATE) and
        PINGs only when ``answer_pings`` says so."""
        self._buffer += chunk
        now = time.monotonic()
        replies: list[bytes] = []
        while len(self._buffer) >= FRAME_HEADER:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:FRAME_HEADER]))
            if len(self._buffer) < FRAME_HEADER + length:
                break
            frame.parse_body(memoryview(self._buffer[FRAME_HEADER : FRAME_HEADER + length]))
            self.frames.append(LoggedFrame(now, frame))
            self._buffer = self._buffer[FRAME_HEADER + length :]
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                replies.append(SettingsFrame(0, flags=["ACK"]).serialize())
            elif isinstance(frame, DataFrame) and frame.flow_controlled_length:
                size = frame.flow_controlled_length
                replies.append(WindowUpdateFrame(0, window_increment=size).serialize())
                replies.append(WindowUpdateFrame(frame.stream_id, window_increment=size).serialize())
            elif isinstance(frame, PingFrame) and "ACK" not in frame.flags and self.answer_pings:
                replies.append(PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]).serialize())
        if replies:
            try:
                self.sock.sendall(b"".join(replies))
            except ConnectionResetError:
                # The kernel reports a peer's RST once, to whichever call comes first: here.
                # Data that arrived before it is still queued, so reading goes on until EOF.
                self._reset_seen = True
            except OSError:
                pass

    # -- views ---------------------------------------------------------------------------------
    def of(self, kind: type[Frame], stream_id: int | None = None) -> list[Frame]:
        return [f.frame for f in self.frames if isinstance(f.frame, kind) and (stream_id is None or f.frame.stream_id == stream_id)]

    def data(self, stream_id: int) -> bytes:
        return b"".join(f.data for f in self.of(DataFrame, stream_id))

    def events(self, stream_id: int) -> list[sse.Event]:
        return sse.Decoder().feed(self.data(stream_id))

    def ended(self, stream_id: int) -> bool:
        for f in self.frames:
            frame = f.frame
            if frame.stream_id == stream_id and isinstance(frame, (DataFrame, HeadersFrame)) and "END_STREAM" in frame.flags:
                return True
            if frame.stream_id == stream_id and isinstance(frame, RstStreamFrame):
                return True
        return False

    def kinds(self, stream_id: int | None = None) -> list[str]:
        return [f.kind for f in self.frames if stream_id is None or f.frame.stream_id in (0, stream_id)]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> H2Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class H1Result:
    head: bytes
    body: bytes
    ended: str  # "eof" | "reset" | "timeout" | "complete"
    elapsed_s: float

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1]) if self.head else 0

    def events(self) -> list[sse.Event]:
        return sse.Decoder().feed(dechunk(self.body))


def h1_exchange(
    host: str, port: int, request: bytes, timeout_s: float = 5.0, tls: bool = False, ca_file: str | None = None, until_complete: bool = False
) -> H1Result:
    """Send raw bytes; read until the peer closes (or, with ``until_complete``, until the chunked
    body's last chunk) and say how it closed."""
    started = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except ConnectionResetError:  # a reset at accept can beat connect()'s own return
        return H1Result(b"", b"", "reset", time.monotonic() - started)
    if tls:
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(["http/1.1"])
        sock = context.wrap_socket(sock, server_hostname="localhost")
    data = b""
    ended = "timeout"
    try:
        try:
            sock.sendall(request)
        except (ConnectionResetError, BrokenPipeError):
            return H1Result(b"", b"", "reset", time.monotonic() - started)
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                ended = "reset"
                break
            if not chunk:
                ended = "eof"
                break
            data += chunk
            if until_complete and data.endswith(b"\r\n0\r\n\r\n"):
                ended = "complete"
                break
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return H1Result(head, body, ended, time.monotonic() - started)


def post(path: str, body: dict | bytes, key: str = "probe", extra: str = "") -> bytes:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nhost: localhost\r\nx-api-key: {key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n{extra}\r\n"
    ).encode() + payload


def dechunk(body: bytes) -> bytes:
    """The payload of a chunked body, as far as it goes (a truncated body yields what arrived)."""
    out, rest = [], body
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


__all__ = [
    "DataFrame",
    "GoAwayFrame",
    "H2Probe",
    "HeadersFrame",
    "PingFrame",
    "RstStreamFrame",
    "SettingsFrame",
    "WindowUpdateFrame",
    "dechunk",
    "h1_exchange",
    "post",
]
