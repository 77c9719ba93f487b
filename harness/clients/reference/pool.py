"""Connections: the httpx clients a strategy sends on, renewed after a connection failure."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx


class Pool:
    """The current httpx client, and the retired ones still in use (closed when the last user leaves)."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self.factory = factory
        self.client = factory()
        self.users: dict[int, int] = {id(self.client): 0}
        self.retired: dict[int, httpx.AsyncClient] = {}
        self.renewals = 0

    @asynccontextmanager
    async def use(self) -> AsyncIterator[httpx.AsyncClient]:
        client = self.client
        self.users[id(client)] = self.users.get(id(client), 0) + 1
        try:
            yield client
        finally:
            self.users[id(client)] -= 1
            if id(client) in self.retired and self.users[id(client)] == 0:
                del self.retired[id(client)], self.users[id(client)]
                await client.aclose()

    async def renew(self, failed: httpx.AsyncClient | None = None) -> bool:
        """A new client (new connections) from now on; False if ``failed`` was already replaced."""
        if failed is not None and failed is not self.client:
            return False
        old, self.client = self.client, self.factory()
        self.users[id(self.client)] = 0
        self.renewals += 1
        if self.users.get(id(old), 0) == 0:
            self.users.pop(id(old), None)
            await old.aclose()
        else:
            self.retired[id(old)] = old
        return True

    async def aclose(self) -> None:
        for client in [self.client, *self.retired.values()]:
            await client.aclose()
        self.retired.clear()


def http_client_factory(
    timeout_s: float,
    http2_mode: str = "",
    ca_file: str | None = None,
    socket_options: list[tuple[int, int, int]] | None = None,
    pool_idle_s: float | None = None,
) -> Callable[[], httpx.AsyncClient]:
    """httpx clients as the Python SDK configures them: one timeout for connect, read, write and
    pool (the script's ``timeout_s``, default 600 s), the SDK's connection limits; ``socket_options``
    (the strategy's keepalive / TCP_USER_TIMEOUT) set on every connection's socket; ``pool_idle_s``
    how long an idle connection stays pooled (httpx's default, 5 s, when None)."""

    def make() -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        kwargs: dict[str, Any] = {}
        if http2_mode == "1":
            kwargs["http2"] = True
        elif http2_mode == "prior-knowledge":
            kwargs.update(http2=True, http1=False)
        if socket_options or pool_idle_s is not None:
            limits = httpx.Limits(
                max_connections=1000, max_keepalive_connections=100, **({"keepalive_expiry": pool_idle_s} if pool_idle_s is not None else {})
            )
            transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, socket_options=socket_options or None, **kwargs)
            return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), trust_env=False, transport=transport)
        return httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            verify=verify,
            trust_env=False,
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            **kwargs,
        )

    return make
