"""The append-only record of what the simulator saw and did on the wire.

Records (:mod:`simulator.records`, schema in ``docs/journal.md``) are filled in by the transport
that owns them; each is written to the JSONL file once, when it is complete (a request when its reply ended, a connection when it closed), so
the file never holds half a record. Open records are visible through :meth:`Journal.query` with
``"open": true`` so a reader can wait for a connection to finish closing.

Times are ``time.monotonic()`` seconds: the same clock in every process on the machine, so the
harness can compare them with its own.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from .records import ConnectionRecord, Record, RequestRecord

MEMORY_BYTES = 64 * 1024 * 1024  # the in-memory journal's budget (serialized bytes + overhead)
MEMORY_RECORDS = 200_000
FILE_BYTES = 256 * 1024 * 1024  # the journal file is rotated past this size ...
FILE_SEGMENTS = 4  # ... keeping FILE.1 (newest) to FILE.4 (oldest); older segments are deleted
ENTRY_OVERHEAD = 160  # bytes of bookkeeping per record held in memory, beyond its JSON
PAGE_RECORDS = 1000  # GET /journal: records per page by default ...
PAGE_RECORDS_MAX = 10_000  # ... and at most
PAGE_BYTES = 8 * 1024 * 1024  # a page stops before this many bytes (but holds at least one record)


_Entry = tuple[int, tuple[str, ...], str]
_FREED: _Entry = (0, (), "")  # what a slot before head holds: its entry is freed (never read again)


class _Log:
    """Entries ``(seq, keys, json line)`` in seq order; the oldest leave from the front."""

    __slots__ = ("head", "items")

    def __init__(self) -> None:
        self.items: list[_Entry] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.items) - self.head

    def append(self, entry: _Entry) -> None:
        self.items.append(entry)

    def first(self) -> _Entry | None:
        return self.items[self.head] if self.head < len(self.items) else None

    def popleft(self) -> _Entry:
        entry = self.items[self.head]
        self.items[self.head] = _FREED  # freed now, not at the next compaction (bisect never looks before head)
        self.head += 1
        if self.head > 1024 and self.head * 2 > len(self.items):
            del self.items[: self.head]
            self.head = 0
        return entry

    def after(self, since: int) -> int:
        return bisect.bisect_right(self.items, since, lo=self.head, key=lambda entry: entry[0])


class Journal:
    """Records in memory up to a byte budget (oldest evicted first), and every record in the file.

    Committed records are kept as the JSON line written to the file: their memory is counted
    exactly, and a page of them is served without encoding anything again."""

    def __init__(
        self,
        path: Path | None = None,
        memory_limit: int = MEMORY_RECORDS,
        memory_bytes: int = MEMORY_BYTES,
        file_bytes: int = FILE_BYTES,
        file_segments: int = FILE_SEGMENTS,
    ) -> None:
        self.path = path
        # Open for the journal's lifetime (appended to record by record, rotated): close() closes it.
        self._file: IO[str] | None = open(path, "a", buffering=1, encoding="utf-8") if path else None  # noqa: SIM115
        self._file_bytes = path.stat().st_size if path else 0
        self._file_limit = file_bytes
        self._file_segments = file_segments
        self._seq = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._log = _Log()
        self._open: dict[int, Record] = {}
        self._by_key: dict[str, _Log] = {}
        self._memory_limit = memory_limit
        self._memory_bytes = memory_bytes
        self._bytes = 0
        self.evicted = 0
        self.rotations = 0

    # -- connections and requests ----------------------------------------------------------------
    def open_connection(self, peer: str, listener: str) -> ConnectionRecord:
        record = ConnectionRecord(next(self._connection_ids), peer, listener, time.monotonic(), time.time())
        self._open[id(record)] = record
        return record

    def open_request(self, connection: ConnectionRecord, stream_id: int | None, request_id: str, info: Any, t_headers: float) -> RequestRecord:
        key = info.api_key
        if key is not None and key not in connection.keys:
            connection.keys.append(key)
        connection.requests += 1
        record = RequestRecord(
            request_id,
            connection.conn,
            stream_id,
            connection.protocol,
            connection.tls,
            key,
            info.retry_count,
            info.user_agent,
            info.method,
            info.path,
            info.body_sha256,
            info.body_bytes,
            t_headers,
            time.monotonic(),
        )
        self._open[id(record)] = record
        return record

    def finish(self, record: Record, end: str) -> None:
        """End a connection or a request: stamp its end and write it (once; later calls do nothing)."""
        if not record.open:
            return
        record.open = False
        now = time.monotonic()
        if isinstance(record, RequestRecord):
            record.t_end = now
        else:
            record.t_close = now
        record.end = end
        self._open.pop(id(record), None)
        self._commit(record)

    @staticmethod
    def wrote(record: RequestRecord, events: int, nbytes: int) -> None:
        """Note bytes handed to the kernel: ``writes`` holds [events so far, bytes so far, time]."""
        now = time.monotonic()
        if record.t_first_byte is None:
            record.t_first_byte = now
        record.events_out += events
        record.bytes_out += nbytes
        record.writes.append((record.events_out, record.bytes_out, now))  # a tuple of numbers: the GC stops tracking it

    # -- reading -------------------------------------------------------------------------------
    def page(self, key: str | None = None, since: int = 0, limit: int = PAGE_RECORDS, max_bytes: int = PAGE_BYTES) -> tuple[list[str], int | None]:
        """JSON lines of committed records after ``since`` (at most ``limit`` of them and about
        ``max_bytes``), then, on the last page, the open ones; and the cursor of the next page
        (None on the last). A key selects its requests, the connections that carried them and the
        connections of its lane (which may have carried none)."""
        log = self._log if key is None else self._by_key.get(key)
        lines: list[str] = []
        cursor = None
        if log is not None:
            index, size = log.after(since), 0
            while index < len(log.items):
                _, _, line = log.items[index]
                if len(lines) >= limit or (lines and size + len(line) > max_bytes):
                    cursor = log.items[index - 1][0]
                    break
                lines.append(line)
                size += len(line)
                index += 1
        if cursor is None:
            lines += [_line(r) for r in self._open.values() if key is None or key in r.journal_keys()]
        return lines, cursor

    def query(self, key: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Every record in memory after ``since`` (committed, then open), as dicts."""
        out: list[dict[str, Any]] = []
        while True:
            lines, cursor = self.page(key, since, PAGE_RECORDS_MAX)
            out += [json.loads(line) for line in lines]
            if cursor is None:
                return out
            since = cursor

    def stats(self) -> dict[str, Any]:
        first = self._log.first()
        return {
            "records": len(self._log),
            "bytes": self._bytes,
            "memory_bytes_limit": self._memory_bytes,
            "memory_records_limit": self._memory_limit,
            "evicted": self.evicted,
            "oldest_seq": first[0] if first else None,
            "open": len(self._open),
            "file": str(self.path) if self.path else None,
            "file_bytes": self._file_bytes,
            "file_bytes_limit": self._file_limit,
            "rotations": self.rotations,
        }

    def reset(self) -> None:
        """Forget every committed record held in memory (the file keeps them)."""
        self._log = _Log()
        self._by_key = {}
        self._bytes = 0

    def close(self) -> None:
        """Write every open record (requests first, then their connections) and close the file."""
        for record in list(self._open.values()):
            if isinstance(record, RequestRecord):
                self.finish(record, "shutdown")
        for record in list(self._open.values()):
            self.finish(record, "shutdown")
        if self._file:
            self._file.close()
            self._file = None

    def _commit(self, record: Record) -> None:
        seq = record.seq = next(self._seq)
        line = _line(record)
        if self._file:
            self._write(line + "\n")
        entry = (seq, record.journal_keys(), line)
        self._log.append(entry)
        self._bytes += len(line) + ENTRY_OVERHEAD
        for key in entry[1]:
            bucket = self._by_key.get(key)
            if bucket is None:
                bucket = self._by_key[key] = _Log()
            bucket.append(entry)
        while len(self._log) > 1 and (self._bytes > self._memory_bytes or len(self._log) > self._memory_limit):
            self._evict()

    def _evict(self) -> None:
        seq, keys, line = self._log.popleft()
        self._bytes -= len(line) + ENTRY_OVERHEAD
        self.evicted += 1
        for key in keys:
            bucket = self._by_key.get(key)
            if bucket is not None:
                first = bucket.first()
                if first is not None and first[0] == seq:
                    bucket.popleft()
                if not len(bucket):
                    del self._by_key[key]

    def _write(self, line: str) -> None:
        """Append a line (json.dumps writes ASCII: characters are bytes); rotate past the limit."""
        if self._file_bytes and self._file_bytes + len(line) > self._file_limit:
            self._rotate()
        if self._file is not None:  # always: only a journal with a file writes
            self._file.write(line)
            self._file_bytes += len(line)

    def _rotate(self) -> None:
        """FILE becomes FILE.1, FILE.1 becomes FILE.2 ...; the segment past the last is deleted."""
        path = self.path
        if self._file is None or path is None:  # no file: nothing to rotate (never, as _write is only called with one)
            return
        self._file.close()
        oldest = path.with_name(f"{path.name}.{self._file_segments}")
        if oldest.exists():
            oldest.unlink()
        for number in range(self._file_segments - 1, 0, -1):
            segment = path.with_name(f"{path.name}.{number}")
            if segment.exists():
                os.replace(segment, path.with_name(f"{path.name}.{number + 1}"))
        if self._file_segments > 0:
            os.replace(path, path.with_name(f"{path.name}.1"))
        else:
            path.unlink()
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (the journal's file, kept open as in __init__)
        self._file_bytes = 0
        self.rotations += 1


def _line(record: Record) -> str:
    return json.dumps(record.to_json(), separators=(",", ":"))


def load(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
