"""A small blocking HTTP/1.1 keep-alive client on a raw socket (for many requests in a test):
reads each response by its content-length or its chunked framing, so nothing waits for a close."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

from simulator import sse


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def events(self) -> list[sse.Event]:
        return sse.Decoder().feed(self.body)


class KeepAlive:
    def __init__(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: dict | bytes | None = None, key: str = "k", headers: dict | None = None) -> Response:
        payload = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        lines = [
            f"{method} {path} HTTP/1.1",
            "host: localhost",
            f"x-api-key: {key}",
            "content-type: application/json",
            f"content-length: {len(payload)}",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        return self.read_response(head_only=method == "HEAD")

    def _fill(self, deadline: float) -> None:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def _take_line(self, deadline: float) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill(deadline)
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _take(self, size: int, deadline: float) -> bytes:
        while len(self.buffer) < size:
            self._fill(deadline)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_response(self, head_only: bool = False) -> Response:
        deadline = time.monotonic() + self.timeout_s
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split(" ", 2)[1])
        if head_only:
            return Response(status, headers, b"")
        if "content-length" in headers:
            return Response(status, headers, self._take(int(headers["content-length"]), deadline))
        parts = []
        while True:
            size = int(self._take_line(deadline).split(b";")[0], 16)
            if size == 0:
                self._take_line(deadline)
                return Response(status, headers, b"".join(parts))
            parts.append(self._take(size, deadline))
            self._take(2, deadline)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> KeepAlive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def messages_body(prompt: str, stream: bool = False, max_tokens: int = 200, **extra) -> dict:
    return {"model": "claude-sonnet-4-6", "max_tokens": max_tokens, "stream": stream, "messages": [{"role": "user", "content": prompt}], **extra}


def assert_api_error(response: Response, status: int, error_type: str, *fragments: str) -> str:
    """The real Messages API error body; returns its message."""
    assert response.status == status, (response.status, response.body[:300])
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type, body
    assert body["request_id"].startswith("req_"), body
    for fragment in fragments:
        assert fragment in body["error"]["message"], body
    return body["error"]["message"]
