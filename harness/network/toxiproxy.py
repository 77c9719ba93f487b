"""Real toxiproxy (v2.12) in front of the simulator: the server's lifecycle and a typed API layer.

Three parts:

* :class:`ToxiproxyServer` finds ``toxiproxy-server`` (:func:`find_binary`), starts it on a free
  loopback port, waits until ``GET /version`` answers *from this process*, and stops it by pid.
  Every pid it starts is also registered for an ``atexit`` and SIGTERM/SIGHUP cleanup, and (on
  Linux, when started from the main thread) gets ``PR_SET_PDEATHSIG`` so not even a SIGKILLed
  harness leaves a toxiproxy behind.
* :class:`ToxiproxyClient` / :class:`ProxyHandle`: the HTTP API, one client per server. It keeps
  using the ``toxiproxy-python`` package (its ``APIConsumer`` and its exception types) but wraps
  its gaps: the package keeps one global host/port on ``APIConsumer`` (here every server gets its
  own ``APIConsumer`` subclass with its own host, port and session, so two servers in one process
  never share state), has no HTTP timeouts (here every call has one), has no toxic update (here
  ``PATCH``), raises only on 400/404/409 (here every status >= 400 raises, 5xx included), and
  toggles proxies with the deprecated ``POST /proxies/{p}`` (here ``PATCH``).
* The toxics, one frozen dataclass per v2.12 type, validated on construction
  (:class:`ToxicValidationError` names the attribute). The server itself validates almost nothing
  (``latency: -5`` or ``slicer average_size: 0`` are accepted with 200; the latter recurses
  forever in the proxy), so validation has to happen here.

Toxiproxy v2.12.0 semantics a test has to respect (see also the class docstrings):

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
* A ``User-Agent`` starting with ``Mozilla/`` gets 403; API handlers give up after 25 s with 503.
"""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import requests
import toxiproxy.exceptions as _pkg_errors
from toxiproxy.api import APIConsumer

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BINARY = ROOT / "tools" / "bin" / "toxiproxy-server"
MIN_VERSION = (2, 12, 0)
HOST = "127.0.0.1"
USER_AGENT = "streamchaos-harness/0.1 (toxiproxy client)"

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 10.0
START_ATTEMPTS = 5

INSTALL_HINT = (
    "run `make toxiproxy` (it builds toxiproxy v2.12.0 into tools/bin with `go install`), which needs "
    "Go >= 1.23 (https://go.dev/doc/install); or put a toxiproxy-server >= 2.12 on PATH"
)


# ---------------------------------------------------------------------------------------------
# errors

class ToxiproxyError(Exception):
    """Anything that went wrong with toxiproxy."""


class ToxiproxyUnavailable(ToxiproxyError):
    """No usable ``toxiproxy-server`` binary; the message says how to get one."""


class ToxiproxyStartError(ToxiproxyError):
    """The binary exists but no attempt gave a server whose API answers."""


class ToxiproxyConnectionError(ToxiproxyError):
    """The API could not be reached (refused, reset, DNS...)."""


class ToxiproxyTimeout(ToxiproxyError):
    """An API call got no answer within its HTTP timeout."""


