"""Socket audit: the client's TCP sockets as the kernel sees them, sampled during a lab trial.

``ss -tnoiep`` inside the client namespace gives each socket's timer (``keepalive``, ``on`` for
retransmission, ...), its retransmissions and its owner (pid, fd); the owner's socket options
(SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT, TCP_USER_TIMEOUT) are read from a duplicate of its fd
(``pidfd_getfd``), since ``ss`` does not show the configured keepalive idle or the user timeout.
:func:`parse` and :func:`summarize` are pure.
"""

from __future__ import annotations

import ctypes
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TIMER_RE = re.compile(r"timer:\((\w+),([^,]*),(\d+)\)")
USERS_RE = re.compile(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)')
RETRANS_RE = re.compile(r"\bretrans:(\d+)/(\d+)")


def parse(text: str) -> list[dict[str, Any]]:
    """``ss -H -t -n -o -i -e -p`` output: one dict per socket (continuation lines joined)."""
    joined: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[:1].isspace() and joined:
            joined[-1] += " " + line.strip()
        else:
            joined.append(line.strip())
    sockets = []
    for line in joined:
        parts = line.split()
        if len(parts) < 5:
            continue
        item: dict[str, Any] = {"state": parts[0], "local": parts[3], "peer": parts[4]}
        timer = TIMER_RE.search(line)
        if timer:
            item["timer"] = timer.group(1)
            item["timer_left"] = timer.group(2)
        users = USERS_RE.findall(line)
        if users:
            item["process"], item["pid"], item["fd"] = users[0][0], int(users[0][1]), int(users[0][2])
        retrans = RETRANS_RE.search(line)
        item["retrans"] = int(retrans.group(2)) if retrans else 0
        sockets.append(item)
    return sockets


def sample(text: str) -> list[dict[str, Any]]:
    """:func:`parse`, plus each owner's socket options where they can be read."""
    sockets = parse(text)
    for item in sockets:
        if "pid" in item:
            options = socket_options(item["pid"], item["fd"])
            if options:
                item.update(options)
    return sockets


def summarize(samples: Iterable[Iterable[Mapping[str, Any]]], server_port: int | None = None, server_host: str | None = None) -> dict[str, Any]:
    """Per connection to the server (local address:port), what was seen across the samples; and
    for the trial: ``keepalive`` "on (15 s)" / "off" / "unknown" (no socket seen), the largest
    TCP_USER_TIMEOUT, the retransmissions."""
    seen: dict[str, dict[str, Any]] = {}
    count = 0
    for batch in samples:
        count += 1
        for item in batch:
            host, _, port = str(item.get("peer", "")).rpartition(":")
            if server_port is not None and port != str(server_port):
                continue
            if server_host is not None and host != server_host:
                continue
            key = str(item.get("local"))
            entry = seen.setdefault(
                key,
                {
                    "local": key,
                    "peer": item.get("peer"),
                    "process": item.get("process"),
                    "timers": [],
                    "retrans": 0,
                    "keepalive": None,
                    "keepidle_s": None,
                    "user_timeout_ms": None,
                    "states": [],
                },
            )
            if item.get("timer") and item["timer"] not in entry["timers"]:
                entry["timers"].append(item["timer"])
            if item.get("state") and item["state"] not in entry["states"]:
                entry["states"].append(item["state"])
            entry["retrans"] = max(entry["retrans"], int(item.get("retrans", 0)))
            if "keepalive" in item:
                entry["keepalive"] = bool(entry["keepalive"]) or bool(item["keepalive"])
                if item["keepalive"]:
                    entry["keepidle_s"], entry["keepintvl_s"], entry["keepcnt"] = item.get("keepidle_s"), item.get("keepintvl_s"), item.get("keepcnt")
                entry["user_timeout_ms"] = max(entry["user_timeout_ms"] or 0, int(item.get("user_timeout_ms") or 0)) or None
            elif item.get("timer") == "keepalive":
                entry["keepalive"] = True
            if item.get("process"):
                entry["process"] = item["process"]
    sockets = list(seen.values())
    return {
        "samples": count,
        "sockets": sockets,
        "keepalive": keepalive_label(sockets),
        "user_timeout_ms": max((s["user_timeout_ms"] or 0 for s in sockets), default=0) or None,
        "retransmits": sum(s["retrans"] for s in sockets),
    }


def keepalive_label(sockets: Sequence[Mapping[str, Any]]) -> str:
    """ "on (15 s)" when a connection to the server had SO_KEEPALIVE (with its idle), else "off";
    "unknown" when no connection was seen (the client never connected, or did so between samples)."""
    # A socket seen only while connecting says nothing: clients (httpx among them) set their
    # options once connected.
    sockets = [s for s in sockets if any(state != "SYN-SENT" for state in s.get("states") or ["ESTAB"])]
    if not sockets:
        return "unknown"
    on = [s for s in sockets if s.get("keepalive")]
    if not on:
        return "off" if any(s.get("keepalive") is False or s.get("timers") for s in sockets) else "unknown"
    idles = sorted({s["keepidle_s"] for s in on if s.get("keepidle_s")})
    return f"on ({', '.join(f'{i:g} s' for i in idles)})" if idles else "on"


# -- a socket of another process, read with pidfd_getfd (Linux >= 5.6) --------------------------

_libc = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438


def socket_options(pid: int, fd: int) -> dict[str, Any] | None:
    """SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT and TCP_USER_TIMEOUT of ``fd`` in process ``pid``, read
    from a duplicate of it (closing the duplicate leaves the client's socket alone). None if the
    process is gone or the kernel refuses."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        dup = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if dup < 0:
            return None
        sock = socket.socket(fileno=dup)
        try:
            return {
                "keepalive": bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)),
                "keepidle_s": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                "keepintvl_s": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                "keepcnt": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                "user_timeout_ms": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
            }
        except OSError:
            return None
        finally:
            sock.close()
    finally:
        os.close(pidfd)
