"""One retry policy for calls that may fail for a while (a restarting actor, a busy server):
exponential back-off with full jitter, under a deadline. Pure: the clock, the sleep and the
random source are parameters.

Jitter keeps a thousand workers that lost the coordinator at the same moment from calling it
again at the same moments.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

__all__ = ["RetryPolicy", "RetriesExhausted", "retried", "ONCE", "backoff_s", "retry_after_s",
           "LONGEST_RETRY_AFTER_S"]

# A server may ask for any wait; past this a proposal is better failed (and the worker's next
# one tried) than a worker parked for an hour on one request.
LONGEST_RETRY_AFTER_S = 300.0

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempt_timeout_s: float  # how long one attempt may wait for its answer
    deadline_s: float  # no attempt starts this long after the first one did (0: one attempt)
    first_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delays(self, rng: random.Random) -> Iterator[float]:
        """The waits between attempts: uniform in [0, min(max, first * 2^n)] for the n-th."""
        ceiling = self.first_delay_s
        while True:
            yield rng.uniform(0.0, ceiling)
            ceiling = min(ceiling * 2, self.max_delay_s)


def ONCE(attempt_timeout_s: float) -> RetryPolicy:  # noqa: N802  (reads as a constant at call sites)
    """A single attempt: for calls that are repeated anyway (a poll) or may be skipped."""
    return RetryPolicy(attempt_timeout_s, deadline_s=0.0)


class RetriesExhausted(Exception):
    """Every attempt failed until the deadline; `last` is the last attempt's error."""

    def __init__(self, last: BaseException, attempts: int, elapsed_s: float) -> None:
        super().__init__(f"{attempts} attempt(s) in {elapsed_s:.0f} s; the last: "
                         f"{type(last).__name__}: {' '.join(str(last).split())[:300]}")
        self.last = last
        self.attempts = attempts
        self.elapsed_s = elapsed_s


def retried(attempt: Callable[[float], T], retry_on: tuple[type[BaseException], ...],
            policy: RetryPolicy, *, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep,
            rng: random.Random | None = None) -> T:
    """attempt(timeout_s)'s result, trying again after errors of the `retry_on` kinds until
    the deadline; any other error goes straight through."""
    start = clock()
    delays = policy.delays(rng or random.Random())
    attempts = 0
    while True:
        attempts += 1
        try:
            return attempt(policy.attempt_timeout_s)
        except retry_on as exc:
            delay = next(delays)
            if clock() + delay - start > policy.deadline_s:
                raise RetriesExhausted(exc, attempts, clock() - start) from exc
            sleep(delay)


def backoff_s(attempt: int, first_s: float, max_s: float, rng: random.Random,
              server_asks_s: float | None = None) -> float:
    """The wait before retry number `attempt` (0 first): full jitter, uniform in
    [0, min(max_s, first_s * 2^attempt)], so clients that failed together do not retry
    together; a server's own Retry-After is a floor, since asking sooner only earns another 429."""
    jittered = rng.uniform(0.0, min(max_s, first_s * 2 ** attempt))
    if server_asks_s is None:
        return jittered
    return max(jittered, min(server_asks_s, LONGEST_RETRY_AFTER_S))


def retry_after_s(headers: Mapping[str, str], now: float) -> float | None:
    """The wait a response's headers ask for: `retry-after-ms` (OpenAI's and Anthropic's), else
    `retry-after` as seconds or an HTTP date (RFC 9110 10.2.3); None when absent or unreadable."""
    lowered = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    if (millis := lowered.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    text = lowered.get("retry-after")
    if text is None:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - now)
    except (TypeError, ValueError):
        return None
