"""The interface every client adapter implements, and the adapter of a contract program.

An adapter turns a :class:`Launch` (base URL, key, CA, client script, deadline, time scale, a
scratch directory) into an :class:`Invocation`, says whether its client is installed, which HTTP
versions and APIs it speaks, and what retry policy its documentation declares (shown beside the
backoff the simulator measured).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.clients.launch import contract_env

CLIENTS_DIR = Path(__file__).resolve().parent
NODE_BIN = shutil.which("node") or "node"


@dataclass(frozen=True)
class Launch:
    """What an adapter needs to launch its client for one trial."""

    base_url: str
    api_key: str
    ca_file: str | None
    script: Mapping[str, Any]  # STREAMCHAOS_SCRIPT: what the client is to do
    deadline_s: float
    workdir: Path
    time_scale: float = 1.0  # the trial's scale (the scenario's, or the run's override)


@dataclass(frozen=True)
class Invocation:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None = None
    output: str = "contract"  # "contract" JSON lines | "text" (the final answer) | "sse" (raw stream)
    stdin: bytes | None = None


@dataclass(frozen=True)
class ClientAdapter:
    name: str
    description: str
    protocols: tuple[str, ...]  # HTTP versions it speaks against this simulator
    policy: str
    requires: tuple[Path | str, ...] = ()
    max_turns: int | None = None  # None: any number
    parallel: bool = True
    final_answer_only: bool = False  # prints the last turn's answer only (Claude Code)
    on_by_default: bool = True  # run by `streamchaos run` without --clients (the reference clients are not)
    apis: tuple[str, ...] = ("messages",)  # the APIs it speaks: "messages", "chat", "responses" (a scenario's api)
    missing_hint: str = "run `make setup`, or `streamchaos setup --clients NAME`"  # issue 14: clients install into a user cache too

    def installed(self) -> tuple[bool, str]:
        for item in self.requires:
            if not (Path(item).exists() or shutil.which(str(item))):
                return False, f"{item} not found ({self.missing_hint})"
        return True, ""

    def invocation(self, launch: Launch) -> Invocation:
        raise NotImplementedError

    def speaks(self, transports: tuple[str, ...]) -> bool:
        return any(protocol in transports for protocol in self.protocols)


@dataclass(frozen=True)
class ContractClient(ClientAdapter):
    """A program that reads STREAMCHAOS_SCRIPT and prints the contract's JSON lines."""

    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def invocation(self, launch: Launch) -> Invocation:
        return Invocation(
            self.argv, contract_env(launch.base_url, launch.api_key, launch.script, launch.ca_file, self.env, script_dir=launch.workdir)
        )
