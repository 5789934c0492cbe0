"""When and how long to retry a call to the management server.

The only module that imports tenacity (as stamina does): the rest of bondha
sees a small frozen :class:`RetryPolicy` and one function, :func:`call`.
Only what another attempt can fix is retried (``ApiError.retryable``:
transport faults, 5xx, 429); a server's ``Retry-After`` is honoured; the last
error is re-raised unchanged so its message reaches the operator.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Callable, ClassVar, TypeVar

import attrs

from .errors import ApiError
from .wire import INTERRUPT_EVERY

if TYPE_CHECKING:
    import tenacity  # imported when a call first fails: a clean failover never needs it

__all__ = ["RetryPolicy", "call", "sleep"]

T = TypeVar("T")
log = logging.getLogger("bondha.retry")
# ``attempts`` for a call retried "until the deadline" (reads): the deadline ends it first.
UNTIL_DEADLINE = 1000


@attrs.frozen
class RetryPolicy:
    """How often and how patiently one API call is retried.

    ``attempts`` counts every try, the first included (the config's ``attempts``).
    The first wait is ``delay`` (the config's ``attempt_delay``), doubling up to
    ``max_delay``, each wait spread by up to ``jitter`` of itself so that both
    bonders do not hammer the server in step. ``deadline_at`` (a
    ``time.monotonic()`` instant) ends the retrying early: no wait ever
    crosses it.
    """

    attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    delay: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))
    max_delay: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    max_delay_default: ClassVar[float] = 30.0
    jitter: float = attrs.field(default=0.25, validator=attrs.validators.and_(
        attrs.validators.ge(0), attrs.validators.le(1)))
    deadline_at: float | None = None

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based): doubling, with jitter."""
        wait = min(self.max_delay, self.delay * 2 ** (attempt - 1))
        return float(wait * (1 + random.uniform(-self.jitter, self.jitter)))  # noqa: S311 - not crypto

    def remaining(self) -> float | None:
        """Seconds left before the deadline, or None when there is none."""
        if self.deadline_at is None:
            return None
        return max(0.0, self.deadline_at - time.monotonic())


def _wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        backoff = policy.backoff(state.attempt_number)
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, ApiError) else None
        return float(max(backoff, retry_after or 0.0))

    return wait


def _stop(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], bool]:
    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.attempts:
            return True
        # tenacity computes the coming wait before asking us: never sleep past the deadline.
        return policy.deadline_at is not None and (
            time.monotonic() + state.upcoming_sleep >= policy.deadline_at
        )

    return stop


def _log_retry(policy: RetryPolicy, what: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = str(error).removeprefix(f"{what}: ")  # the error names the call too
        tries = (f"try {state.attempt_number}" if policy.attempts >= UNTIL_DEADLINE
                 else f"try {state.attempt_number} of {policy.attempts}")
        left = policy.remaining()
        until = ("" if left is None else
                 f", until the deadline {left:.1f}s from now ([bondha] deadline)")
        log.warning("%s failed (%s): %s; retrying it in %.1fs%s", what, tries, reason,
                    state.upcoming_sleep, until)

    return before_sleep


async def sleep(seconds: float, interrupt: Callable[[], None] | None = None) -> None:
    """``asyncio.sleep`` in short slices, calling ``interrupt`` (which may raise) before each.

    So that a run superseded by a newer keepalived event, or a daemon told to stop, does not
    sit out a long backoff while holding the lock.
    """
    end = time.monotonic() + seconds
    while True:
        if interrupt is not None:
            interrupt()
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, INTERRUPT_EVERY))



async def call(policy: RetryPolicy, what: str, fn: Callable[[], Awaitable[T]],
               interrupt: Callable[[], None] | None = None) -> T:
    """Await ``fn()`` until it succeeds, fails for good, or the policy gives up.

    ``what`` names the operation in the log line of each retry; ``interrupt`` is called
    while waiting between attempts and may raise to abandon the call.
    """
    try:
        return await fn()  # most calls succeed at once: no retry machinery for them
    except ApiError as exc:
        if not exc.retryable:
            raise
        first_error: ApiError | None = exc

    async def attempt_once() -> T:
        # tenacity's attempt 1 is the one already made: it fails again, without a request,
        # so that the waits, the stop rule and the log lines stay tenacity's alone.
        nonlocal first_error
        if first_error is not None:
            error, first_error = first_error, None
            raise error
        return await fn()

    import tenacity

    retrying = tenacity.AsyncRetrying(
        sleep=lambda seconds: sleep(seconds, interrupt),
        stop=_stop(policy),
        wait=_wait(policy),
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, ApiError) and e.retryable),
        before_sleep=_log_retry(policy, what),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            result = await attempt_once()
        if not attempt.retry_state.outcome or not attempt.retry_state.outcome.failed:
            return result
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
