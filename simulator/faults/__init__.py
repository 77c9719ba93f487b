"""Faults as data: one small frozen type per failure shape, where it fires, and which requests.

A :class:`~simulator.faults.model.FaultPlan` is validated once; the decisions it makes are a pure
function of (plan, trial, logical request, attempt, connection) — see :mod:`.decide` — so a run can
be replayed and unit-tested with no sockets. The transports only execute what was decided.

Each fault type is one module of :mod:`.kinds` (its type, validation, scaling, action and
registration); :mod:`.base` says what a fault type offers, :mod:`.validate` holds the checks every
part of a plan shares.
"""

from .kinds.blackhole import Blackhole  # noqa: F401
from .kinds.fin import Fin  # noqa: F401
from .kinds.goaway import Goaway  # noqa: F401
from .kinds.http_error import HttpError  # noqa: F401
from .kinds.idle_eviction import IdleEviction  # noqa: F401
from .kinds.malformed_sse import MalformedSse  # noqa: F401
from .kinds.rst_stream import RstStream  # noqa: F401
from .kinds.slow import Slow  # noqa: F401
from .kinds.sse_error import SseError  # noqa: F401
from .kinds.stall import Stall  # noqa: F401
from .kinds.tcp_reset import TcpReset  # noqa: F401
from .kinds.truncated_clean import TruncatedClean  # noqa: F401
from .model import FaultPlan, Rule, Selector, Trigger  # noqa: F401
from .registry import FAULT_TYPES  # noqa: F401
from .validate import PlanError  # noqa: F401
