"""The one retry policy (swarm/core/retry.py): back-off with full jitter under a deadline, on a
virtual clock."""

from __future__ import annotations

import random

import pytest

from swarm.core.retry import (
    LONGEST_RETRY_AFTER_S, ONCE, RetriesExhausted, RetryPolicy, backoff_s, retried, retry_after_s,
)

__all__: list[str] = []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(times: int, error: type[Exception] = TimeoutError, clock: Clock | None = None,
            cost_s: float = 0.0):
    calls: list[float] = []

    def attempt(timeout_s: float) -> str:
        calls.append(timeout_s)
        if clock is not None:
            clock.now += cost_s
        if len(calls) <= times:
            raise error(f"try {len(calls)}")
        return "answer"
    attempt.calls = calls  # type: ignore[attr-defined]
    return attempt


def test_delays_grow_exponentially_up_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(attempt_timeout_s=1, deadline_s=100, first_delay_s=0.5, max_delay_s=4.0)
    delays = policy.delays(random.Random(3))
    drawn = [next(delays) for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0 <= d <= c for d, c in zip(drawn, ceilings, strict=True))
    assert len(set(drawn)) == len(drawn)  # jittered: no two alike
    assert max(drawn[3:]) > 2.0  # past the doubling, waits reach beyond the earlier ceilings


def test_two_workers_that_failed_at_the_same_moment_retry_at_different_moments() -> None:
    policy = RetryPolicy(attempt_timeout_s=1, deadline_s=100)
    one, two = policy.delays(random.Random(1)), policy.delays(random.Random(2))
    assert [next(one) for _ in range(3)] != [next(two) for _ in range(3)]


def test_a_passing_error_is_retried_until_the_answer_comes() -> None:
    clock = Clock()
    attempt = failing(3, clock=clock)
    answer = retried(attempt, (TimeoutError,), RetryPolicy(30.0, deadline_s=60.0), clock=lambda: clock.now,
                     sleep=clock.sleep, rng=random.Random(0))
    assert answer == "answer"
    assert attempt.calls == [30.0] * 4 and len(clock.slept) == 3


def test_past_the_deadline_the_last_error_is_raised_with_the_attempts_counted() -> None:
    clock = Clock()
    attempt = failing(1000, clock=clock, cost_s=10.0)  # every attempt waits 10 s for nothing
    with pytest.raises(RetriesExhausted) as caught:
        retried(attempt, (TimeoutError,), RetryPolicy(10.0, deadline_s=45.0), clock=lambda: clock.now,
                sleep=clock.sleep, rng=random.Random(0))
    assert 4 <= caught.value.attempts <= 5 and clock.now <= 45.0 + 10.0
    assert isinstance(caught.value.last, TimeoutError)
    assert str(caught.value).startswith(f"{caught.value.attempts} attempt(s) in ")
    assert str(caught.value).endswith(f"the last: TimeoutError: try {caught.value.attempts}")


def test_once_tries_one_time() -> None:
    clock = Clock()
    attempt = failing(1)
    with pytest.raises(RetriesExhausted):
        retried(attempt, (TimeoutError,), ONCE(5.0), clock=lambda: clock.now, sleep=clock.sleep)
    assert attempt.calls == [5.0] and clock.slept == []


def test_an_error_not_named_retryable_goes_straight_through() -> None:
    attempt = failing(1, error=KeyError)
    with pytest.raises(KeyError):
        retried(attempt, (TimeoutError,), RetryPolicy(1.0, deadline_s=60.0), sleep=lambda s: None)
    assert len(attempt.calls) == 1


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Retry-After": "12"}, 12.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the finer one wins
    ({"retry-after": "Wed, 02 Dec 2026 04:00:30 GMT"}, 30.0),  # an HTTP date, 30 s after `now`
    ({"retry-after": "Wed, 02 Dec 2026 03:59:00 GMT"}, 0.0),  # a date already past: no wait
    ({"retry-after": "soon"}, None),
    ({"content-type": "application/json"}, None),
])
def test_retry_after_reads_seconds_milliseconds_and_http_dates(
        headers: dict[str, str], expected: float | None) -> None:
    now = 1_796_184_000.0  # Wed, 02 Dec 2026 04:00:00 GMT
    assert retry_after_s(headers, now) == expected


def test_backoff_is_full_jitter_under_a_doubling_ceiling_with_the_servers_ask_as_a_floor() -> None:
    rng = random.Random(7)
    waits = [backoff_s(n, 1.0, 8.0, rng) for n in range(6) for _ in range(200)]
    by_attempt = [waits[i * 200:(i + 1) * 200] for i in range(6)]
    for n, sample in enumerate(by_attempt):
        ceiling = min(8.0, 2.0 ** n)
        assert all(0 <= w <= ceiling for w in sample)
        assert max(sample) > 0.9 * ceiling and min(sample) < 0.1 * ceiling  # spread over the range
    assert backoff_s(0, 1.0, 8.0, rng, server_asks_s=20.0) == 20.0
    assert backoff_s(0, 1.0, 8.0, rng, server_asks_s=10_000.0) == LONGEST_RETRY_AFTER_S
