"""Network namespaces, veth pairs and nftables for lab trials: create, watch, delete, sweep.

Per trial, two namespaces and two veth pairs (nothing is shared between trials, so each has its
own conntrack table, its own NAT address and its own eviction)::

    host (the simulator, toxiproxy)        router namespace                 client namespace
    198.18.0.1/32  sc<pid>h<n>  <--veth-->  host 198.18.H.L/32 | cli 198.19.0.1/30 <--veth--> eth0 198.19.0.2/30
                                            nft: masquerade, conntrack timeouts, loss, resets

Every trial's host-side veth carries the same address, ``198.18.0.1`` (the simulator binds its
lane there, never 0.0.0.0); a /32 route per trial to the router's address ``198.18.H.L`` tells
them apart, and ``ip route add`` failing with "File exists" is the lock that keeps two trials
(of this run or any other) from taking the same address. The client's flows leave the router
masqueraded as ``198.18.H.L``: that is the address and port the simulator journals.

Names carry the owner: namespaces ``sclab-<pid>-<start>-<n>-{r,c}`` (``<start>`` is the owner's
start time in clock ticks, so a reused pid is not mistaken for the owner) and host links
``sc<pid>h<n>``. :func:`sweep` removes only what belongs to a dead owner: other runs and
tests may be using the lab at the same time.

Every veth end has ``gso_max_segs 1``: packets cross the router as they would cross a wire (one
MSS each), not as 64 KiB offload batches, so loss is per packet and conntrack counts real packets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.network.lab import ruleset
from harness.network.lab.audit import sample as audit_sample
from harness.network.lab.model import Network

PREFIX = "sclab"
LAB_HOST = "198.18.0.1"  # the host side of every trial: the simulator's lanes bind here
ROUTER_CLIENT_ADDR = "198.19.0.1"
CLIENT_ADDR = "198.19.0.2"
COMMAND_TIMEOUT_S = 15.0
POLL_S = 0.5
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
NS_RE = re.compile(rf"^{PREFIX}-(\d+)-(\d+)-(\d+)-[rc]$")
LINK_RE = re.compile(r"^sc(\d+)h(\d+)$")


class LabError(RuntimeError):
    """The lab cannot be built or a command in it failed."""


# -- can this process build a lab? -----------------------------------------------------------------


def available() -> tuple[bool, str]:
    """(True, "") or (False, one sentence naming what is missing)."""
    missing = [tool for tool in ("ip", "nft", "ss") if shutil.which(tool) is None]
    if missing:
        return False, f"network lab: {', '.join(missing)} not found (run `make setup`: it installs the nftables and iproute2 packages)"
    caps = _effective_caps()
    lacking = [name for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")) if caps is not None and not caps >> bit & 1]
    if lacking:
        return False, f"network lab: this process lacks {' and '.join(lacking)} (run as root, or in a container with --cap-add NET_ADMIN,SYS_ADMIN)"
    return True, ""


def _effective_caps() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        return None
    return None


# -- owners ----------------------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return int(text.rsplit(")", 1)[1].split()[19])


def owner_alive(pid: int, started: int | None = None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def owner_tag(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{start_time(pid) or 0}"


# -- running commands ------------------------------------------------------------------------------


def run(argv: list[str], stdin: str | None = None, check: bool = True, timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv[:6])}: no answer in {timeout_s:g} s") from None
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv[:8])}: {done.stderr.strip() or done.stdout.strip() or f'exit {done.returncode}'}")
    return done


def in_ns(namespace: str, argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return run(["ip", "netns", "exec", namespace, *argv], stdin, check)


def namespaces() -> list[str]:
    done = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def links() -> list[str]:
    done = run(["ip", "-o", "link", "show"], check=False)
    return [line.split(":")[1].strip().split("@")[0] for line in done.stdout.splitlines() if ":" in line]


def delete_namespace(name: str) -> None:
    """Kill what still runs in it (its processes would keep it alive), then delete it."""
    pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    run(["ip", "netns", "delete", name], check=False)


def sweep(own_pid: int | None = None) -> list[str]:
    """Delete lab namespaces and host links whose owner is dead; return their names."""
    removed = []
    own_pid = os.getpid() if own_pid is None else own_pid
    for name in namespaces():
        match = NS_RE.match(name)
        if not match:
            continue
        pid, started = int(match.group(1)), int(match.group(2))
        if pid != own_pid and not owner_alive(pid, started or None):
            delete_namespace(name)
            removed.append(name)
    for name in links():
        match = LINK_RE.match(name)
        if match and int(match.group(1)) != own_pid and not owner_alive(int(match.group(1))):
            run(["ip", "link", "delete", name], check=False)
            removed.append(name)
    return removed


# -- one trial's lab -------------------------------------------------------------------------------

_counter_lock = threading.Lock()
_counter = [0]


def _next_index() -> int:
    with _counter_lock:
        _counter[0] += 1
        return _counter[0]


@dataclass(eq=False)
class TrialLab:
    """Two namespaces, two veth pairs, one nft table: made by :meth:`create`, gone after :meth:`delete`."""

    network: Network
    label: str = ""
    index: int = field(default_factory=_next_index)
    tag: str = field(default_factory=owner_tag)
    router_addr: str = ""
    created: bool = False
    setup_s: float = 0.0

    @property
    def router(self) -> str:
        return f"{PREFIX}-{self.tag}-{self.index}-r"

    @property
    def client(self) -> str:
        return f"{PREFIX}-{self.tag}-{self.index}-c"

    @property
    def host_link(self) -> str:
        return f"sc{self.tag.split('-')[0]}h{self.index}"

    def create(self) -> TrialLab:
        started = time.monotonic()
        self.created = True  # from here on, delete() has something to clean
        try:
            run(
                ["ip", "-batch", "-"],
                stdin="\n".join(
                    [
                        f"netns add {self.router}",
                        f"netns add {self.client}",
                        f"link add {self.host_link} type veth peer name {ruleset.HOST_IF} netns {self.router}",
                        f"addr add {LAB_HOST}/32 dev {self.host_link}",
                        f"link set {self.host_link} gso_max_segs 1 up",
                    ]
                )
                + "\n",
            )
            self.router_addr = self._claim_address()
            run(
                ["ip", "-n", self.router, "-batch", "-"],
                stdin="\n".join(
                    [
                        "link set lo up",
                        f"addr add {self.router_addr}/32 dev {ruleset.HOST_IF}",
                        f"link set {ruleset.HOST_IF} gso_max_segs 1 up",
                        f"route add {LAB_HOST}/32 dev {ruleset.HOST_IF}",
                        f"route add default via {LAB_HOST} dev {ruleset.HOST_IF} onlink",
                        f"link add {ruleset.CLIENT_IF} type veth peer name eth0 netns {self.client}",
                        f"addr add {ROUTER_CLIENT_ADDR}/30 dev {ruleset.CLIENT_IF}",
                        f"link set {ruleset.CLIENT_IF} gso_max_segs 1 up",
                    ]
                )
                + "\n",
            )
            run(
                ["ip", "-n", self.client, "-batch", "-"],
                stdin="\n".join(
                    [
                        "link set lo up",
                        f"addr add {CLIENT_ADDR}/30 dev eth0",
                        "link set eth0 gso_max_segs 1 up",
                        f"route add default via {ROUTER_CLIENT_ADDR}",
                    ]
                )
                + "\n",
            )
            in_ns(self.router, ["nft", "-f", "-"], stdin=ruleset.render(self.network))
            settings = [f"{key}={value}" for key, value in ruleset.sysctls(self.network).items()]
            in_ns(self.router, ["sysctl", "-q", "-w", *settings])
        except BaseException:
            self.delete()
            raise
        self.setup_s = time.monotonic() - started
        return self

    def _claim_address(self) -> str:
        """A router address no other trial on this host holds: ``ip route add`` is the lock."""
        seed = int(hashlib.sha1(f"{self.tag}-{self.index}".encode()).hexdigest()[:8], 16)
        for attempt in range(512):
            slot = (seed + attempt) % (255 * 254)
            address = f"198.18.{1 + slot // 254}.{1 + slot % 254}"
            done = run(["ip", "route", "add", f"{address}/32", "dev", self.host_link, "src", LAB_HOST], check=False)
            if done.returncode == 0:
                return address
            if "File exists" not in done.stderr:
                raise LabError(f"ip route add {address}/32 dev {self.host_link}: {done.stderr.strip()}")
        raise LabError("no free router address in 198.18.1.0-198.18.255.254 after 512 tries")

    def delete(self) -> None:
        if not self.created:
            return
        for name in (self.client, self.router):
            delete_namespace(name)
        if self.host_link in links():
            run(["ip", "link", "delete", self.host_link], check=False)
        self.created = False

    def wrap(self, argv: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The client's command, run in the client namespace (``ip netns exec`` execs it: same pid)."""
        return ("ip", "netns", "exec", self.client, *argv)

    # -- what the lab did --------------------------------------------------------------------------
    def counters(self) -> dict[str, dict[str, int]]:
        done = in_ns(self.router, ["nft", "-j", "list", "counters", "table", "ip", ruleset.TABLE], check=False)
        out: dict[str, dict[str, int]] = {}
        try:
            items = json.loads(done.stdout or "{}").get("nftables", [])
        except ValueError:
            return out
        for item in items:
            counter = item.get("counter")
            if counter:
                out[counter["name"]] = {"packets": int(counter.get("packets", 0)), "bytes": int(counter.get("bytes", 0))}
        return out

    def set_blackhole(self, on: bool) -> None:
        if on:
            in_ns(self.router, ["nft", "add", "rule", "ip", ruleset.TABLE, "blackhole", *ruleset.blackhole_on().split()])
        else:
            in_ns(self.router, ["nft", "flush", "chain", "ip", ruleset.TABLE, "blackhole"])

    def sockets(self) -> str:
        return in_ns(self.client, ["ss", "-H", "-t", "-n", "-o", "-i", "-e", "-p"], check=False).stdout

    def __enter__(self) -> TrialLab:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()


