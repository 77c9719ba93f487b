"""The reference client: a contract client whose retry behaviour is a pluggable strategy.

It speaks the Messages API itself, on httpx (HTTP/1.1; STREAMCHAOS_HTTP2=1 for h2 over TLS by ALPN,
=prior-knowledge for h2c), streams ``POST /v1/messages`` and parses the SSE with the project's
decoder, so every retry decision is its own and follows the strategy named by
STREAMCHAOS_STRATEGY (a name from :data:`harness.measure.strategies.STRATEGIES`, default ``sdk-default``),
with its durations multiplied by STREAMCHAOS_TIME_SCALE when set.

What it treats as retryable: connection errors, resets, incomplete bodies, HTTP 408/409/429/5xx
(``x-should-retry`` overrides; ``retry-after-ms`` then ``retry-after`` replace the backoff), an SSE
``error`` event (overloaded_error, api_error, rate_limit_error, timeout_error), a stream that ends
without ``message_stop`` (never a short answer), and the idle watchdog. How it retries comes from
the strategy, applied through :class:`harness.measure.strategies.RetryController` inside a tenacity loop:

* max attempts and the backoff delays; whether a failure after the response headers (mid-stream)
  may be retried at all; the gRPC A6 retry budget and SRE adaptive throttling, shared by every
  request of the process;
* ``idle_timeout_s``: a watchdog on the gap between bytes (and before the headers) that aborts the
  attempt;
* ``fresh_connection``: after a connection-level failure (transport error, GOAWAY, a timeout or the
  watchdog) the httpx client and its pool are retired and a new one is made, so the retry never
  goes out on a dead pooled connection; the old client is closed once nothing uses it;
* ``hedge_after_s``: with no first byte (response headers) after that long, a second copy goes out
  on a connection of its own; whichever finishes first wins and the other is cancelled;
* ``resume``: the retry re-sends the same conversation and the text already shown is not shown
  again: the new stream must start with it (it is skipped), then only the rest is shown; if the new
  answer does not start with it, the whole new answer is shown after a marker. (A prefilled
  assistant message would make this simulator, like the API, generate a different answer.)

Output: the contract's JSON line per turn (plus ``attempts``), or ``{"turn": i, "error": ...}`` and
exit 1. Retry decisions are logged to stderr. STREAMCHAOS_LIVE=stderr|<file> also writes the text
as it is shown, live, with a marker wherever a retry restarted it: what a user watching the answer
would have seen (duplicates included, for a strategy without resume).

The package, one job per module: ``failures`` (what an attempt's failure carries), ``accumulator``
(the message from its events), ``chat`` (the Chat Completions wire), ``transcript`` (what was
shown), ``pool`` (connections), ``watchdog`` (the idle timeout), ``retrying`` (tenacity answered by
the strategy), ``client`` (one logical request), ``main`` (the program: ``python -m
harness.clients.reference``).
"""
