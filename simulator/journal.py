"""The append-only record of what the simulator saw and did on the wire.

Records are plain dicts owned by the transport that fills them in; each is written to the JSONL
file once, when it is complete (a request when its reply ended, a connection when it closed), so
the file never holds half a record. Open records are visible through :meth:`Journal.query` with
``"open": true`` so a reader can wait for a connection to finish closing.

Times are ``time.monotonic()`` seconds: the same clock in every process on the machine, so the
harness can compare them with its own.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from pathlib import Path
from typing import Any, IO, Iterable

Record = dict[str, Any]


class Journal:
    def __init__(self, path: Path | None = None, memory_limit: int = 200_000) -> None:
        self.path = path
        self._file: IO[str] | None = open(path, "a", buffering=1, encoding="utf-8") if path else None
        self._seq = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._records: deque[Record] = deque()
        self._open: dict[int, Record] = {}
        self._by_key: dict[str, list[Record]] = {}
        self._memory_limit = memory_limit

    # -- connections ---------------------------------------------------------------------------
    def open_connection(self, peer: str, listener: str) -> Record:
        record: Record = {
            "kind": "connection",
            "conn": next(self._connection_ids),
            "peer": peer,
            "listener": listener,
            "tls": False,
            "alpn": None,
            "protocol": None,
            "t_accept": time.monotonic(),
            "wall_accept": time.time(),
            "keys": [],
            "requests": 0,
            "bytes_in": 0,
            "faults": [],
            "open": True,
        }
        self._open[id(record)] = record
        return record

    def close_connection(self, record: Record, end: str) -> None:
        if not record.get("open"):
            return
        record["open"] = False
        record["t_close"] = time.monotonic()
        record["end"] = end
        self._open.pop(id(record), None)
        self._commit(record)

    # -- requests ------------------------------------------------------------------------------
    def open_request(self, connection: Record, stream_id: int | None, request_id: str, info: Any, t_headers: float) -> Record:
        key = info.api_key
        if key is not None and key not in connection["keys"]:
            connection["keys"].append(key)
        connection["requests"] += 1
        record: Record = {
            "kind": "request",
            "request_id": request_id,
            "conn": connection["conn"],
            "stream_id": stream_id,
            "protocol": connection["protocol"],
            "tls": connection["tls"],
            "key": key,
            "retry_count": info.retry_count,
            "user_agent": info.user_agent,
            "method": info.method,
            "path": info.path,
            "body_sha256": info.body_sha256,
            "body_bytes": info.body_bytes,
            "t_headers": t_headers,
            "t_body": time.monotonic(),
            "status": None,
            "stream": False,
            "conversation": None,
            "t_first_byte": None,
            "writes": [],
            "events_out": 0,
            "bytes_out": 0,
            "faults": [],
            "open": True,
        }
        self._open[id(record)] = record
        return record

    def close_request(self, record: Record, end: str) -> None:
        if not record.get("open"):
            return
        record["open"] = False
        record["t_end"] = time.monotonic()
        record["end"] = end
        self._open.pop(id(record), None)
        self._commit(record)

    @staticmethod
    def wrote(record: Record, events: int, nbytes: int) -> None:
        """Note bytes handed to the kernel: ``writes`` holds [events so far, bytes so far, time]."""
        now = time.monotonic()
        if record["t_first_byte"] is None:
            record["t_first_byte"] = now
        record["events_out"] += events
        record["bytes_out"] += nbytes
        record["writes"].append([record["events_out"], record["bytes_out"], now])

    # -- reading -------------------------------------------------------------------------------
    def query(self, key: str | None = None, since: int = 0) -> list[Record]:
        """Committed records then open ones; a key selects its requests, the connections that
        carried them and the connections of its lane (which may have carried none)."""
        committed = self._records if key is None else self._by_key.get(key, ())
        return [r for r in itertools.chain(committed, self._open.values()) if _matches(r, key) and r.get("seq", 1 << 62) > since]

    def reset(self) -> None:
        self._records.clear()
        self._by_key.clear()

    def close(self) -> None:
        for record in list(self._open.values()):
            if record["kind"] == "request":
                self.close_request(record, "shutdown")
        for record in list(self._open.values()):
            self.close_connection(record, "shutdown")
        if self._file:
            self._file.close()
            self._file = None

    def _commit(self, record: Record) -> None:
        record["seq"] = next(self._seq)
        if self._file:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._records.append(record)
        for key in _keys_of(record):
            self._by_key.setdefault(key, []).append(record)
        while len(self._records) > self._memory_limit:
            dropped = self._records.popleft()
            for key in _keys_of(dropped):
                bucket = self._by_key.get(key)
                if bucket and bucket[0] is dropped:
                    bucket.pop(0)
                if not bucket:
                    self._by_key.pop(key, None)


def _matches(record: Record, key: str | None) -> bool:
    return key is None or key in _keys_of(record)


def _keys_of(record: Record) -> tuple[str, ...]:
    if record["kind"] == "request":
        return (record["key"],) if record["key"] is not None else ()
    lane = record.get("lane")
    return tuple(record["keys"]) + ((lane,) if lane is not None and lane not in record["keys"] else ())


def load(path: Path) -> Iterable[Record]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
