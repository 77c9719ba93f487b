"""Settings of one simulator process, fixed at start."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    seed: int = 0
    default_words: int = 40
    ping_every: int | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    time_to_first_token_s: float = 0.0
    tokens_per_second: float | None = None
    coalesce: bool = True  # False: one write (one DATA frame or chunk) per event
    coalesce_limit: int = 16 * 1024

    def __post_init__(self) -> None:
        if self.default_words < 1:
            raise ValueError("default_words must be at least 1")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        if self.time_to_first_token_s < 0:
            raise ValueError("time_to_first_token_s must not be negative")
        if self.tokens_per_second is not None and self.tokens_per_second <= 0:
            raise ValueError("tokens_per_second must be positive")