HARMLESS = ("blackhole_off", "evicted_close_dropped")  # recorded, but they touched no request
EVENT_NAMES = {
    "evicted_close": "evicted_close_dropped",
    "loss_up": "packets_dropped_up",
    "loss_down": "packets_dropped_down",
    "blackhole": "blackhole_dropped",
    "middlebox_reset": "middlebox_reset",
}


def counter_events(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], t: float, on_evicted: str) -> list[dict[str, Any]]:
    """An event per counter that grew between two readings (pure)."""
    events = []
    for name, value in after.items():
        grown = value["packets"] - before.get(name, {}).get("packets", 0)
        if grown > 0:
            event = f"flow_evicted_{on_evicted}" if name == "evicted" else EVENT_NAMES.get(name, name)
            events.append({"t": round(t, 6), "event": event, "packets": grown})
    return events


class Monitor:
    """While the client runs: the black-hole timeline, the nft counters and the socket audit.

    One daemon thread, polling every ``poll_s`` for at most ``max_duration_s``; times are
    ``time.monotonic()`` (the journal's clock) and, in ``t_rel_s``, seconds since the client started."""

    def __init__(
        self, lab: TrialLab, poll_s: float = POLL_S, max_duration_s: float = 3600.0, audit: Callable[[str], list[dict[str, Any]]] | None = None
    ) -> None:
        self.lab, self.poll_s, self.max_duration_s = lab, poll_s, max_duration_s
        self.audit = audit or audit_sample
        self.events: list[dict[str, Any]] = []
        self.samples: list[list[dict[str, Any]]] = []
        self.errors: list[str] = []
        self.started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, dict[str, int]] = {}
        self._blackhole_on = False

    def start(self, started: float | None = None) -> Monitor:
        self.started = time.monotonic() if started is None else started
        self._thread = threading.Thread(target=self._run, name=f"lab-monitor-{self.lab.index}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Monitor:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._tick(final=True)
        if self._blackhole_on:
            self._switch(False, time.monotonic())
        return self

    def _event(self, t: float, event: str, **more: Any) -> None:
        self.events.append({"t": round(t, 6), "t_rel_s": round(t - self.started, 3), "event": event, **more})

    def _switch(self, on: bool, now: float) -> None:
        try:
            self.lab.set_blackhole(on)
            self._blackhole_on = on
            self._event(now, "blackhole_on" if on else "blackhole_off")
        except LabError as error:
            self.errors.append(str(error))

    def _run(self) -> None:
        deadline = self.started + self.max_duration_s
        windows = sorted(self.lab.network.blackholes, key=lambda b: b.at_s)
        while not self._stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            elapsed = now - self.started
            wanted = any(w.at_s <= elapsed < w.end_s for w in windows)
            if wanted != self._blackhole_on:
                self._switch(wanted, now)
            self._tick()
            upcoming = [edge for w in windows for edge in (w.at_s, w.end_s) if edge > elapsed]
            wait = min([self.poll_s, *[edge - elapsed for edge in upcoming]])
            self._stop.wait(max(0.01, wait))

    def _tick(self, final: bool = False) -> None:
        now = time.monotonic()
        try:
            current = self.lab.counters()
        except LabError as error:
            self.errors.append(str(error))
            return
        for event in counter_events(self._last, current, now, self.lab.network.on_evicted):
            self._event(now, event["event"], packets=event["packets"])
        self._last = current
        if not final:
            try:
                self.samples.append(self.audit(self.lab.sockets()))
            except Exception as error:
                self.errors.append(f"socket audit: {type(error).__name__}: {error}")

    @property
    def counters_final(self) -> dict[str, dict[str, int]]:
        return self._last

    def faults(self) -> list[dict[str, Any]]:
        """Events that mean the lab touched the trial (drops, resets, a black-hole window)."""
        return [e for e in self.events if e["event"] not in HARMLESS]
