"""The ``[network]`` section of a scenario, as validated values (pure data, no I/O).

Network times are real time: conntrack's timeouts, TCP's retransmission timer and the clients'
keepalive timers run in the kernel and cannot be scaled, so a scenario with ``[network]`` runs at
``time_scale = 1`` and the harness refuses a ``--time-scale`` that would scale it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ON_EVICTED = ("drop", "reset")
LOSS_RESOLUTION = 1000  # nft ``numgen random mod 1000``: loss in steps of 0.1 %


@dataclass(frozen=True, slots=True)
class Blackhole:
    """From ``at_s`` after the client started, for ``for_s``: every packet of the trial dropped."""

    at_s: float
    for_s: float

    @property
    def end_s(self) -> float:
        return self.at_s + self.for_s


@dataclass(frozen=True, slots=True)
class Network:
    nat_idle_s: float | None = None  # conntrack's established timeout in the router (None: the kernel's 5 days)
    on_evicted: str = "drop"  # what an evicted flow's next packet gets: "drop" (silence) or "reset" (an RST)
    loss_up: float = 0.0  # probability a client -> server packet is dropped
    loss_down: float = 0.0  # probability a server -> client packet is dropped
    blackholes: tuple[Blackhole, ...] = field(default_factory=tuple)
    reset_after_bytes: int | None = None  # the middlebox resets a flow once the server sent more than this

    def __post_init__(self) -> None:
        if self.on_evicted not in ON_EVICTED:
            raise ValueError(f"on_evicted must be one of {', '.join(ON_EVICTED)}, not {self.on_evicted!r}")
        for name in ("loss_up", "loss_down"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")

    def to_json(self) -> dict[str, Any]:
        return {
            "nat_idle_s": self.nat_idle_s,
            "on_evicted": self.on_evicted,
            "loss": {"up": self.loss_up, "down": self.loss_down},
            "blackhole": [{"at_s": b.at_s, "for_s": b.for_s} for b in self.blackholes],
            "reset_after_bytes": self.reset_after_bytes,
        }


def loss_threshold(probability: float) -> int:
    """``numgen random mod 1000 < N``: N for a probability (rounded to the nearest 0.1 %)."""
    return round(probability * LOSS_RESOLUTION)
