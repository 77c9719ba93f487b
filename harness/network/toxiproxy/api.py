"""Toxiproxy's HTTP API, typed: one :class:`ToxiproxyClient` per server, a :class:`ProxyHandle` per proxy.

It keeps using the ``toxiproxy-python`` package (its ``APIConsumer`` and its exception types) but
wraps its gaps: the package keeps one global host/port on ``APIConsumer`` (here every server gets
its own ``APIConsumer`` subclass with its own host, port and session, so two servers in one
process never share state), has no HTTP timeouts (here every call has one), has no toxic update
(here ``PATCH``), raises only on 400/404/409 (here every status >= 400 raises, 5xx included), and
toggles proxies with the deprecated ``POST /proxies/{p}`` (here ``PATCH``).

A ``User-Agent`` starting with ``Mozilla/`` gets 403; API handlers give up after 25 s with 503.
"""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import requests
from toxiproxy.api import APIConsumer

from harness.network.toxiproxy.errors import ToxiproxyConnectionError, ToxiproxyTimeout, api_error
from harness.network.toxiproxy.toxics import LimitDataToxic, ResetPeerToxic, Toxic, toxic_from_api
from harness.network.toxiproxy.toxics.base import NAME

HOST = "127.0.0.1"
USER_AGENT = "streamchaos-harness/0.1 (toxiproxy client)"
HTTP_TIMEOUT_S = 10.0


class _ServerAPIConsumer(APIConsumer):
    """The package's ``APIConsumer`` keeps ``host``/``port`` as class attributes shared by every
    user; each server gets its own subclass (:func:`consumer_for`) so nothing is shared. Calls
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
            raise api_error(method, url, response.status_code, response.text)
        return response

    @classmethod
    def get(cls, url, params=None, **kwargs):
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


def consumer_for(host: str, port: int, timeout_s: float, user_agent: str) -> type[_ServerAPIConsumer]:
    session = requests.Session()
    session.trust_env = False  # HTTP_PROXY must never route loopback API calls elsewhere
    session.headers["User-Agent"] = user_agent
    return type(
        f"APIConsumer_{host}_{port}",
        (_ServerAPIConsumer,),
        {
            "host": host,
            "port": port,
            "timeout_s": timeout_s,
            "session": session,
            "lock": threading.Lock(),
        },
    )


def quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class ToxiproxyClient:
    """The API of one toxiproxy server (``http://host:port``)."""

    def __init__(self, host: str = HOST, port: int = 8474, timeout_s: float = HTTP_TIMEOUT_S, user_agent: str = USER_AGENT) -> None:
        if user_agent.startswith("Mozilla/"):
            raise ValueError("toxiproxy answers 403 to any User-Agent starting with 'Mozilla/'")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, not {timeout_s!r}")
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.api = consumer_for(host, port, timeout_s, user_agent)

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

    def proxies(self) -> dict[str, ProxyHandle]:
        return {name: ProxyHandle(self, data) for name, data in self.request("GET", "/proxies").items()}

    def proxy(self, name: str) -> ProxyHandle:
        return ProxyHandle(self, self.request("GET", f"/proxies/{quote(name)}"))

    def create_proxy(self, name: str, upstream: str, listen: str = f"{HOST}:0", enabled: bool = True) -> ProxyHandle:
        """``POST /proxies``; with the default ``listen`` the kernel picks the port and the answer
        says which (``ProxyHandle.port``)."""
        if not NAME.match(name):
            raise ValueError(f"proxy name must be 1-255 of [A-Za-z0-9_.-], not {name!r}")
        data = self.request("POST", "/proxies", {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled})
        return ProxyHandle(self, data)

    def reset(self) -> None:
        """``POST /reset``: enable every proxy and remove every toxic."""
        self.request("POST", "/reset")

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
        return f"/proxies/{quote(self.name)}"

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
    def down(self) -> Iterator[ProxyHandle]:
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
        return toxic_from_api(self.client.request("GET", f"{self._path}/toxics/{quote(name)}"))

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
            raise ValueError(f"toxic {current.toxic_name!r} is a {current.stream} {current.kind}; remove it and add a new one instead")
        body = {"attributes": wanted.attributes(), "toxicity": wanted.toxicity}
        return toxic_from_api(self.client.request("PATCH", f"{self._path}/toxics/{quote(current.toxic_name)}", body))

    def remove_toxic(self, toxic: Toxic | str) -> None:
        name = toxic if isinstance(toxic, str) else toxic.toxic_name
        self.client.request("DELETE", f"{self._path}/toxics/{quote(name)}")

    def remove_all_toxics(self) -> None:
        for toxic in self.toxics():
            self.remove_toxic(toxic)

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
