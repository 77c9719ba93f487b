"""What the user was shown: the live text across attempts and hedged copies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.clients.reference.accumulator import CHANNELS, Accumulator


class Transcript:
    """What one logical request's answer has shown so far, per channel (thinking, text), across
    attempts and hedged copies. One copy at a time owns the display (the first to deliver a delta in
    an attempt); the winner's whole answer is reconciled at the end (:meth:`settle`), so what was
    shown always ends equal to the answer printed."""

    RESTART = "\n[streamchaos: the stream failed; the answer starts again]\n"
    DIFFERS = "\n[streamchaos: the retried answer differs from what was shown; here it is whole]\n"

    def __init__(self, live: Callable[[str], None] | None = None) -> None:
        self.shown = dict.fromkeys(CHANNELS, "")
        self.live = live or (lambda text: None)
        self.owner: Feed | None = None
        self.attempts = 0
        self.restarts = 0  # times the display started over (no resume, or a mismatch)
        self.mismatches = 0
        self.resumed_chars = 0  # characters a resumed attempt re-received and did not show again

    def begin_attempt(self, resume: bool) -> None:
        self.attempts += 1
        self.owner = None
        if self.attempts > 1 and not resume and any(self.shown.values()):
            if self.shown["text"]:
                self.restarts += 1
                self._emit(self.RESTART)
            self.shown = dict.fromkeys(CHANNELS, "")

    def feed(self) -> Feed:
        return Feed(self, dict(self.shown))

    def offer(self, feed: Feed, channel: str, full: str) -> None:
        if self.owner is None:
            self.owner = feed
        if self.owner is feed:
            self._advance(channel, full)

    def _advance(self, channel: str, full: str) -> None:
        shown = self.shown[channel]
        if len(full) <= len(shown):
            if shown.startswith(full):
                return  # the new stream is re-producing what was shown: skip it
        elif full.startswith(shown):
            if channel == "text":
                self._emit(full[len(shown) :])
            self.shown[channel] = full
            return
        self._differs(channel, full)

    def _differs(self, channel: str, full: str) -> None:
        self.mismatches += 1
        if channel == "text":  # the live display shows the text only
            self.restarts += 1
            self._emit(self.DIFFERS + full)
        self.shown[channel] = full

    def settle(self, acc: Accumulator, feed: Feed | None) -> None:
        """The winning copy's answer: show whatever of it is not shown yet; count what a resume skipped."""
        for channel in CHANNELS:
            full = acc.channel(channel)
            if self.shown[channel] != full:
                self._advance(channel, full)
            if self.shown[channel] != full:  # shown is longer than the final answer
                self._differs(channel, full)
            kept = feed.kept.get(channel, "") if feed is not None else ""
            if kept and full.startswith(kept):
                self.resumed_chars += len(kept)

    def _emit(self, text: str) -> None:
        if text:
            self.live(text)


@dataclass
class Feed:
    """One copy's view: its own text so far, offered to the transcript as it grows."""

    transcript: Transcript
    kept: dict[str, str]  # what had been shown when this copy started
    seen: dict[str, str] = field(default_factory=lambda: dict.fromkeys(CHANNELS, ""))

    def __call__(self, channel: str, piece: str) -> None:
        self.seen[channel] += piece
        self.transcript.offer(self, channel, self.seen[channel])
