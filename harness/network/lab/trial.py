"""What the runner needs to run a trial in the lab, kept apart from harness/drive/runner.py.

* :class:`LabSession` -- one per run: sweeps what dead owners left, keeps every live
  :class:`TrialLab`, deletes them all at the end, on Ctrl-C and on SIGTERM (turned into
  KeyboardInterrupt while the session is open, in the main thread).
* :func:`outside_faults` / :func:`count_outside_faults` -- faults no simulator journal shows (lab
  events, toxiproxy steps applied) counted in the trial record, so a trial they touched is never
  ``clean``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.network.lab import audit
from harness.network.lab.model import Network
from harness.network.lab.netns import LAB_HOST, Monitor, TrialLab, available, sweep

LAB_TLS_DIR = Path(os.environ.get("STREAMCHAOS_TLS_DIR", Path.home() / ".cache" / "streamchaos" / "tls")).with_name("tls-lab")


def simulator_env() -> dict[str, str]:
    """The simulator of a lab run: its certificate names the lab's host address (198.18.0.1)."""
    return {**os.environ, "STREAMCHAOS_TLS_DIR": str(LAB_TLS_DIR)}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


class LabSession:
    def __init__(self) -> None:
        self.ok, self.reason = available()
        self.swept: list[str] = []
        self._labs: set[TrialLab] = set()
        self._lock = threading.Lock()
        self._previous: Any = None

    def __enter__(self) -> LabSession:
        if self.ok:
            self.swept = sweep()
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            labs = list(self._labs)
            self._labs.clear()
        for lab in labs:
            lab.delete()
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def open(self, network: Network, label: str = "") -> TrialLab:
        lab = TrialLab(network, label)
        with self._lock:
            self._labs.add(lab)
        return lab.create()

    def close(self, lab: TrialLab) -> None:
        lab.delete()
        with self._lock:
            self._labs.discard(lab)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def lab_env(env: Mapping[str, str]) -> dict[str, str]:
    """The client's environment, with the lab's host address beside localhost wherever a no-proxy
    list names it (Claude Code sends everything else to a refusing proxy)."""
    out = dict(env)
    for key in ("NO_PROXY", "no_proxy"):
        if out.get(key) and LAB_HOST not in out[key].split(","):
            out[key] = f"{out[key]},{LAB_HOST}"
    return out


def base_url(port: int, tls: bool) -> str:
    return f"{'https' if tls else 'http'}://{LAB_HOST}:{port}"


def lab_record(lab: TrialLab, monitor: Monitor, port: int) -> dict[str, Any]:
    """The trial record's ``network`` and ``socket_audit`` (under ``extra``)."""
    return {
        "network": {
            "config": lab.network.to_json(),
            "router_addr": lab.router_addr,
            "client_ns": lab.client,
            "setup_s": round(lab.setup_s, 4),
            "events": monitor.events,
            "counters": monitor.counters_final,
            "errors": monitor.errors[:10],
        },
        "socket_audit": audit.summarize(monitor.samples, server_port=port, server_host=LAB_HOST),
    }


def toxic_steps(fired: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {"t": round(f.fired_at, 6), "event": "toxiproxy_step", "step": f.index, "action": f.action, "label": f.label, "error": f.error} for f in fired
    ]


def outside_faults(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Lab events that touched the trial and toxiproxy steps that were applied, in time order."""
    from harness.network.lab.netns import HARMLESS

    events = [e for e in (extra.get("network") or {}).get("events", []) if e.get("event") not in HARMLESS]
    events += [s for s in extra.get("toxic_steps", []) if not s.get("error")]
    return sorted(events, key=lambda e: e.get("t", 0.0))


def count_outside_faults(record: Any) -> None:
    """Add them to ``faults_fired``; a ``clean`` trial they touched becomes ``recovered``."""
    faults = outside_faults(record.extra)
    if not faults:
        return
    record.extra["outside_faults"] = len(faults)
    record.faults_fired += len(faults)
    if record.outcome == "clean":
        record.outcome = "recovered"


def time_to_recover_ms(record: Any) -> float | None:
    """From the first outside fault to the end of the last successful attempt that started after
    it (an attempt lost in the network never reached the simulator's journal)."""
    faults = outside_faults(record.extra)
    if not faults:
        return None
    first = faults[0]["t"]
    ends = [a["t_end"] for group in record.attempts for a in group if a.get("ok") and a.get("t_start", 0) >= first]
    return round((max(ends) - first) * 1000, 3) if ends else None
