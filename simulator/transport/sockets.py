"""TCP-level endings, done right: RST only after the peer has what we wrote; FIN without RST."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios

import trio

SIOCOUTQ = getattr(termios, "TIOCOUTQ", 0x5411)  # bytes not yet acknowledged by the peer
DRAIN_TIMEOUT_S = 2.0


def raw_socket(link) -> socket.socket | None:
    """The plain TCP socket under a link, so a write the kernel can take at once needs no trio round
    trip; None over TLS (the bytes must go through the TLS object)."""
    return None if link.tls else getattr(getattr(link.raw, "socket", None), "_sock", None)


def send_now(sock: socket.socket, data: bytes) -> bytes | memoryview:
    """Hand ``data`` to a non-blocking socket without waiting; what the kernel did not take (empty
    when it took everything). OSError when the peer is gone."""
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    return b"" if sent == len(data) else memoryview(data)[sent:]


def unsent_bytes(sock: trio.socket.SocketType) -> int:
    try:
        raw = fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return struct.unpack("i", raw)[0]


async def wait_drained(sock: trio.socket.SocketType, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
    """Wait (bounded) until the kernel's send queue is empty: everything written was ACKed."""
    with trio.move_on_after(timeout_s):
        while unsent_bytes(sock) > 0:  # noqa: ASYNC110 -- the kernel's send queue: no event says when it empties
            await trio.sleep(0.001)
        return True
    return False


async def reset(stream: trio.SocketStream) -> None:
    """Close with RST (SO_LINGER 0) once what was written has reached the peer."""
    await wait_drained(stream.socket)
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    await stream.aclose()


async def close_cleanly(stream: trio.abc.HalfCloseableStream, drain: bool, drain_s: float = 1.0, drain_bytes: int = 1 << 20) -> None:
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
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError, OSError):
        pass
    finally:
        with trio.move_on_after(1):
            try:
                await stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


async def discard_until_eof(stream: trio.abc.Stream) -> None:
    """A black hole: read and drop everything until the peer closes."""
    try:
        while await stream.receive_some(65536):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
