"""Any client, given as a command template (``--client-cmd``); not a built-in."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from harness.clients.adapter import ClientAdapter, Invocation, Launch
from harness.clients.launch import contract_env


@dataclass(frozen=True)
class CommandClient(ClientAdapter):
    """A command template with {base_url} {api_key} {ca_file} {script_file} {prompt}; the
    contract's environment is set as well. Output: contract JSON lines or plain text."""

    template: str = ""
    output: str = "contract"

    def invocation(self, launch: Launch) -> Invocation:
        script_file = launch.workdir / "script.json"
        script_file.write_text(json.dumps(launch.script))
        values = {
            "base_url": launch.base_url,
            "api_key": launch.api_key,
            "ca_file": launch.ca_file or "",
            "script_file": str(script_file),
            "prompt": launch.script["turns"][0]["prompt"],
        }
        argv = tuple(part.format(**values) for part in shlex.split(self.template))
        # Run where streamchaos was started, so the template may use paths relative to it.
        return Invocation(
            argv, contract_env(launch.base_url, launch.api_key, launch.script, launch.ca_file, script_dir=launch.workdir), None, self.output
        )


def command_client(template: str, name: str = "custom", output: str = "contract", protocols: tuple[str, ...] = ("http/1.1", "h2")) -> CommandClient:
    if output not in ("contract", "text"):
        raise ValueError(f"--client-output must be 'contract' or 'text', not {output!r}")
    try:
        shlex.split(template)
    except ValueError as error:
        raise ValueError(f"--client-cmd: cannot parse {template!r}: {error}") from None
    return CommandClient(
        name, f"command: {template}", protocols, "declared by the command", template=template, output=output, apis=("messages", "chat", "responses")
    )
