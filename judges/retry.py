"""What the API judges share about talking to an endpoint: rate limits, retries, fail-fast, URL checks.

Why: a wrong ``base_url`` must not cost days of per-text retries (stop after a few connection failures in a
row, naming the endpoint), a server that says ``Retry-After`` is obeyed, and quota is respected. Retrying is
left to well-kept code: the ``openai`` client's own ``max_retries`` for the OpenAI judge, ``tenacity`` for the
Perspective judge; only the token bucket and the fail-fast counter are ours.
"""

from __future__ import annotations

import email.utils
import threading
import time
from typing import Callable

from valueharms.errors import InputError


class TokenBucket:
    """Allow ``rate`` calls per second on average with bursts up to ``burst``; thread-safe."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise InputError(None, None, "rps", "a request rate must be > 0")
        self.rate, self.capacity = float(rate), max(1.0, float(burst))
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            self._sleep(wait)


class RetryableError(Exception):
    """A transient failure (429, 5xx, timeout, malformed body) worth another try; ``retry_after`` in seconds
    when the server said how long to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EndpointUnreachable(InputError):
    """Several requests in a row failed to connect: the endpoint is wrong or down, so stop instead of retrying
    every text. Subclasses :class:`InputError` so the CLI prints one line and exits 2."""


class ConnectionGuard:
    """Counts connection-level failures in a row (refused, DNS, TLS, bad scheme) across threads and raises
    :class:`EndpointUnreachable` at ``limit``; any answer from the server resets the count."""

    def __init__(self, judge: str, endpoint: str, limit: int = 3, option: str = "--judge.base_url") -> None:
        self.judge, self.endpoint, self.limit, self.option = judge, endpoint, max(1, int(limit)), option
        self._failures = 0
        self._lock = threading.Lock()

    def answered(self) -> None:
        with self._lock:
            self._failures = 0

    def failed(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            count = self._failures
        if count >= self.limit:
            raise EndpointUnreachable(None, None, None, (
                f"cannot reach the {self.judge} endpoint {self.endpoint} ({reason}; {count} requests in a row); "
                f"check {self.option} and the network, then rerun (judgements already received are kept)"))


def check_url(url: str | None, option: str = "--judge.base_url") -> str | None:
    """Reject a malformed endpoint URL up front (one line, exit 2) instead of failing on every request."""
    if url is None:
        return None
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as err:
        raise InputError(None, None, option, f"malformed URL {url!r} ({err})") from None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise InputError(None, None, option, f"malformed URL {url!r}: expected http(s)://host[:port]/path")
    return url


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def backoff(base_delay: float, max_attempts: int, max_total: float, max_delay: float = 30.0):
    """A ``tenacity.Retrying`` for :class:`RetryableError`: the server's ``Retry-After`` when it sent one,
    else exponential backoff with jitter; at most ``max_attempts`` tries and ``max_total`` seconds."""
    import tenacity

    jitter = tenacity.wait_random_exponential(multiplier=base_delay, max=max_delay)  # "full jitter"

    def wait(state: tenacity.RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome else None
        asked = getattr(err, "retry_after", None)
        return min(float(asked), max_total) if asked is not None else jitter(state)

    return tenacity.Retrying(retry=tenacity.retry_if_exception_type(RetryableError), wait=wait, reraise=True,
                             stop=tenacity.stop_after_attempt(max_attempts) | tenacity.stop_after_delay(max_total))
