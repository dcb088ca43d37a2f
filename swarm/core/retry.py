"""One retry policy for calls that may fail for a while (a restarting actor, a busy server):
exponential back-off with full jitter, under a deadline. Pure: the clock, the sleep and the
random source are parameters.

Jitter keeps a thousand workers that lost the coordinator at the same moment from calling it
again at the same moments.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["RetryPolicy", "RetriesExhausted", "retried", "ONCE"]

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
