"""The router namespace's nftables ruleset, rendered from a :class:`Network` (a pure function).

One table, ``ip streamchaos``, in the trial's router namespace (never in the host's):

* ``postrouting``: masquerade what leaves towards the host (the NAT whose conntrack forgets);
* ``forward`` and ``input``: first the ``blackhole`` chain (empty, or one ``drop`` while a
  black-hole window is open); then packets conntrack no longer knows (``ct state invalid``: with
  ``nf_conntrack_tcp_loose = 0`` a mid-flow packet of an evicted flow is never picked up again)
  are dropped or answered with an RST (their FINs and RSTs, closes of flows the client no longer
  uses, are dropped and counted apart as ``evicted_close``); then the middlebox reset (a flow marked once the server
  sent more than ``reset_after_bytes`` -- conntrack's count, IP headers included -- gets an RST
  for its next packet either way: the client's ACK of the packet that crossed the line, the
  server's next segment); then random loss per direction.

Every drop and reset goes through a named counter, so the harness reads what the lab did to a
trial (``nft -j list counters``) and when (it polls).
"""

from __future__ import annotations

from harness.network.lab.model import Network, loss_threshold

TABLE = "streamchaos"
HOST_IF = "host"  # the router's interface towards the host (the simulator, toxiproxy)
CLIENT_IF = "cli"  # the router's interface towards the client namespace
COUNTERS = ("evicted_close", "evicted", "loss_up", "loss_down", "blackhole", "middlebox_reset")
RESET_MARK = "0x00000001"


def render(network: Network, host_if: str = HOST_IF, client_if: str = CLIENT_IF) -> str:
    """The whole table as ``nft -f`` reads it."""
    verdict = 'meta l4proto tcp counter name "evicted" reject with tcp reset' if network.on_evicted == "reset" else ""
    # A FIN or RST of a forgotten flow (a client closing a pooled connection it no longer uses) is
    # dropped and counted apart: it hurts no one, so it does not make a trial "faulted".
    evicted = [
        'ct state invalid tcp flags & (fin | rst) != 0 counter name "evicted_close" drop',
        f"ct state invalid {verdict}" if verdict else "",
        'ct state invalid counter name "evicted" drop',
    ]
    middlebox: list[str] = []
    if network.reset_after_bytes is not None:
        middlebox = [
            f'ct mark {RESET_MARK} counter name "middlebox_reset" reject with tcp reset',
            f'iifname "{host_if}" ct reply bytes > {network.reset_after_bytes} ct mark set {RESET_MARK}',
        ]
    loss = []
    if network.loss_up:
        loss.append(f'iifname "{client_if}" numgen random mod 1000 < {loss_threshold(network.loss_up)} counter name "loss_up" drop')
    if network.loss_down:
        loss.append(f'iifname "{host_if}" numgen random mod 1000 < {loss_threshold(network.loss_down)} counter name "loss_down" drop')
    forward = ["jump blackhole", *[r for r in evicted if r], *middlebox, *loss]
    inbound = ["jump blackhole", *[r for r in evicted if r]]
    lines = [f"table ip {TABLE} {{"]
    lines += [f"\tcounter {name} {{\n\t}}" for name in COUNTERS]
    lines += _chain("blackhole", None, [])
    lines += _chain("forward", "type filter hook forward priority filter; policy accept;", forward)
    lines += _chain("input", "type filter hook input priority filter; policy accept;", inbound)
    lines += _chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", [f'oifname "{host_if}" masquerade'])
    lines.append("}")
    return "\n".join(lines) + "\n"


def _chain(name: str, hook: str | None, rules: list[str]) -> list[str]:
    body = ([f"\t\t{hook}"] if hook else []) + [f"\t\t{rule}" for rule in rules]
    return [f"\tchain {name} {{", *body, "\t}"]


def blackhole_on() -> str:
    """The rule the black-hole timeline adds (``nft add rule ip streamchaos blackhole ...``)."""
    return 'counter name "blackhole" drop'


def sysctls(network: Network) -> dict[str, str]:
    """Per-namespace sysctls of the router: forwarding, accounting (for ``ct bytes``), strict
    conntrack pickup, and the NAT's idle timeout."""
    values = {
        "net.ipv4.ip_forward": "1",
        "net.netfilter.nf_conntrack_acct": "1",
        "net.netfilter.nf_conntrack_tcp_loose": "0",
    }
    if network.nat_idle_s is not None:
        values["net.netfilter.nf_conntrack_tcp_timeout_established"] = str(max(1, round(network.nat_idle_s)))
    return values
