"""What every fault type is: a frozen, validated value that knows its own timing, whom it
selects and how it acts, so nothing outside its module asks which type it is.

The writer (:mod:`simulator.transport.exchange`) reads ``acts_as`` to know *where* a fault acts:

* ``CUT``: at its trigger point, through the channel's fault primitives (:meth:`Fault.act`);
* ``REPLY``: replaces the reply before its head is written (:meth:`Fault.reply`, http_error);
* ``PACING``: sets the reply's pacing (``ttft_s``, ``tokens_per_second``, ``jitter``; slow);
* ``EVENT``: rewrites the event it fires at (:meth:`Fault.pieces`, ``gap_s``; malformed_sse).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .facts import RequestFacts
from .validate import coerce

CUT, REPLY, PACING, EVENT = "cut", "reply", "pacing", "event"
NOT_APPLICABLE = "not_applicable"


class FaultEnded(Exception):
    """A terminal fault ended the reply; ``kind`` goes to the journal as its end."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Fault:
    kind: ClassVar[str] = ""
    terminal: ClassVar[bool] = True  # ends the reply (or the connection)
    h2_only: ClassVar[bool] = False
    connection_level: ClassVar[bool] = False  # may fire at accept / after TLS (then :meth:`act_on_link`)
    headers_only: ClassVar[bool] = False  # fires at request headers only
    silences: ClassVar[bool] = False  # stops answering (PINGs too) before its last bytes go out
    acts_as: ClassVar[str] = CUT

    @classmethod
    def from_data(cls, data: Mapping[str, Any], path: str) -> Fault:
        """The fault from a rule's table (keys already checked against :meth:`keys`)."""
        return cls(**{f.name: coerce(data[f.name], f.type, f"{path}.{f.name}") for f in fields(cls) if f.name in data})

    @classmethod
    def keys(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def check(self, path: str) -> None:
        """Validate values; raise PlanError naming the key."""

    def scaled(self, factor: float) -> Fault:
        """The same fault with its durations multiplied by ``factor`` (rates divided by it)."""
        return self

    def durations(self) -> list[tuple[str, float]]:
        """Its durations in seconds, with their keys: what the plan bounds and ``scaled`` scales."""
        return []

    def selects(self, facts: RequestFacts) -> bool:
        """Whether the fault itself takes this request (beyond the rule's selector)."""
        return True

    async def act(self, channel: Any, out: Any) -> bool | str:
        """Carry out a CUT fault: True if the reply goes on, False if it ended, or NOT_APPLICABLE."""
        return NOT_APPLICABLE

    async def act_on_link(self, link: Any) -> None:
        """Carry out a connection-level fault at accept or after TLS (no request exists yet)."""
        raise NotImplementedError(f"{self.kind} does not act on a bare connection")


async def perform(fault: Fault, channel: Any, out: Any) -> bool | str:
    """Carry out ``fault``; True if the reply continues, False if it ended, or NOT_APPLICABLE.

    ``out.flush()`` writes what the reply has batched so far: every fault fires after exactly
    that; ``out.emit(data)`` writes bytes of the fault's own, counted in the journal.
    A silencing fault stops answering *before* the last bytes go out, so that nothing the client
    sends in reaction to them (a PING, say) can still be answered."""
    if fault.silences:
        channel.stop_answering()
    await out.flush()
    return await fault.act(channel, out)