class ToxiproxyAPIError(ToxiproxyError):
    """The API answered with a status >= 400."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        detail = body.strip()
        try:
            detail = json.loads(body).get("error", detail)
        except (ValueError, AttributeError):
            pass
        super().__init__(f"toxiproxy {method} {path}: HTTP {status}: {detail or '(empty body)'}")


class ProxyExists(ToxiproxyAPIError, _pkg_errors.ProxyExists):
    """409: a proxy or a toxic of that name already exists."""


class NotFound(ToxiproxyAPIError, _pkg_errors.NotFound):
    """404: no such proxy or toxic."""


class InvalidToxic(ToxiproxyAPIError, _pkg_errors.InvalidToxic):
    """400: the server rejected the request body (bad toxic type, stream, JSON...)."""


class ToxiproxyServerError(ToxiproxyAPIError):
    """5xx: e.g. 503 when a handler gave up after 25 s, or 500 when a proxy cannot listen."""


def _api_error(method: str, path: str, status: int, body: str) -> ToxiproxyAPIError:
    if status == 409:
        return ProxyExists(method, path, status, body)
    if status == 404:
        return NotFound(method, path, status, body)
    if status == 400:
        return InvalidToxic(method, path, status, body)
    if status >= 500:
        return ToxiproxyServerError(method, path, status, body)
    return ToxiproxyAPIError(method, path, status, body)


class ToxicValidationError(ValueError):
    """A toxic attribute out of range: ``attribute`` is its name (``latency.jitter``)."""

    def __init__(self, attribute: str, message: str) -> None:
        super().__init__(f"{attribute}: {message}")
        self.attribute = attribute
        self.message = message


# ---------------------------------------------------------------------------------------------
# toxics

MAX_INT64 = 2**63 - 1
MAX_MS = MAX_INT64 // 1_000_000  # ms * time.Millisecond must not overflow Go's int64 nanoseconds
MAX_US = MAX_INT64 // 1_000  # slicer delay is in microseconds
MAX_RATE = MAX_INT64 // 100  # bandwidth computes rate*100 (bytes per 100 ms)
STREAMS = ("upstream", "downstream")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")


def _integer(toxic: str, attribute: str, value: Any, low: int, high: int, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToxicValidationError(f"{toxic}.{attribute}", f"must be an integer ({unit}), not {value!r}")
    if not low <= value <= high:
        raise ToxicValidationError(f"{toxic}.{attribute}", f"must be between {low} and {high} ({unit}), not {value}")


@dataclass(frozen=True, kw_only=True)
class Toxic:
    """Common fields. ``name`` defaults, as in toxiproxy, to ``{type}_{stream}``; ``stream`` is the
    direction (``downstream``: simulator -> client); ``toxicity`` the chance, drawn per connection
    (and again whenever the proxy's toxic list changes), that the toxic applies."""

    type: ClassVar[str] = ""
    name: str | None = None
    stream: str = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        if self.name is not None and (not isinstance(self.name, str) or not _NAME.match(self.name)):
            raise ToxicValidationError(f"{self.type}.name", f"must be 1-255 of [A-Za-z0-9_.-], not {self.name!r}")
        if self.stream not in STREAMS:
            raise ToxicValidationError(f"{self.type}.stream", f"must be 'upstream' or 'downstream', not {self.stream!r}")
        t = self.toxicity
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0.0 <= t <= 1.0:
            raise ToxicValidationError(f"{self.type}.toxicity", f"must be a number between 0 and 1, not {t!r}")
        self._check()
        if self.name is None:  # as the server names it, so a toxic read back compares equal
            object.__setattr__(self, "name", f"{self.type}_{self.stream}")

    def _check(self) -> None:
        """Validate the type's attributes."""

    @property
    def toxic_name(self) -> str:
        return self.name or f"{self.type}_{self.stream}"  # always ``name`` once constructed

    def attributes(self) -> dict[str, int]:
        common = {"name", "stream", "toxicity"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in common}

    def to_api(self) -> dict[str, Any]:
        return {"name": self.toxic_name, "type": self.type, "stream": self.stream, "toxicity": self.toxicity,
                "attributes": self.attributes()}


@dataclass(frozen=True)
class LatencyToxic(Toxic):
    """Each chunk is held ``latency`` ms (+/- up to ``jitter`` ms). Huge: a lossless stall."""

    type: ClassVar[str] = "latency"
    latency: int = 0
    jitter: int = 0

    def _check(self) -> None:
        _integer(self.type, "latency", self.latency, 0, MAX_MS, "milliseconds")
        _integer(self.type, "jitter", self.jitter, 0, MAX_MS, "milliseconds")


@dataclass(frozen=True)
class BandwidthToxic(Toxic):
    """At most ``rate`` KB/s. Rate 0 is a lossless stall: nothing passes, not even the status
    line, until the toxic is removed (or updated), then every held byte goes through. Meanwhile
    the simulator has written the whole answer (toxiproxy reads and holds it), so its journal
    says ``complete`` for a reply the client has not seen a byte of."""

    type: ClassVar[str] = "bandwidth"
    rate: int = 0

    def _check(self) -> None:
        _integer(self.type, "rate", self.rate, 0, MAX_RATE, "KB/s")


@dataclass(frozen=True)
class SlowCloseToxic(Toxic):
    """Delay the close (after the peer's EOF) by ``delay`` ms."""

    type: ClassVar[str] = "slow_close"
    delay: int = 0

    def _check(self) -> None:
        _integer(self.type, "delay", self.delay, 0, MAX_MS, "milliseconds")


@dataclass(frozen=True)
class TimeoutToxic(Toxic):
    """Drop all data; close after ``timeout`` ms (0: never close).

    Not a NAT eviction: new connections are black-holed too, toxiproxy's kernel keeps ACKing (so
    client TCP keepalives never fire), and removing the toxic closes the held connections with
    FIN. A close from the other side still passes (a ``connection: close`` answer reaches the
    client as an EOF with no data). Use the simulator's ``idle_eviction`` fault for NAT
    behaviour."""

    type: ClassVar[str] = "timeout"
    timeout: int = 0

    def _check(self) -> None:
        _integer(self.type, "timeout", self.timeout, 0, MAX_MS, "milliseconds")


@dataclass(frozen=True)
class ResetPeerToxic(Toxic):
    """Close ``timeout`` ms after the *next chunk* arrives (an idle connection is left alone).

    The close is an RST only on connections accepted while some ``reset_peer`` toxic was on the
    proxy (toxiproxy sets SO_LINGER 0 at accept); on older connections it is a FIN. Hence the
    linger trick: :meth:`ProxyHandle.arm_rst_on_close`."""

    type: ClassVar[str] = "reset_peer"
    timeout: int = 0

    def _check(self) -> None:
        _integer(self.type, "timeout", self.timeout, 0, MAX_MS, "milliseconds")


@dataclass(frozen=True)
class SlicerToxic(Toxic):
    """Split chunks into pieces of ``average_size`` +/- ``size_variation`` bytes, ``delay`` us apart.

    ``average_size`` 0 makes toxiproxy recurse forever, ``size_variation >= average_size`` can make
    it slice out of range: both are rejected here (the server accepts them)."""

    type: ClassVar[str] = "slicer"
    average_size: int = 1
    size_variation: int = 0
    delay: int = 0

    def _check(self) -> None:
        _integer(self.type, "average_size", self.average_size, 1, MAX_INT64, "bytes")
        _integer(self.type, "size_variation", self.size_variation, 0, MAX_INT64, "bytes")
        if self.size_variation >= self.average_size:
            raise ToxicValidationError(f"{self.type}.size_variation",
                                       f"must be smaller than average_size ({self.average_size}), not {self.size_variation}")
        _integer(self.type, "delay", self.delay, 0, MAX_US, "microseconds")


@dataclass(frozen=True)
class LimitDataToxic(Toxic):
    """Pass exactly ``bytes`` bytes (per connection and direction), then close. With the linger
    trick the close is an RST: exactly N bytes, then ECONNRESET."""

    type: ClassVar[str] = "limit_data"
    bytes: int = 0

    def _check(self) -> None:
        _integer(self.type, "bytes", self.bytes, 0, MAX_INT64, "bytes")


TOXIC_TYPES: dict[str, type[Toxic]] = {cls.type: cls for cls in (
    LatencyToxic, BandwidthToxic, SlowCloseToxic, TimeoutToxic, ResetPeerToxic, SlicerToxic, LimitDataToxic)}


def toxic_from_data(data: Mapping[str, Any]) -> Toxic:
    """A toxic as a scenario file writes it: ``{"type": "latency", "latency": 100}`` (attributes
    flat, or under ``"attributes"``), with optional ``name``, ``stream``, ``toxicity``. Raises
    :class:`ToxicValidationError` (a ValueError) naming the key."""
    if not isinstance(data, Mapping):
        raise ToxicValidationError("toxic", f"must be a table, not {type(data).__name__}")
    kind = data.get("type")
    cls = TOXIC_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ToxicValidationError("type", f"must be one of {', '.join(sorted(TOXIC_TYPES))}, not {kind!r}")
    nested = data.get("attributes", {})
    if not isinstance(nested, Mapping):
        raise ToxicValidationError(f"{kind}.attributes", f"must be a table, not {type(nested).__name__}")
    allowed = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in [*((k, v) for k, v in data.items() if k not in ("type", "attributes")), *nested.items()]:
        if key not in allowed:
            raise ToxicValidationError(f"{kind}.{key}", f"unknown attribute; {kind} has {', '.join(sorted(allowed))}")
        values[key] = value
    return cls(**values)


# (attribute, how it scales): durations are multiplied by the time scale, rates divided by it
_SCALING = {"latency": {"latency": "duration", "jitter": "duration"}, "bandwidth": {"rate": "rate"},
            "slow_close": {"delay": "duration"}, "timeout": {"timeout": "duration"}, "reset_peer": {"timeout": "duration"},
            "slicer": {"delay": "duration"}, "limit_data": {}}


def scaled_attributes(kind: str, attributes: Mapping[str, Any], factor: float) -> dict[str, Any]:
    """Attributes of a ``kind`` toxic with durations x ``factor`` and rates / ``factor`` (as the
    simulator's ``scaled`` does for fault plans); a nonzero value stays nonzero."""
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"time scale must be a finite number > 0, not {factor!r}")
    out = dict(attributes)
    for name, how in _SCALING.get(kind, {}).items():
        value = out.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[name] = max(1, round(value * factor if how == "duration" else value / factor))
    return out


