"""The tenacity glue: one logical request's retry loop answered by a strategy's RetryController."""

from __future__ import annotations

from collections.abc import Callable

from tenacity import RetryCallState

from harness.clients.reference.failures import Failure
from harness.measure import strategies


class Decision:
    """The tenacity callables for one logical request, all answering from one RetryController:
    :meth:`strategy_decides` hands a failure to the strategy (its verdict, a delay or None to give
    up, is logged and kept), ``wait`` gives that delay, ``stop`` ends the loop when it gave up."""

    def __init__(self, controller: strategies.RetryController, log: Callable[[str], None] = lambda line: None) -> None:
        self.controller = controller
        self.log = log
        self.previous_s = 0.0
        self.next_s: float | None = None

    def strategy_decides(self, state: RetryCallState) -> bool:
        """tenacity's ``retry``: True when the strategy judged the failure (retry or give up, see
        ``stop``); False for a success or a failure no strategy retries (raised at once)."""
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        error = outcome.exception()
        if not isinstance(error, Failure):
            return False
        error.attempt = state.attempt_number
        if not error.retryable:
            error.gave_up = "not retryable"
            return False
        strategy = self.controller.strategy
        retry = state.attempt_number
        delay = self.controller.next_delay(retry, self.previous_s, error.mid_stream)
        if delay is None:
            if retry >= strategy.max_attempts:
                error.gave_up = f"strategy {strategy.name}: {strategy.max_attempts} attempt(s) used"
            elif error.mid_stream and not strategy.retry_mid_stream:
                error.gave_up = f"strategy {strategy.name}: never retries after the stream started"
            else:
                error.gave_up = f"strategy {strategy.name}: retry budget exhausted"
        elif error.retry_after_s is not None:
            delay = error.retry_after_s  # the server said when
        self.next_s = delay
        self.log(
            f"attempt {retry}/{strategy.max_attempts} failed: {type(error).__name__}: {error}"
            + (" (mid-stream)" if error.mid_stream else "")
            + (f"; {error.gave_up}" if delay is None else f"; retrying in {delay:.3f} s")
        )
        return True

    def wait(self, state: RetryCallState) -> float:
        if self.next_s is None:
            return 0.0
        self.previous_s = self.next_s
        return self.next_s

    def stop(self, state: RetryCallState) -> bool:
        return self.next_s is None
