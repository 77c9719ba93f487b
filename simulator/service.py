"""A whole simulator: data plane, control plane and journal, started and stopped together."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from .api.router import MessagesApi
from .config import SimulatorConfig
from .control import ControlApp
from .journal import FILE_BYTES, MEMORY_BYTES, Journal
from .server import DataPlane
from .state import ServerState
from .tls import ensure_certificates, server_context

DEFAULT_TLS_DIR = Path(os.environ.get("STREAMCHAOS_TLS_DIR", Path.home() / ".cache" / "streamchaos" / "tls"))


@dataclass(frozen=True, slots=True)
class Endpoints:
    base_url: str
    control_url: str
    ca_file: str | None
    host: str
    port: int
    control_token: str | None = None

    def as_dict(self) -> dict:
        return {"base_url": self.base_url, "control_url": self.control_url, "ca_file": self.ca_file, "control_token": self.control_token}


class Simulator:
    """``async with trio.open_nursery() as n: endpoints = await n.start(sim.run)``."""

    def __init__(
        self,
        config: SimulatorConfig = SimulatorConfig(),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        tls: bool = False,
        tls_dir: Path = DEFAULT_TLS_DIR,
        journal_path: Path | None = None,
        idle_timeout_s: float = 300.0,
        control_token: str | None = None,
        journal_memory_bytes: int = MEMORY_BYTES,
        journal_file_bytes: int = FILE_BYTES,
    ) -> None:
        """``control_token``: required as ``Authorization: Bearer`` by the control API; generated
        when ``host`` is not loopback and none is given (see :func:`is_loopback`)."""
        if not control_token and not is_loopback(host):
            control_token = secrets.token_urlsafe(24)
        self.control_token = control_token or None
        self.tls = tls
        files = ensure_certificates(tls_dir)
        self.ca_file = str(files.ca_file)
        self.state = ServerState(
            config=config,
            journal=Journal(journal_path, memory_bytes=journal_memory_bytes, file_bytes=journal_file_bytes),
            api=MessagesApi(config),
            tls_context=server_context(files),
            idle_timeout_s=idle_timeout_s,
        )
        self.data_plane = DataPlane(self.state, host, port)
        self.host = host
        self.control_port = control_port
        self._stopped = trio.Event()
        self.endpoints: Endpoints | None = None

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(self.data_plane.serve)
                scheme = "https" if self.tls else "http"
                url_host = "localhost" if self.tls and host in ("127.0.0.1", "::1") else _url_host(host)
                info = {"base_url": f"{scheme}://{url_host}:{port}", "ca_file": self.ca_file}
                binds = await nursery.start(
                    hypercorn_serve,
                    ControlApp(self.state, info, self.data_plane, self.control_token),
                    self._control_config(),
                )
                self.endpoints = Endpoints(info["base_url"], binds[0], self.ca_file, host, port, self.control_token)
                info["control_url"] = binds[0]
                task_status.started(self.endpoints)
                await self._stopped.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.state.journal.close()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Graceful: GOAWAY to h2 peers, replies in flight finish (bounded), then everything ends."""
        await self.data_plane.shutdown(grace_s)
        self._stopped.set()

    def _control_config(self) -> HypercornConfig:
        config = HypercornConfig()
        config.bind = [f"{_url_host(self.host)}:{self.control_port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("streamchaos.control")
        config.graceful_timeout = 1
        return config


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else (0.0.0.0, a LAN address) reaches beyond the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