def scaled_toxic(toxic: Toxic, factor: float) -> Toxic:
    """The same toxic with its durations scaled (see :func:`scaled_attributes`)."""
    if factor == 1:
        return toxic
    return dataclasses.replace(toxic, **scaled_attributes(toxic.type, toxic.attributes(), factor))


def toxic_from_api(data: Mapping[str, Any]) -> Toxic:
    """A toxic as the API lists it -> its dataclass (unknown attributes are ignored)."""
    cls = TOXIC_TYPES.get(data.get("type", ""))
    if cls is None:
        raise ToxiproxyError(f"unknown toxic type in API answer: {data!r}")
    names = {f.name for f in dataclasses.fields(cls)} - {"name", "stream", "toxicity"}
    attributes = {k: v for k, v in (data.get("attributes") or {}).items() if k in names}
    return cls(name=data.get("name"), stream=data.get("stream", "downstream"), toxicity=data.get("toxicity", 1.0), **attributes)


# ---------------------------------------------------------------------------------------------
# the HTTP API

class _ServerAPIConsumer(APIConsumer):
    """The package's ``APIConsumer`` keeps ``host``/``port`` as class attributes shared by every
    user; each server gets its own subclass (:func:`_consumer_for`) so nothing is shared. Calls
    carry a timeout and our User-Agent, ignore proxy environment variables, and raise on every
    status >= 400."""

    timeout_s: float = HTTP_TIMEOUT_S
    session: requests.Session
    lock: threading.Lock

    @classmethod
    def call(cls, method: str, url: str, json_body: Any = None, timeout_s: float | None = None) -> requests.Response:
        endpoint = f"http://{cls.host}:{cls.port}{url}"
        timeout = cls.timeout_s if timeout_s is None else timeout_s
        try:
            with cls.lock:
                response = cls.session.request(method, endpoint, json=json_body, timeout=(timeout, timeout))
        except requests.Timeout as error:
            raise ToxiproxyTimeout(f"toxiproxy {method} {url}: no answer within {timeout:g} s") from error
        except requests.ConnectionError as error:
            raise ToxiproxyConnectionError(f"toxiproxy {method} {url}: {error}") from error
        if response.status_code >= 400:
            raise _api_error(method, url, response.status_code, response.text)
        return response

    @classmethod
    def get(cls, url, params=None, **kwargs):  # noqa: D102 - the package's signature
        return cls.call("GET", url)

    @classmethod
    def delete(cls, url, **kwargs):
        return cls.call("DELETE", url)

    @classmethod
    def post(cls, url, data=None, json=None, **kwargs):
        return cls.call("POST", url, json)

    @classmethod
    def patch(cls, url, json=None, **kwargs):
        return cls.call("PATCH", url, json)


