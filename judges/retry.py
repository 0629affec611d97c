"""Token-bucket rate limiting and capped exponential backoff with jitter, shared by the API judges.

Why: Perspective allows 1 QPS by default and OpenAI returns 429 under load; unbounded retries ran for hours
in HELM (#2081), so total retry time is capped and a text that still fails becomes a missing judgement.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T")


class TokenBucket:
    """Allow ``rate`` calls per second on average with bursts up to ``burst``; thread-safe."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
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
    """A transient failure (429, 5xx, timeout, malformed body) worth another try."""


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_total: float = 120.0  # seconds of waiting over all retries of one item

    def run(self, fn: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
        """Call ``fn`` until it succeeds; retry on :class:`RetryableError` with full-jitter backoff."""
        waited = 0.0
        for attempt in range(self.max_attempts):
            try:
                return fn()
            except RetryableError:
                if attempt == self.max_attempts - 1:
                    raise
                delay = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
                if waited + delay > self.max_total:
                    raise
                waited += delay
                sleep(delay)
        raise AssertionError("unreachable")
