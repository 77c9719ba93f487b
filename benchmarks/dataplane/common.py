"""What every part of the data-plane benchmark shares: where things are, the cores, the targets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # benchmarks/
ROOT = HERE.parent
CACHE = HERE / ".cache"
for _path in (str(HERE), str(ROOT)):
    if _path not in sys.path:
        sys.path.append(_path)

PROTOCOLS = ("h2c", "h1", "h2-tls")
PROTOCOL_TITLES = {"h2c": "h2c", "h1": "HTTP/1.1", "h2-tls": "h2+TLS"}
SERVERS = ("streamchaos", "streamchaos-fpe", "hypercorn", "aimock", "mockserver")
SERVER_CORE = "0"
LOAD_CORE = "1"
HOST = "127.0.0.1"
AIMOCK_VERSION = "1.43.0"
# 7.x is published without its parent POM (org.mock-server:mockserver:pom), so it cannot be resolved.
MOCKSERVER_VERSION = "6.1.0"
TARGETS = {"h2c": 1200.0, "h1": 900.0}
TARGET_RATIO = 1.5
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