def _consumer_for(host: str, port: int, timeout_s: float, user_agent: str) -> type[_ServerAPIConsumer]:
    session = requests.Session()
    session.trust_env = False  # HTTP_PROXY must never route loopback API calls elsewhere
    session.headers["User-Agent"] = user_agent
    return type(f"APIConsumer_{host}_{port}", (_ServerAPIConsumer,), {
        "host": host, "port": port, "timeout_s": timeout_s, "session": session, "lock": threading.Lock(),
    })


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class ToxiproxyClient:
    """The API of one toxiproxy server (``http://host:port``)."""

    def __init__(self, host: str = HOST, port: int = 8474, timeout_s: float = HTTP_TIMEOUT_S, user_agent: str = USER_AGENT) -> None:
        if user_agent.startswith("Mozilla/"):
            raise ValueError("toxiproxy answers 403 to any User-Agent starting with 'Mozilla/'")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, not {timeout_s!r}")
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.api = _consumer_for(host, port, timeout_s, user_agent)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: Any = None, timeout_s: float | None = None) -> Any:
        """One call: the decoded JSON answer (or text when it is not JSON)."""
        response = self.api.call(method, path, body, timeout_s)
        try:
            return response.json()
        except ValueError:
            return response.text

    def version(self, timeout_s: float | None = None) -> str:
        answer = self.request("GET", "/version", timeout_s=timeout_s)
        return answer.get("version", "") if isinstance(answer, dict) else str(answer).strip()

    def proxies(self) -> dict[str, "ProxyHandle"]:
        return {name: ProxyHandle(self, data) for name, data in self.request("GET", "/proxies").items()}

    def proxy(self, name: str) -> "ProxyHandle":
        return ProxyHandle(self, self.request("GET", f"/proxies/{_quote(name)}"))

    def create_proxy(self, name: str, upstream: str, listen: str = f"{HOST}:0", enabled: bool = True) -> "ProxyHandle":
        """``POST /proxies``; with the default ``listen`` the kernel picks the port and the answer
        says which (``ProxyHandle.port``)."""
        if not _NAME.match(name):
            raise ValueError(f"proxy name must be 1-255 of [A-Za-z0-9_.-], not {name!r}")
        data = self.request("POST", "/proxies", {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled})
        return ProxyHandle(self, data)

    def reset(self) -> None:
        """``POST /reset``: enable every proxy and remove every toxic."""
        self.request("POST", "/reset")

    def delete_all(self) -> None:
        for proxy in self.proxies().values():
            proxy.delete()

    def close(self) -> None:
        self.api.session.close()


