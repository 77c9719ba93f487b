"""What every connection handler of the data plane shares; its own module so that the transports
and the control API can name it without importing the server that accepts connections."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from .api.router import MessagesApi
from .config import SimulatorConfig
from .containment import ServerErrors
from .fault_state import FaultState
from .journal import Journal


@dataclass
class ServerState:
    config: SimulatorConfig
    journal: Journal
    api: MessagesApi
    tls_context: ssl.SSLContext | None = None
    idle_timeout_s: float = 300.0
    handlers: set = field(default_factory=set)
    faults: FaultState = field(default_factory=FaultState)
    errors: ServerErrors = field(default_factory=ServerErrors)
