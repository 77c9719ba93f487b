"""The built-in clients, assembled from harness/clients/adapters/ (one module per client family),
and the lookup by name. ``BUILT_IN`` keeps the order clients are listed and run in."""

from __future__ import annotations

from harness.clients.adapter import ClientAdapter
from harness.clients.adapters import ai_sdk, claude_code, curl, go_sdk, openai_node, openai_python, python_sdk, reference, ts_sdk
from harness.clients.adapters.command import command_client
from harness.clients.adapters.reference import reference_client

__all__ = ["BUILT_IN", "command_client", "get", "reference_client"]

ADAPTERS = (python_sdk, ts_sdk, go_sdk, claude_code, curl, reference, openai_python, openai_node, ai_sdk)
BUILT_IN: dict[str, ClientAdapter] = {client.name: client for module in ADAPTERS for client in module.CLIENTS}


def get(name: str) -> ClientAdapter:
    if name not in BUILT_IN:
        raise KeyError(f"unknown client {name!r}; built in: {', '.join(BUILT_IN)} (or use --client-cmd)")
    return BUILT_IN[name]