class ProxyHandle:
    """One proxy: ``listen`` is the real ``host:port`` once created."""

    def __init__(self, client: ToxiproxyClient, data: Mapping[str, Any]) -> None:
        self.client = client
        self._update(data)

    def _update(self, data: Mapping[str, Any]) -> None:
        self.name: str = data["name"]
        self.upstream: str = data["upstream"]
        self.listen: str = data["listen"]
        self.enabled: bool = bool(data.get("enabled", True))
        self.toxic_list: list[Toxic] = [toxic_from_api(t) for t in data.get("toxics") or []]

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def listen_port(self) -> int:
        return self.port

    @property
    def base_url(self) -> str:
        return f"http://{self.listen}"

    @property
    def _path(self) -> str:
        return f"/proxies/{_quote(self.name)}"

    def refresh(self) -> "ProxyHandle":
        self._update(self.client.request("GET", self._path))
        return self

    def _set_enabled(self, enabled: bool) -> None:
        self._update(self.client.request("PATCH", self._path, {"enabled": enabled}))

    def disable(self) -> None:
        """Close every connection (client and upstream side) and refuse new ones."""
        self._set_enabled(False)

    def enable(self) -> None:
        """Listen again, on the same port. If another process took the port while the proxy was
        down, toxiproxy answers 500 ("address already in use"): raised here as
        :class:`ToxiproxyServerError` (the package, raising only on 400/404/409, would not)."""
        self._set_enabled(True)

    @contextmanager
    def down(self) -> Iterator["ProxyHandle"]:
        self.disable()
        try:
            yield self
        finally:
            self.enable()

    def delete(self) -> None:
        """Delete the proxy; its connections are closed."""
        self.client.request("DELETE", self._path)

    # -- toxics --------------------------------------------------------------------------------
    def toxics(self) -> list[Toxic]:
        return [toxic_from_api(t) for t in self.client.request("GET", f"{self._path}/toxics")]

    def toxic(self, name: str) -> Toxic:
        return toxic_from_api(self.client.request("GET", f"{self._path}/toxics/{_quote(name)}"))

    def add_toxic(self, toxic: Toxic) -> Toxic:
        """``POST .../toxics``: applies at once to every open connection of the proxy (and redraws
        the toxicity of the toxic before it in each connection's chain)."""
        if not isinstance(toxic, Toxic):
            raise TypeError(f"expected a Toxic dataclass, not {type(toxic).__name__}")
        return toxic_from_api(self.client.request("POST", f"{self._path}/toxics", toxic.to_api()))

    def update_toxic(self, toxic: Toxic | str, *, toxicity: float | None = None, **attributes: Any) -> Toxic:
        """``PATCH .../toxics/{name}`` (the package has no update). Give a full new toxic of the same
        name, or a name and the fields to change; the result is validated before it is sent. The
        stream and type of a toxic cannot change: remove it and add another."""
        current = self.toxic(toxic if isinstance(toxic, str) else toxic.toxic_name)
        if isinstance(toxic, str):
            changes: dict[str, Any] = dict(attributes)
            if toxicity is not None:
                changes["toxicity"] = toxicity
            wanted = dataclasses.replace(current, **changes)
        else:
            if attributes or toxicity is not None:
                raise TypeError("give either a Toxic or a name with changes, not both")
            wanted = toxic
        if type(wanted) is not type(current) or wanted.stream != current.stream:
            raise ValueError(f"toxic {current.toxic_name!r} is a {current.stream} {current.type}; remove it and add a new one instead")
        body = {"attributes": wanted.attributes(), "toxicity": wanted.toxicity}
        return toxic_from_api(self.client.request("PATCH", f"{self._path}/toxics/{_quote(current.toxic_name)}", body))

    def remove_toxic(self, toxic: Toxic | str) -> None:
        name = toxic if isinstance(toxic, str) else toxic.toxic_name
        self.client.request("DELETE", f"{self._path}/toxics/{_quote(name)}")

    def remove_all_toxics(self) -> None:
        for toxic in self.toxics():
            self.remove_toxic(toxic)

    @contextmanager
    def toxic_applied(self, toxic: Toxic) -> Iterator[Toxic]:
        added = self.add_toxic(toxic)
        try:
            yield added
        finally:
            try:
                self.remove_toxic(added)
            except NotFound:
                pass

    # -- the linger trick ------------------------------------------------------------------------
    LINGER_TOXIC: ClassVar[str] = "linger_rst"

    def arm_rst_on_close(self) -> Toxic:
        """Make every close toxiproxy does on this proxy's *future* connections an RST.

        toxiproxy sets SO_LINGER 0 on both sockets of a connection when, at accept, the chain holds
        a ``reset_peer`` toxic. A ``reset_peer`` with toxicity 0 never fires itself (a redraw
        cannot change that: rand < 0 is never true) but still arms the linger, so ``limit_data``,
        ``timeout`` with a timeout, ``reset_peer`` added later, ``disable`` and even a normal close
        of the upstream reach the client as ECONNRESET instead of EOF. Call it BEFORE clients
        connect: connections already open keep closing with FIN. Idempotent."""
        existing = {t.toxic_name: t for t in self.toxics()}
        if self.LINGER_TOXIC in existing:
            return existing[self.LINGER_TOXIC]
        return self.add_toxic(ResetPeerToxic(name=self.LINGER_TOXIC, timeout=0, toxicity=0.0))

    def cut_after_bytes(self, nbytes: int, stream: str = "downstream", name: str | None = None) -> Toxic:
        """Exactly ``nbytes`` bytes per connection in ``stream``, then an RST (the linger trick
        plus ``limit_data``). Affects connections accepted after the call."""
        self.arm_rst_on_close()
        return self.add_toxic(LimitDataToxic(name=name or f"cut_{nbytes}_{stream}", stream=stream, bytes=nbytes))

    def __repr__(self) -> str:
        return f"ProxyHandle({self.name!r}, listen={self.listen!r}, upstream={self.upstream!r}, enabled={self.enabled})"


