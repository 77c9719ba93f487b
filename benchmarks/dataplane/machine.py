"""How busy the server, its core and the machine are (/proc): the CPU figures and the noise guard."""

from __future__ import annotations

import time

from .common import CLK_TCK


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def core_busy_seconds(core: str) -> float:
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith(f"cpu{core} "):
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + values[4]
                return (sum(values[:8]) - idle) / CLK_TCK
    return 0.0


def machine_busy(window_s: float = 1.0) -> float:
    """Fraction of all cores busy over ``window_s`` (our servers are idle while this is sampled)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        return sum(values[:8]), values[3] + values[4]

    total0, idle0 = sample()
    time.sleep(window_s)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(threshold: float, timeout_s: float) -> float:
    """Wait (bounded) until other processes leave the machine mostly idle; return the last busy fraction."""
    deadline = time.monotonic() + timeout_s
    busy = machine_busy()
    while busy > threshold and time.monotonic() < deadline:
        busy = machine_busy()
    return busy
