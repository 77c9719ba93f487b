"""Limits of scenario files and the command line, and the argparse types that enforce them.

Every number a user gives is checked to be finite and inside a documented range before anything
runs (README, "Limits of scenario files and the CLI"): a wrong value is a usage error (exit 2)
naming the option or the file and key, never a traceback, a ZeroDivisionError or an
OverflowError in every trial.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

# -- scenario files --------------------------------------------------------------------------
MAX_FILE_BYTES = 1024 * 1024  # a scenario file
MAX_SECONDS = 86_400.0  # any duration in a scenario file (deadline_s, idle_before_s, at_s, ...): one day
MIN_TIME_SCALE = 0.001
MAX_TIME_SCALE = 10.0
MAX_TRIALS = 100_000  # trials per scenario and client (file, --trials, --max-trials)
MAX_CONCURRENCY = 1_000
MAX_TURNS = 1_000  # conversation.turns and the [[conversation.turn]] list
MAX_WORDS = 100_000  # words, thinking_words, deltas of one turn
MAX_TOKENS = 1_000_000  # max_tokens of one turn
MAX_CONTEXT_KB_TOTAL = 32 * 1024  # the sum of context_kb over all turns: 32 MiB (the simulator's body cap)
MAX_TOXIC_STEPS = 1_000
MAX_PROMPT_CHARS = 256 * 1024

# -- the command line ------------------------------------------------------------------------
MAX_WORKERS = 1_024

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def time_scale(text: str) -> float:
    """``--time-scale``: finite, MIN_TIME_SCALE..MAX_TIME_SCALE."""
    value = _finite(text)
    if not MIN_TIME_SCALE <= value <= MAX_TIME_SCALE:
        raise argparse.ArgumentTypeError(f"must be between {MIN_TIME_SCALE:g} and {MAX_TIME_SCALE:g}, not {text}")
    return value


def whole(minimum: int, maximum: int, what: str = ""):
    """An argparse type: a whole number in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be between {minimum} and {maximum}{what}, not {value}")
        return value

    parse.__name__ = "whole number"
    return parse


trials = whole(1, MAX_TRIALS, " (trials per scenario and client)")
workers = whole(1, MAX_WORKERS)
port = whole(0, 65_535, " (0: any free port)")


def run_id(text: str) -> str:
    """``--run-id``: one directory name inside --results (no '/', not '.' or '..')."""
    if not RUN_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit); it names a directory inside --results"
        )
    return text


def check_run_id(run_id: str, results: Path) -> Path:
    """The directory of ``run_id`` under ``results``; a ValueError if the id would leave it."""
    if not RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
        raise ValueError(
            f"--run-id {run_id!r}: use letters, digits, '.', '_' and '-' (at most 128, not starting with '.' or '-'); "
            "it names a directory inside --results"
        )
    directory = (results / run_id).resolve()
    if directory.parent != results.resolve():
        raise ValueError(f"--run-id {run_id!r} would write outside {results}")
    return results / run_id