# ---------------------------------------------------------------------------------------------
# finding the binary

def binary_version(path: str | Path, timeout_s: float = 5.0) -> tuple[int, int, int] | None:
    """``toxiproxy-server -version`` as a tuple, or None if it does not say."""
    try:
        out = subprocess.run([str(path), "-version"], capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    return tuple(int(x) for x in found.groups()) if found else None  # type: ignore[return-value]


def find_binary(explicit: str | Path | None = None, tools_binary: Path = TOOLS_BINARY, min_version: tuple[int, int, int] = MIN_VERSION) -> Path:
    """``explicit``, else ``tools/bin/toxiproxy-server`` (installed by ``make toxiproxy``), else a
    ``toxiproxy-server`` on PATH reporting at least ``min_version``."""
    want = ".".join(map(str, min_version))
    looked: list[str] = []
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    else:
        candidates.append(tools_binary)
        on_path = shutil.which("toxiproxy-server")
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            looked.append(f"{candidate}: not there")
            continue
        version = binary_version(candidate)
        if version is None:
            looked.append(f"{candidate}: does not report a version")
        elif version < min_version:
            looked.append(f"{candidate}: version {'.'.join(map(str, version))} < {want}")
        else:
            return candidate
    if explicit is None and not shutil.which("toxiproxy-server"):
        looked.append("PATH: no toxiproxy-server")
    if explicit is None and tools_binary == TOOLS_BINARY:  # issue 14: installed on first use into the user cache (`go install`)
        from harness.clients import versions

        try:
            return versions.ensure_toxiproxy()
        except versions.VersionError as error:
            looked.append(str(error))
    raise ToxiproxyUnavailable(f"no toxiproxy-server >= {want} ({'; '.join(looked)}): {INSTALL_HINT}")


# ---------------------------------------------------------------------------------------------
# process cleanup: every pid we start, whatever way the harness ends

_LIVE: dict[int, subprocess.Popen] = {}
_LIVE_LOCK = threading.RLock()  # re-entrant: the signal handler runs in the main thread, maybe inside a `with`
_ATEXIT_INSTALLED = False
_SIGNALS_INSTALLED = False
_PREVIOUS_HANDLERS: dict[int, Any] = {}


def _terminate(process: subprocess.Popen, timeout_s: float) -> int | None:
    """SIGTERM, wait, SIGKILL, wait: by pid, never by name."""
    if process.poll() is None:
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout_s)
    return process.returncode


def _forget(pid: int) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(pid, None)


def live_pids() -> list[int]:
    """Pids of toxiproxy servers this process started and has not stopped yet."""
    with _LIVE_LOCK:
        return [pid for pid, process in _LIVE.items() if process.poll() is None]


def stop_all(timeout_s: float = 2.0) -> None:
    """Stop every server this process started (the atexit hook)."""
    with _LIVE_LOCK:
        processes = list(_LIVE.values())
        _LIVE.clear()
    for process in processes:
        try:
            _terminate(process, timeout_s)
        except Exception:  # noqa: BLE001 - cleanup goes on with the next pid
            pass


def _on_signal(signum: int, frame: Any) -> None:
    stop_all(timeout_s=1.0)
    previous = _PREVIOUS_HANDLERS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)  # die of the same signal, as we would have without us
    os.kill(os.getpid(), signum)


