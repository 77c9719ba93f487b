"""Random draws as a keyed hash, not a stateful generator: a decision never depends on the order
in which concurrent trials happened to arrive, so the same inputs always draw the same number."""

from __future__ import annotations

import hashlib


def uniform(seed: int, *parts: object) -> float:
    """A number in [0, 1) fixed by its inputs."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
