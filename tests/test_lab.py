"""The network lab: the ruleset and the [network] format (pure), then on the wire as root.

Wire tests use short real times (NAT timeouts of 2 s): kernel timers cannot be scaled. Every
test that builds a lab checks afterwards that no namespace, link or nft table of this process
is left. Without CAP_NET_ADMIN (or without ``ip``/``nft``) they skip with the reason, and fail
under CI=true.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness import scenario
from harness.clients import registry
from harness.drive import runner
from harness.network.lab import audit, netns, ruleset
from harness.network.lab.model import Blackhole, Network
from harness.network.lab.netns import LAB_HOST, Monitor, TrialLab
from tests.support import IN_CI, ROOT

PY = sys.executable


# -- pure: the ruleset, the format, the audit ------------------------------------------------------


def test_ruleset_renders_exactly_for_every_key():
    text = ruleset.render(Network(nat_idle_s=20, on_evicted="reset", loss_up=0.05, loss_down=0.1, reset_after_bytes=5000))
    assert text == textwrap.dedent("""\
        table ip streamchaos {
        \tcounter evicted_close {
        \t}
        \tcounter evicted {
        \t}
        \tcounter loss_up {
        \t}
        \tcounter loss_down {
        \t}
        \tcounter blackhole {
        \t}
        \tcounter middlebox_reset {
        \t}
        \tchain blackhole {
        \t}
        \tchain forward {
        \t\ttype filter hook forward priority filter; policy accept;
        \t\tjump blackhole
        \t\tct state invalid tcp flags & (fin | rst) != 0 counter name "evicted_close" drop
        \t\tct state invalid meta l4proto tcp counter name "evicted" reject with tcp reset
        \t\tct state invalid counter name "evicted" drop
        \t\tct mark 0x00000001 counter name "middlebox_reset" reject with tcp reset
        \t\tiifname "host" ct reply bytes > 5000 ct mark set 0x00000001
        \t\tiifname "cli" numgen random mod 1000 < 50 counter name "loss_up" drop
        \t\tiifname "host" numgen random mod 1000 < 100 counter name "loss_down" drop
        \t}
        \tchain input {
        \t\ttype filter hook input priority filter; policy accept;
        \t\tjump blackhole
        \t\tct state invalid tcp flags & (fin | rst) != 0 counter name "evicted_close" drop
        \t\tct state invalid meta l4proto tcp counter name "evicted" reject with tcp reset
        \t\tct state invalid counter name "evicted" drop
        \t}
        \tchain postrouting {
        \t\ttype nat hook postrouting priority srcnat; policy accept;
        \t\toifname "host" masquerade
        \t}
        }
        """)


def test_ruleset_of_a_plain_nat_only_drops_what_conntrack_forgot():
    text = ruleset.render(Network(nat_idle_s=2))
    assert "reject" not in text and "numgen" not in text and "ct reply bytes" not in text
    assert text.count('ct state invalid counter name "evicted" drop') == 2
    assert ruleset.sysctls(Network(nat_idle_s=2)) == {
        "net.ipv4.ip_forward": "1",
        "net.netfilter.nf_conntrack_acct": "1",
        "net.netfilter.nf_conntrack_tcp_loose": "0",
        "net.netfilter.nf_conntrack_tcp_timeout_established": "2",
    }
    assert "nf_conntrack_tcp_timeout_established" not in ruleset.sysctls(Network())


def load_text(tmp_path: Path, text: str) -> scenario.Scenario:
    path = tmp_path / "lab.toml"
    path.write_text(textwrap.dedent(text))
    return scenario.load(path)


def test_network_section_loads():
    item = scenario.from_data(
        {
            "version": 1,
            "network": {
                "nat_idle_s": 20,
                "on_evicted": "reset",
                "loss": {"up": 0.05, "down": 0.1},
                "blackhole": [{"at_s": 1, "for_s": 2}, {"at_s": 5, "for_s": 1}],
                "reset_after_bytes": 9000,
            },
        },
        "x.toml",
    )
    assert item.needs_lab
    assert item.network == Network(20.0, "reset", 0.05, 0.1, (Blackhole(1.0, 2.0), Blackhole(5.0, 1.0)), 9000)


@pytest.mark.parametrize(
    "text,key,fix",
    [
        ("[network]\nnat_idle = 5\n", "network.nat_idle", "did you mean 'nat_idle_s'"),
        ("[network]\nnat_idle_s = 0.5\n", "network.nat_idle_s", ">= 1"),
        ("[network]\nnat_idle_s = 5\non_evicted = 'rst'\n", "network.on_evicted", "drop, reset"),
        ("[network]\non_evicted = 'reset'\n", "network.on_evicted", "needs nat_idle_s"),
        ("[network]\nloss = { up = 0.7 }\n", "network.loss.up", "between 0 and 0.5"),
        ("[network]\nloss = { sideways = 0.1 }\n", "network.loss.sideways", "unknown key"),
        ("[network]\n[[network.blackhole]]\nat_s = 1\n", "network.blackhole[0]", "needs at_s and for_s"),
        ("[network]\n[[network.blackhole]]\nat_s = 1\nfor_s = 0\n", "network.blackhole[0].for_s", "> 0"),
        (
            "[network]\n[[network.blackhole]]\nat_s = 5\nfor_s = 2\n[[network.blackhole]]\nat_s = 6\nfor_s = 1\n",
            "network.blackhole[1].at_s",
            "not overlap",
        ),
        ("[network]\nreset_after_bytes = 0\n", "network.reset_after_bytes", "at least 1"),
        ("time_scale = 0.1\n[network]\nnat_idle_s = 5\n", "time_scale", "real time"),
    ],
)
def test_bad_network_sections_name_the_file_the_key_and_the_fix(tmp_path, text, key, fix):
    with pytest.raises(scenario.ScenarioError) as error:
        load_text(tmp_path, "version = 1\n" + text)
    assert str(tmp_path / "lab.toml") in str(error.value)
    assert error.value.path == key and fix in error.value.message, str(error.value)


SS_SAMPLE = (
    'ESTAB 0      0      198.19.0.2:41156 198.18.0.1:33087 users:(("python3",pid=5336,fd=3)) timer:(keepalive,6.424ms,0) ino:190261 sk:6 <->\n'
    "\t ts sack bbr wscale:10,10 rto:204 rtt:0.117/0.058 mss:1448 cwnd:10 bytes_acked:1 retrans:0/3 segs_out:2\n"
    'ESTAB 0      0      198.19.0.2:41166 198.18.0.1:33087 users:(("bun",pid=5337,fd=14)) timer:(on,1.2s,2) ino:190263 sk:7 <->\n'
    "\t ts sack cubic wscale:10,10 rto:204 mss:1448 cwnd:10\n"
    "ESTAB 0      0      198.19.0.2:41170 10.0.0.9:443 ino:190264 sk:8 <->\n"
)


def test_socket_audit_parses_ss_and_summarizes_per_connection():
    parsed = audit.parse(SS_SAMPLE)
    assert [s["local"] for s in parsed] == ["198.19.0.2:41156", "198.19.0.2:41166", "198.19.0.2:41170"]
    assert parsed[0] | {} == {
        "state": "ESTAB",
        "local": "198.19.0.2:41156",
        "peer": "198.18.0.1:33087",
        "timer": "keepalive",
        "timer_left": "6.424ms",
        "process": "python3",
        "pid": 5336,
        "fd": 3,
        "retrans": 3,
    }
    assert parsed[1]["timer"] == "on" and parsed[1]["retrans"] == 0
    first = [
        dict(parsed[0], keepalive=True, keepidle_s=15, keepintvl_s=15, keepcnt=4, user_timeout_ms=0),
        dict(parsed[1], keepalive=False, keepidle_s=7200, user_timeout_ms=10000),
    ]
    summary = audit.summarize([first, first], server_port=33087, server_host=LAB_HOST)
    assert summary["samples"] == 2 and len(summary["sockets"]) == 2  # the 10.0.0.9 socket is not the server's
    assert summary["keepalive"] == "on (15 s)" and summary["user_timeout_ms"] == 10000 and summary["retransmits"] == 3
    assert audit.summarize([[dict(parsed[1], keepalive=False)]])["keepalive"] == "off"
    assert audit.summarize([[]])["keepalive"] == "unknown"
    connecting = dict(parsed[1], state="SYN-SENT", keepalive=False)  # options are set once connected
    assert audit.summarize([[connecting]])["keepalive"] == "unknown"


def test_counter_events_report_what_grew():
    before = {"evicted": {"packets": 1, "bytes": 52}, "loss_up": {"packets": 0, "bytes": 0}}
    after = {"evicted": {"packets": 3, "bytes": 156}, "loss_up": {"packets": 0, "bytes": 0}, "middlebox_reset": {"packets": 1, "bytes": 52}}
    assert netns.counter_events(before, after, 10.0, "reset") == [
        {"t": 10.0, "event": "flow_evicted_reset", "packets": 2},
        {"t": 10.0, "event": "middlebox_reset", "packets": 1},
    ]


# -- on the wire, as root --------------------------------------------------------------------------


@pytest.fixture
def lab_ok():
    ok, why = netns.available()
    if not ok:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    yield
    assert_nothing_left()


def ours(pid: int | None = None) -> tuple[list[str], list[str]]:
    pid = os.getpid() if pid is None else pid
    spaces = [n for n in netns.namespaces() if n.startswith(f"{netns.PREFIX}-{pid}-")]
    links = [n for n in netns.links() if n.startswith(f"sc{pid}h")]
    return spaces, links


def assert_nothing_left(pid: int | None = None) -> None:
    spaces, links = ours(pid)
    assert not spaces and not links, (spaces, links)
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert ruleset.TABLE not in tables  # the host's own ruleset is never touched


class Server:
    """A TCP server on the lab's host address; ``handler(conn)`` per connection, in a thread."""

    def __init__(self, handler) -> None:
        self.sock = socket.socket()
        self.sock.bind((LAB_HOST, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.peers: list[tuple[str, int]] = []
        self.handler = handler
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def echo(conn: socket.socket) -> None:
    conn.settimeout(30)
    while data := conn.recv(65536):
        conn.sendall(data)


def run_client(lab: TrialLab, code: str, timeout_s: float = 30.0) -> dict:
    done = subprocess.run(lab.wrap([PY, "-c", textwrap.dedent(code)]), capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


IDLE_CLIENT = """
import json, socket, time
def connect(keepalive):
    s = socket.create_connection(("{host}", {port}), timeout=5)
    if keepalive:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.sendall(b"hello")
    assert s.recv(16) == b"hello"
    return s
plain, probed = connect(False), connect(True)
time.sleep({idle})  # idle past the NAT's timeout
out = {{}}
for name, s in (("plain", plain), ("keepalive", probed)):
    s.settimeout(3)
    try:
        s.sendall(b"again")
        out[name] = s.recv(16).decode() or "EOF"
    except OSError as error:
        out[name] = type(error).__name__
fresh = connect(False)
out["new_connection"] = "ok"
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("on_evicted,plain_gets", [("drop", "TimeoutError"), ("reset", "ConnectionResetError")])
def test_an_idle_flow_is_evicted_while_keepalive_probes_keep_the_same_idle_flow(lab_ok, on_evicted, plain_gets):
    with TrialLab(Network(nat_idle_s=2, on_evicted=on_evicted)) as lab:  # first: the server binds the lab's host address
        server = Server(echo)
        try:
            out = run_client(lab, IDLE_CLIENT.format(host=LAB_HOST, port=server.port, idle=4))
            counters = lab.counters()
        finally:
            server.close()
    assert out == {"plain": plain_gets, "keepalive": "again", "new_connection": "ok"}
    assert counters["evicted"]["packets"] >= 1
    # the server saw the client masqueraded behind the router, at its 198.18.x address
    assert all(host == lab.router_addr and host.startswith("198.18.") for host, _ in server.peers) and len(server.peers) == 3


LOSS_CLIENT = """
import hashlib, json, os, socket
payload = os.urandom(400_000)
s = socket.create_connection(("{host}", {port}), timeout=20)
s.sendall(len(payload).to_bytes(8, "big") + payload)
got = b""
while len(got) < 32 + 400_000:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
snmp = open("/proc/net/snmp").read().splitlines()
tcp = [line.split() for line in snmp if line.startswith("Tcp:")]
retrans = int(tcp[1][tcp[0].index("RetransSegs")])
print(json.dumps({{"echo_hash_ok": got[:32] == hashlib.sha256(payload).digest(), "back": hashlib.sha256(got[32:]).hexdigest(), "retrans": retrans}}))
"""


def test_ten_percent_loss_gives_retransmits_and_intact_data(lab_ok):
    back = os.urandom(400_000)

    def handler(conn: socket.socket) -> None:
        import hashlib

        conn.settimeout(30)
        header = b""
        while len(header) < 8:
            header += conn.recv(8 - len(header))
        size, received = int.from_bytes(header, "big"), b""
        while len(received) < size:
            received += conn.recv(65536)
        conn.sendall(hashlib.sha256(received).digest() + back)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)

    import hashlib

    with TrialLab(Network(loss_up=0.1, loss_down=0.1)) as lab:  # first: the server binds the lab's host address
        server = Server(handler)
        try:
            out = run_client(lab, LOSS_CLIENT.format(host=LAB_HOST, port=server.port), timeout_s=60)
            counters = lab.counters()
        finally:
            server.close()
    assert out["echo_hash_ok"] and out["back"] == hashlib.sha256(back).hexdigest()  # every byte, both ways
    assert out["retrans"] > 0  # the client's kernel retransmitted what the router dropped
    assert counters["loss_up"]["packets"] > 0 and counters["loss_down"]["packets"] > 0


RECEIVER = """
import json, socket
s = socket.create_connection(("{host}", {port}), timeout=10)
got, error = 0, None
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            error = "EOF"
            break
        got += len(chunk)
except OSError as e:
    error = type(e).__name__
print(json.dumps({{"bytes": got, "error": error}}))
"""


def test_the_middlebox_resets_a_flow_after_exactly_n_bytes(lab_ok):
    """conntrack counts IP bytes: SYN-ACK 60 + 1052 per 1000-byte segment (20 IP + 32 TCP with
    timestamps). 4 segments make 4268 <= 5000, the 5th makes 5320: it still arrives, then the
    client's ACK is answered with the middlebox's RST: exactly 5000 bytes, then a reset."""
    server_error: list[str] = []

    def handler(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for _ in range(10):
                conn.sendall(b"x" * 1000)
                time.sleep(0.05)
        except OSError as error:
            server_error.append(type(error).__name__)

    with TrialLab(Network(reset_after_bytes=5000)) as lab:  # first: the server binds the lab's host address
        server = Server(handler)
        try:
            out = run_client(lab, RECEIVER.format(host=LAB_HOST, port=server.port))
            counters = lab.counters()
        finally:
            server.close()
    assert out == {"bytes": 5000, "error": "ConnectionResetError"}
    assert counters["middlebox_reset"]["packets"] >= 1
    assert server_error and server_error[0] in ("ConnectionResetError", "BrokenPipeError")  # the server was reset too


PINGER = """
import json, socket, time
s = socket.create_connection(("{host}", {port}), timeout=10)
s.settimeout(15)
start, times, buffer = time.monotonic(), [], b""
for i in range(20):
    s.sendall(b"%04d" % i)
    while len(buffer) < 4 * (i + 1):
        buffer += s.recv(64)
    times.append(round(time.monotonic() - start, 3))
    time.sleep(0.2)
print(json.dumps({{"echoed": buffer.decode(), "times": times}}))
"""


@pytest.mark.slow
def test_a_black_hole_window_then_recovery_on_the_same_connection(lab_ok):
    with TrialLab(Network(blackholes=(Blackhole(at_s=1.0, for_s=2.0),))) as lab:  # first: the server binds the lab's host address
        server = Server(echo)
        try:
            monitor = Monitor(lab, poll_s=0.2).start()
            out = run_client(lab, PINGER.format(host=LAB_HOST, port=server.port), timeout_s=40)
            events = monitor.stop().events
        finally:
            server.close()
    assert out["echoed"] == "".join("%04d" % i for i in range(20))  # nothing lost, nothing out of order
    gaps = [b - a for a, b in zip(out["times"], out["times"][1:])]
    assert max(gaps) >= 1.8  # silence for the window (and until TCP's next retransmission)
    names = [e["event"] for e in events]
    assert names.index("blackhole_on") < names.index("blackhole_off")
    assert "blackhole_dropped" in names
    on = next(e for e in events if e["event"] == "blackhole_on")
    off = next(e for e in events if e["event"] == "blackhole_off")
    assert 0.9 <= on["t_rel_s"] <= 1.5 and 2.9 <= off["t_rel_s"] <= 3.5


# -- lifecycle: Ctrl-C, SIGTERM, kill -9 and the sweep -----------------------------------------------

HOLDER = """
import sys, time
from harness.network.lab.model import Network
from harness.network.lab.trial import LabSession
session = LabSession().__enter__()
try:
    lab = session.open(Network(nat_idle_s=5))
    print(lab.client, lab.router, lab.host_link, flush=True)
    time.sleep(60)
finally:
    session.__exit__(None, None, None)
"""


def start_holder() -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen([PY, "-c", HOLDER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    names = process.stdout.readline().split()
    assert len(names) == 3, process.stderr.read() if process.poll() is not None else names
    assert names[0] in netns.namespaces() and names[2] in netns.links()
    return process, names


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_runs_delete_their_lab(lab_ok, sig):
    process, names = start_holder()
    try:
        process.send_signal(sig)
        process.wait(20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert names[0] not in netns.namespaces() and names[1] not in netns.namespaces() and names[2] not in netns.links()
    assert_nothing_left(process.pid)


def test_after_kill_9_the_next_start_sweeps_only_dead_owners(lab_ok):
    dead, dead_names = start_holder()
    alive, alive_names = start_holder()
    try:
        dead.kill()
        dead.wait(5)
        assert dead_names[0] in netns.namespaces()  # kill -9: nothing ran to clean up
        removed = netns.sweep()
        assert set(dead_names[:2]) <= set(removed)  # its host link went with its router namespace
        assert_nothing_left(dead.pid)
        assert alive_names[0] in netns.namespaces() and alive_names[2] in netns.links()  # a live owner's lab is left alone
    finally:
        alive.terminate()
        alive.wait(20)
    assert_nothing_left(alive.pid)


@pytest.mark.slow
def test_without_cap_net_admin_one_clear_reason_and_lab_scenarios_skip(tmp_path, lab_ok):
    code = "from harness.network.lab.netns import available; import json; print(json.dumps(available()))"
    drop = ["setpriv", "--bounding-set=-net_admin,-sys_admin", "--inh-caps=-net_admin,-sys_admin"]
    done = subprocess.run([*drop, PY, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30)
    ok, why = json.loads(done.stdout)
    assert not ok and "CAP_NET_ADMIN" in why
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    args = [
        *drop,
        PY,
        "-m",
        "harness.cli",
        "run",
        "--scenarios",
        "middlebox_reset",
        "--clients",
        "curl",
        "--trials",
        "1",
        "--results",
        str(tmp_path),
        "--run-id",
        "nocap",
    ]
    subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    (record,) = runner.load_records(tmp_path / "nocap")
    assert record["outcome"] == "skipped" and "CAP_NET_ADMIN" in record["skipped"]
    subprocess.run([*args[:-1], "nocap-ci"], capture_output=True, text=True, cwd=ROOT, timeout=60, env={**env, "CI": "true"})
    (record,) = runner.load_records(tmp_path / "nocap-ci")
    assert record["outcome"] == "error" and "CAP_NET_ADMIN" in record["error_line"]


# -- through the harness: real clients in the lab --------------------------------------------------


def lab_scenario(network: dict, idle_s: float, deadline_s: float = 40.0, **more) -> scenario.Scenario:
    data = {
        "version": 1,
        "name": "lab_test",
        "seed": 3,
        "trials": 1,
        "tls": True,
        "deadline_s": deadline_s,
        "conversation": {"turns": 2, "words": 30, "turn": [{"prompt": "one"}, {"prompt": "two", "idle_before_s": idle_s}]},
        "network": network,
        **more,
    }
    return scenario.from_data(data, "lab_test.toml")


@pytest.mark.slow
def test_reference_clients_in_the_lab_nat_eviction_keepalive_survives_default_recovers(tmp_path, lab_ok):
    item = lab_scenario({"nat_idle_s": 2, "on_evicted": "reset"}, idle_s=4)
    keepalive = replace(registry.reference_client("tcp-keepalive"), env={"STREAMCHAOS_KEEPALIVE_IDLE_S": "1"})
    clients = (registry.get("ref-sdk-default"), keepalive)
    directory = runner.run(runner.RunConfig((item,), clients, results_dir=tmp_path, run_id="lab", workers=2))
    records = {r["client"]: r for r in runner.load_records(directory)}
    default, probed = records["ref-sdk-default"], records["ref-tcp-keepalive"]
    # sdk-default: its pooled connection was forgotten; the NAT's RST made it retry on a new one
    assert default["outcome"] == "recovered" and default["faults_fired"] >= 1 and default["answers_intact"] == 2
    assert any(e["event"] == "flow_evicted_reset" for e in default["extra"]["network"]["events"])
    assert default["extra"]["socket_audit"]["keepalive"] == "off"
    # the same idle with keepalive probes every second: nothing evicted, nothing to recover from
    assert probed["outcome"] == "clean" and probed["faults_fired"] == 0 and probed["answers_intact"] == 2
    assert probed["extra"]["socket_audit"]["keepalive"] == "on (1 s)"
    assert not probed["extra"]["network"]["events"]
    # the simulator journals the client's NATed address, and every trial had its own
    journal = [json.loads(line) for line in (directory / "journal-lab_test.jsonl").read_text().splitlines()]
    peers = {r["peer"].rsplit(":", 1)[0] for r in journal if r["kind"] == "connection"}
    assert peers == {default["extra"]["network"]["router_addr"], probed["extra"]["network"]["router_addr"]} and len(peers) == 2
    assert all(p.startswith("198.18.") for p in peers)
    assert default["extra"]["base_url"].startswith(f"https://{LAB_HOST}:")


@pytest.mark.slow
def test_user_timeout_turns_a_dropped_flow_into_a_retry(tmp_path, lab_ok):
    item = lab_scenario({"nat_idle_s": 2, "on_evicted": "drop"}, idle_s=4, deadline_s=30.0)
    client = replace(registry.reference_client("user-timeout"), env={"STREAMCHAOS_USER_TIMEOUT_S": "2"})
    directory = runner.run(runner.RunConfig((item,), (client,), results_dir=tmp_path, run_id="ut", workers=1))
    (record,) = runner.load_records(directory)
    assert record["outcome"] == "recovered" and record["answers_intact"] == 2, record["stderr_tail"]
    assert record["extra"]["socket_audit"]["user_timeout_ms"] == 2000
    assert any(e["event"] == "flow_evicted_drop" for e in record["extra"]["network"]["events"])
    assert record["elapsed_s"] < 20


def test_a_time_scale_override_is_refused_for_network_scenarios(tmp_path):
    item = lab_scenario({"nat_idle_s": 2}, idle_s=1)
    directory = runner.run(runner.RunConfig((item,), (registry.get("ref-sdk-default"),), results_dir=tmp_path, run_id="ts", time_scale=0.1))
    (record,) = runner.load_records(directory)
    assert record["outcome"] == "skipped" and "real time" in record["skipped"]


@pytest.mark.slow
def test_toxiproxy_steps_applied_count_as_faults(tmp_path):
    from tests.support import require

    require(ROOT / "tools" / "bin" / "toxiproxy-server", "toxiproxy")
    item = scenario.load(scenario.find("network_blip"))
    item = replace(item, trials=1, transports=("http/1.1",))
    directory = runner.run(runner.RunConfig((item,), (registry.get("ref-sdk-default"),), results_dir=tmp_path, run_id="blip"))
    (record,) = runner.load_records(directory)
    assert record["outcome"] != "clean" and record["faults_fired"] >= 1
    steps = record["extra"]["toxic_steps"]
    assert steps[0]["event"] == "toxiproxy_step" and steps[0]["action"].startswith("disable") and steps[0]["t"] > 0


def test_a_lane_binds_the_address_it_is_given_and_never_a_wildcard(start_simulator):
    sim = start_simulator()
    port = sim.open_lane("lane-host", host="127.0.0.2")
    socket.create_connection(("127.0.0.2", port), timeout=5).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # bound to that address only
    with pytest.raises(ValueError, match="IP address"):
        sim.open_lane("lane-host", host="0.0.0.0")
    sim.close_lane(port)


@pytest.mark.slow
def test_toxiproxy_in_the_lab_listens_on_the_lab_address(tmp_path, lab_ok):
    from tests.support import require

    require(ROOT / "tools" / "bin" / "toxiproxy-server", "toxiproxy")
    item = replace(scenario.load(scenario.find("network_blip")), trials=1, transports=("http/1.1",), network=Network(nat_idle_s=30))
    directory = runner.run(runner.RunConfig((item,), (registry.get("ref-full-jitter"),), results_dir=tmp_path, run_id="labblip"))
    (record,) = runner.load_records(directory)
    assert record["extra"]["base_url"].startswith(f"https://{LAB_HOST}:")  # the client reached toxiproxy through the NAT
    assert record["extra"]["toxic_steps"] and record["faults_fired"] >= 2 and record["outcome"] != "clean"
    assert record["extra"]["socket_audit"]["sockets"], "the audit saw the client's connections to toxiproxy"


def test_faults_outside_the_simulator_make_a_trial_faulted_never_clean():
    from harness.drive.trial import TrialRecord
    from harness.network.lab import trial as lab_trial

    def record(extra: dict) -> TrialRecord:
        return TrialRecord(
            run_id="r",
            scenario="s",
            client="c",
            trial=0,
            key="k",
            outcome="clean",
            exit_code=0,
            hung=False,
            elapsed_s=1.0,
            error_line=None,
            answers_expected=1,
            answers_intact=1,
            integrity=[],
            faults_fired=0,
            attempts=[[{"ok": True, "t_start": 12.0, "t_end": 12.5}]],
            backoff_ms=[],
            time_to_recover_ms=None,
            bytes_out=1,
            bytes_needed=1,
            events_out=1,
            connections=1,
            extra=extra,
        )

    harmless = record({"network": {"events": [{"t": 10.0, "event": "evicted_close_dropped", "packets": 2}, {"t": 11.0, "event": "blackhole_off"}]}})
    lab_trial.count_outside_faults(harmless)
    assert harmless.outcome == "clean" and harmless.faults_fired == 0
    touched = record(
        {
            "network": {"events": [{"t": 11.0, "event": "flow_evicted_drop", "packets": 1}]},
            "toxic_steps": [
                {"t": 10.0, "event": "toxiproxy_step", "action": "disable p", "error": None},
                {"t": 10.5, "event": "toxiproxy_step", "action": "enable p", "error": "503"},
            ],
        }
    )
    lab_trial.count_outside_faults(touched)
    assert touched.outcome == "recovered" and touched.faults_fired == 2  # the failed step was not applied
    assert lab_trial.time_to_recover_ms(touched) == 2500.0  # from the first fault to the answer
    assert lab_trial.lab_env({"NO_PROXY": "127.0.0.1,localhost"})["NO_PROXY"] == f"127.0.0.1,localhost,{LAB_HOST}"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_streamchaos_run_interrupted_mid_trial_leaves_no_lab(tmp_path, lab_ok, sig):
    """The whole CLI, a trial idling inside its lab: interrupted, it deletes every namespace and link."""
    process = subprocess.Popen(
        [
            PY,
            "-m",
            "harness.cli",
            "run",
            "--scenarios",
            "nat_eviction_kernel",
            "--clients",
            "ref-sdk-default",
            "--trials",
            "2",
            "--workers",
            "2",
            "--results",
            str(tmp_path),
            "--run-id",
            "stop",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(ours(process.pid)[0]) < 4:  # two trials, two namespaces each
            time.sleep(0.2)
        assert len(ours(process.pid)[0]) == 4, process.stderr.read() if process.poll() is not None else "no lab appeared"
        time.sleep(1.0)  # the clients are running, idle between their turns
        process.send_signal(sig)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert_nothing_left(process.pid)