def _install_hooks(signals: bool) -> None:
    """``atexit`` covers a normal exit, an uncaught exception and Ctrl-C (KeyboardInterrupt);
    SIGTERM/SIGHUP would kill Python without atexit, so they get a handler that stops our pids
    and then dies of the same signal (or calls the handler that was there before). Signal
    handlers can only be set from the main thread; PDEATHSIG covers SIGKILL."""
    global _ATEXIT_INSTALLED, _SIGNALS_INSTALLED
    if not _ATEXIT_INSTALLED:
        _ATEXIT_INSTALLED = True
        atexit.register(stop_all)
    if signals and not _SIGNALS_INSTALLED and threading.current_thread() is threading.main_thread():
        _SIGNALS_INSTALLED = True
        for signum in (signal.SIGTERM, signal.SIGHUP):
            current = signal.getsignal(signum)
            if current in (signal.SIG_DFL, None) or callable(current):
                _PREVIOUS_HANDLERS[signum] = current
                signal.signal(signum, _on_signal)


def _pdeathsig_preexec():
    """On Linux, when called from the main thread: the child gets SIGKILL when we die, even by
    SIGKILL. (PDEATHSIG follows the *thread* that forked, so it is not used from other threads.)"""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    parent = os.getpid()

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


# ---------------------------------------------------------------------------------------------
# ownership of the API port

def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _listening_inodes(port: int) -> set[str] | None:
    inodes: set[str] = set()
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes if found_table else None


