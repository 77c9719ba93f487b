"""reset_peer: a close (an RST with the linger trick) after the next chunk (toxiproxy's ``reset_peer`` toxic)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from harness.network.toxiproxy.toxics.base import MAX_MS, Toxic, integer


@dataclass(frozen=True)
class ResetPeerToxic(Toxic):
    """Close ``timeout`` ms after the *next chunk* arrives (an idle connection is left alone).

    The close is an RST only on connections accepted while some ``reset_peer`` toxic was on the
    proxy (toxiproxy sets SO_LINGER 0 at accept); on older connections it is a FIN. Hence the
    linger trick: :meth:`ProxyHandle.arm_rst_on_close`."""

    kind: ClassVar[str] = "reset_peer"
    scaling: ClassVar[Mapping[str, str]] = {"timeout": "duration"}
    timeout: int = 0

    def _check(self) -> None:
        integer(self.kind, "timeout", self.timeout, 0, MAX_MS, "milliseconds")
