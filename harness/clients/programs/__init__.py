"""The Python contract clients: programs the harness launches (``python -m harness.clients.programs.NAME``).

What they share: a turn's parts sent at once, and one JSON line per part."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def send_parts(ask: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``ask(*args)`` for each part's ``args``, all at once: each part's reply, or the exception it raised."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(ask, *args) for args in calls]
        outcomes: list[Any] = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except Exception as error:  # the contract reports every failure the same way
                outcomes.append(error)
    return outcomes


def print_parts(
    turn: int, outcomes: list[Any], summarize: Callable[[int, Any, float], dict], started: float, describe: Callable[[BaseException], str]
) -> bool:
    """One line per part, ``summarize(turn, reply, started)`` or the error (with ``part`` when the turn
    has several); whether every part succeeded."""
    for part, outcome in enumerate(outcomes):
        line = {"turn": turn, "error": describe(outcome)} if isinstance(outcome, Exception) else summarize(turn, outcome, started)
        if len(outcomes) > 1:
            line["part"] = part
        print(json.dumps(line), flush=True)
    return not any(isinstance(outcome, Exception) for outcome in outcomes)