def owns_listener(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds the socket listening on ``port`` (None: cannot tell, no /proc)."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None if not os.path.isdir("/proc/self/fd") else False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# the server

@dataclass
class StartAttempt:
    port: int
    pid: int
    outcome: str  # "ready" | "api port taken" | "exited" | "no answer"
    detail: str = ""


@dataclass
class ToxiproxyServer:
    """``toxiproxy-server -host 127.0.0.1 -port N`` as a child process, stopped by its pid.

    Ready means ``GET /version`` answered and the listening socket on N belongs to this very
    process (the "Starting Toxiproxy HTTP server" log line comes before the socket listens). The
    trap: when N is taken, toxiproxy logs "Server finished with error ... address already in use"
    and *keeps running without an API*, and if N is another toxiproxy's API port, ``/version``
    even answers, from the other server. Both are detected (the log line, and the socket's owner
    in /proc); the process is killed and the start retried on another free port.

    The server's log goes to a file, never to a pipe (it logs every API call and connection at
    the default level, and a pipe nobody reads would block it). The file is unlinked at once and
    read through the descriptor we keep (:meth:`log_text`), so no log is left behind even if the
    harness is SIGKILLed; ``keep_log=True`` keeps it at :attr:`log_path`. ``LOG_LEVEL`` defaults
    to info.
    """

    binary: str | Path | None = None
    host: str = HOST
    port: int | None = None  # first port to try (tests use it to exercise the port-taken trap)
    ready_timeout_s: float = READY_TIMEOUT_S
    stop_timeout_s: float = STOP_TIMEOUT_S
    http_timeout_s: float = HTTP_TIMEOUT_S
    attempts: int = START_ATTEMPTS
    log_level: str = "info"
    keep_log: bool = False
    install_signal_cleanup: bool = True
    process: subprocess.Popen | None = field(default=None, init=False)
    log_path: Path | None = field(default=None, init=False)  # only with keep_log
    version: str = field(default="", init=False)
    _log_fd: int | None = field(default=None, init=False, repr=False)
    history: list[StartAttempt] = field(default_factory=list, init=False)
    _client: ToxiproxyClient | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def client(self) -> ToxiproxyClient:
        if self._client is None:
            raise ToxiproxyError("toxiproxy is not running")
        return self._client

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def create_proxy(self, name: str, upstream_port: int | None = None, upstream: str | None = None,
                     listen: str = f"{HOST}:0") -> ProxyHandle:
        """A proxy to ``127.0.0.1:upstream_port`` (or ``upstream``) on a kernel-chosen port."""
        if (upstream_port is None) == (upstream is None):
            raise ValueError("give exactly one of upstream_port or upstream")
        return self.client.create_proxy(name, upstream or f"{HOST}:{upstream_port}", listen=listen)

    def delete_proxy(self, proxy: ProxyHandle | str) -> None:
        """Delete a proxy (closing its connections); one already gone is fine."""
        try:
            self.client.request("DELETE", f"/proxies/{_quote(proxy if isinstance(proxy, str) else proxy.name)}")
        except NotFound:
            pass

    def log_text(self, limit: int = 1 << 20) -> str:
        """The server's output so far (its last ``limit`` bytes)."""
        if self._log_fd is None:
            return ""
        try:
            size = os.fstat(self._log_fd).st_size
            start = max(0, size - limit)
            return os.pread(self._log_fd, size - start, start).decode(errors="replace")
        except OSError:
            return ""

    # -- start -------------------------------------------------------------------------------
    def start(self) -> "ToxiproxyServer":
        if self.alive():
            return self
        path = find_binary(self.binary)
        _install_hooks(self.install_signal_cleanup)
        first = self.port
        problems: list[str] = []
        for attempt in range(max(1, self.attempts)):
            port = first if (attempt == 0 and first) else free_port(self.host)
            outcome = self._attempt(path, port)
            self.history.append(outcome)
            if outcome.outcome == "ready":
                return self
            problems.append(f"port {port}: {outcome.outcome} {outcome.detail}".strip())
        raise ToxiproxyStartError(f"toxiproxy-server ({path}) did not start after {self.attempts} attempts: " + "; ".join(problems))

    def _attempt(self, path: Path, port: int) -> StartAttempt:
        self._close_log()
        handle, log_name = tempfile.mkstemp(prefix=f"toxiproxy-{port}-", suffix=".log")
        if self.keep_log:
            self.log_path = Path(log_name)
        else:
            os.unlink(log_name)  # the child writes, we read, through descriptors: nothing to clean up
        self._log_fd = handle
        env = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}
        if self.log_level:
            env["LOG_LEVEL"] = self.log_level
        process = subprocess.Popen(
            [str(path), "-host", self.host, "-port", str(port)], stdin=subprocess.DEVNULL, stdout=handle,
            stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=_pdeathsig_preexec(),
        )
        self.process, self.port = process, port
        with _LIVE_LOCK:
            _LIVE[process.pid] = process
        client = ToxiproxyClient(self.host, port, timeout_s=self.http_timeout_s)
        outcome, detail = self._wait_ready(client)
        if outcome == "ready":
            self._client = client
            return StartAttempt(port, process.pid, outcome, self.version)
        client.close()
        self._kill_current()
        return StartAttempt(port, process.pid, outcome, detail)

    def _wait_ready(self, client: ToxiproxyClient) -> tuple[str, str]:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            log = self.log_text()
            if "Server finished with error" in log or "address already in use" in log:
                return "api port taken", _last_error(log)
            if self.process.poll() is not None:
                return "exited", f"exit status {self.process.returncode}: {log.strip()[-300:]}"
            try:
                version = client.version(timeout_s=0.5)
            except ToxiproxyError as error:
                last = str(error)
                time.sleep(0.01)
                continue
            owner = owns_listener(self.process.pid, self.port or 0)
            if owner is False:
                return "api port taken", f"GET /version answered ({version}) but from another process's socket"
            if owner is None:  # no /proc: give the listen error a moment to reach the log
                time.sleep(0.2)
                if "Server finished with error" in self.log_text():
                    return "api port taken", _last_error(self.log_text())
            self.version = version
            return "ready", version
        return "no answer", f"within {self.ready_timeout_s:g} s ({last})"

    # -- stop --------------------------------------------------------------------------------
    def _kill_current(self) -> int | None:
        process = self.process
        if process is None:
            return None
        code = _terminate(process, self.stop_timeout_s)
        _forget(process.pid)
        return code

    def _close_log(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``; the exit status (None if never started)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        code = self._kill_current()
        self._close_log()
        return code

    def __enter__(self) -> "ToxiproxyServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _last_error(log: str) -> str:
    for line in reversed(log.splitlines()):
        if '"level":"error"' in line:
            try:
                record = json.loads(line)
                return f"{record.get('message', '')}: {record.get('error', '')}"
            except ValueError:
                return line[-300:]
    return log.strip()[-300:]


def available() -> tuple[bool, str | None]:
    """(True, None) if a usable toxiproxy-server is installed, else (False, how to get one)."""
    try:
        find_binary()
    except ToxiproxyUnavailable as error:
        return False, str(error)
    return True, None


@contextmanager
def running_toxiproxy(**kwargs: Any) -> Iterator[ToxiproxyServer]:
    """``with running_toxiproxy() as server:`` -- started, and stopped whatever happens."""
    server = ToxiproxyServer(**kwargs)
    try:
        yield server.start()
    finally:
        server.stop()


__all__ = [
    "ToxiproxyServer", "ToxiproxyClient", "ProxyHandle", "StartAttempt", "running_toxiproxy", "available", "find_binary", "binary_version",
    "toxic_from_data", "scaled_toxic", "scaled_attributes",
    "owns_listener", "free_port", "live_pids", "stop_all",
    "Toxic", "LatencyToxic", "BandwidthToxic", "SlowCloseToxic", "TimeoutToxic", "ResetPeerToxic", "SlicerToxic",
    "LimitDataToxic", "TOXIC_TYPES", "toxic_from_api",
    "ToxiproxyError", "ToxiproxyUnavailable", "ToxiproxyStartError", "ToxiproxyConnectionError", "ToxiproxyTimeout",
    "ToxiproxyAPIError", "ProxyExists", "NotFound", "InvalidToxic", "ToxiproxyServerError", "ToxicValidationError",
]
