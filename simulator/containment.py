"""A failure of ours stays in the connection or request it happened in.

An exception that escapes a request's or a connection's handler is a simulator bug (clients'
mistakes get 4xx answers long before). It must not end the process: it is logged (the whole
traceback the first time a failure is seen, a line now and then after that), noted in the journal
record it happened in as ``server_error`` with a digest of its traceback (the same bug gives the
same digest), counted in ``GET /health``, and only that request (500, or the stream reset) or
that connection (closed) pays for it.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from collections import deque
from pathlib import Path
from typing import Any

from .records import Record

log = logging.getLogger("streamchaos.server")

MAX_DIGESTS = 1000  # distinct failures whose first traceback was logged (then: counted only)


def leaf(error: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def describe(error: BaseException) -> dict[str, Any]:
    inner = leaf(error)
    frames = traceback.extract_tb(inner.__traceback__)
    signature = "|".join(f"{Path(f.filename).name}:{f.name}:{f.lineno}" for f in frames) + "|" + type(inner).__qualname__
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return {
        "type": type(inner).__qualname__,
        "message": str(inner)[:300],
        "digest": hashlib.sha256(signature.encode()).hexdigest()[:16],
        "at": where,
    }


class ServerErrors:
    def __init__(self) -> None:
        self.count = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=20)
        self._seen: dict[str, int] = {}

    def note(self, error: BaseException, where: str, record: Record | None = None) -> dict[str, Any]:
        """Log and count a contained failure; note it in ``record`` (a journal record) if given."""
        info = {**describe(error), "where": where}
        self.count += 1
        self.recent.append(info)
        if record is not None:
            record["server_error"] = info
        seen = self._seen.get(info["digest"], 0) + 1
        if len(self._seen) < MAX_DIGESTS or info["digest"] in self._seen:
            self._seen[info["digest"]] = seen
        if seen == 1:
            log.error("server error in a %s (contained; digest %s)\n%s", where, info["digest"], "".join(traceback.format_exception(error)).rstrip())
        elif seen & (seen - 1) == 0:  # the 2nd, 4th, 8th ... time: a line, never a flood
            log.error("server error %s (%s: %s) again: %d times so far", info["digest"], info["type"], info["message"], seen)
        return info

    def health(self) -> dict[str, Any]:
        return {"server_errors": self.count, "recent_server_errors": list(self.recent)[-5:]}
