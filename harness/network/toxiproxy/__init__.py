"""Real toxiproxy (v2.12) in front of the simulator, one module per job:

* :mod:`.toxics` -- one module per toxic kind (its frozen type, validation, scaling), one table;
* :mod:`.api` -- the typed HTTP API (:class:`ToxiproxyClient`, :class:`ProxyHandle`);
* :mod:`.binary` -- finding a usable ``toxiproxy-server``;
* :mod:`.server` -- the server's lifecycle (:class:`ToxiproxyServer`);
* :mod:`.timeline` -- toxics and proxy outages on a timeline (:class:`ToxicTimeline`);
* :mod:`.errors` -- what can go wrong.

This package exports what the rest of the harness uses; anything else is imported from its module.

Toxiproxy v2.12.0 semantics a test has to respect (see also the toxics' docstrings):

* Toxics act on chunks of up to 32 KiB, per connection and per direction, on *every* open and
  future connection of the proxy. There is no per-connection targeting.
* ``toxicity`` is drawn per connection and toxic when the link starts, and drawn again whenever
  the toxic list changes (adding or removing a toxic re-runs its neighbour; updating re-runs the
  updated one). ``-seed`` does nothing since v2.9.0. So which connections were hit by a toxic
  with 0 < toxicity < 1 is never known in advance: read it from the simulator's journal.
  Toxicity 0 and 1 are stable across redraws.
* ``reset_peer`` only sends an RST on connections that were accepted while a ``reset_peer`` toxic
  was present (SO_LINGER 0 is set at accept); otherwise its close is a FIN. It also waits for the
  next chunk of data before closing: on an idle connection it does nothing. See
  :meth:`ProxyHandle.arm_rst_on_close` (the linger trick) and :meth:`ProxyHandle.cut_after_bytes`.
* ``timeout`` is not a NAT eviction: new connections are black-holed too, and removing it closes
  with FIN. The simulator's ``idle_eviction`` fault is the NAT emulation.
* ``bandwidth`` rate 0 or a huge ``latency`` is a lossless stall: removing the toxic lets every
  held byte through.
* ``PATCH /proxies/{p} {"enabled": false}`` closes every connection and refuses new ones; enabling
  listens again on the same port.
"""

from __future__ import annotations

from harness.network.toxiproxy.binary import available, find_binary
from harness.network.toxiproxy.errors import ToxiproxyError, ToxiproxyUnavailable
from harness.network.toxiproxy.server import ToxiproxyServer
from harness.network.toxiproxy.toxics import toxic_from_data

__all__ = ["ToxiproxyError", "ToxiproxyServer", "ToxiproxyUnavailable", "available", "find_binary", "toxic_from_data"]
