"""Send a plan's writes in dependency order, as many at once as the graph and a limit allow.

A write is sent only once every write it waits for (:attr:`Plan.dependencies
<bondha.plan.Plan.dependencies>`) has been *answered*: each bonder applies its changes in the
order the server accepted them, so an answer, not a send, is what orders two writes. Among
the writes that may go, the one with the longest chain of writes waiting behind it goes
first, so the graph's critical path sets the pace, not the order of the list.

No HTTP here: the caller passes ``send``, which makes one write and says how it went.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
from collections.abc import Awaitable
from typing import Callable

import attrs

from .plan import Change, Dependency, Plan

__all__ = ["Held", "Sent", "send_in_order"]


class Sent(enum.Enum):
    """How one write went, as ``send`` reports it."""

    DONE = "done"  # the server accepted it
    FAILED = "failed"  # it did not happen (after whatever retries ``send`` makes)
    STOP = "stop"  # it was not sent and nothing more may be: the run was superseded


@attrs.frozen
class Held:
    """A write not sent because one it waits for failed or was held back itself."""

    change: Change
    dependency: Dependency  # the edge block that holds it
    blocker: Change  # the write in ``dependency.first`` that did not happen
    blocker_failed: bool  # True: ``blocker`` failed; False: it was held back too


GoAhead = Callable[[Change, Dependency, Change], bool]


def _never(change: Change, dependency: Dependency, blocker: Change) -> bool:
    return False


class _Graph:
    """The bookkeeping of one run: what each write still waits for, and what is ready."""

    def __init__(self, plan: Plan, go_ahead: GoAhead) -> None:
        order = plan.changes
        self._go_ahead = go_ahead
        self._index = {change: n for n, change in enumerate(order)}
        self._deps = plan.dependencies
        self._gates: dict[Change, list[int]] = {}  # the dependencies a write is `first` of
        self._waiting = dict.fromkeys(order, 0)  # dependencies not yet fully answered
        self._unanswered = [len(dep.first) for dep in self._deps]
        for number, dep in enumerate(self._deps):
            for change in dep.first:
                self._gates.setdefault(change, []).append(number)
            for change in dep.then:
                self._waiting[change] += 1
        self._height = self._heights(order)
        self._blocked: dict[Change, tuple[Dependency, Change, bool]] = {}
        self.held: list[Held] = []
        self._ready: list[tuple[int, int, Change]] = []
        for change in order:
            if not self._waiting[change]:
                self._push(change)

    def _heights(self, order: tuple[Change, ...]) -> dict[Change, int]:
        """Each write's longest chain of writes that wait behind it, itself included."""
        height: dict[Change, int] = {}
        tallest_then: dict[int, int] = {}
        for change in reversed(order):  # `order` respects every edge: successors come later
            below = 0
            for number in self._gates.get(change, ()):
                if number not in tallest_then:
                    tallest_then[number] = max(height[c] for c in self._deps[number].then)
                below = max(below, tallest_then[number])
            height[change] = below + 1
        return height

    def _push(self, change: Change) -> None:
        heapq.heappush(self._ready, (-self._height[change], self._index[change], change))

    def pop(self) -> Change | None:
        return heapq.heappop(self._ready)[2] if self._ready else None

    def answered(self, change: Change, ok: bool) -> None:
        """``change`` is settled: done (``ok``), or failed or held back."""
        settled = [(change, ok)]
        while settled:
            current, current_ok = settled.pop()
            for number in self._gates.get(current, ()):
                dep = self._deps[number]
                if not current_ok:
                    failed = current not in self._blocked
                    for waiter in dep.then:
                        if waiter not in self._blocked and not self._go_ahead(waiter, dep,
                                                                               current):
                            self._blocked[waiter] = (dep, current, failed)
                self._unanswered[number] -= 1
                if self._unanswered[number]:
                    continue
                for waiter in dep.then:
                    self._waiting[waiter] -= 1
                    if self._waiting[waiter]:
                        continue
                    block = self._blocked.get(waiter)
                    if block is None:
                        self._push(waiter)
                    else:
                        self.held.append(Held(waiter, *block))
                        settled.append((waiter, False))


async def send_in_order(plan: Plan, limit: int, send: Callable[[Change], Awaitable[Sent]],
                        go_ahead: GoAhead = _never) -> tuple[Held, ...]:
    """Send every write of ``plan`` through ``send``, at most ``limit`` at once, each only
    after every write it waits for has been answered; returns the writes held back.

    A write whose predecessor failed (or was held back) is held back too, unless
    ``go_ahead(write, dependency, predecessor)`` says it may still be sent. After ``send``
    answers :attr:`Sent.STOP` nothing more is sent; the writes in flight are awaited. An
    exception from ``send`` cancels the writes in flight and propagates.
    """
    graph = _Graph(plan, go_ahead)
    all_answered = asyncio.get_running_loop().create_future()
    in_flight: dict[asyncio.Future[Sent], Change] = {}
    stopping = False

    def launch() -> None:
        while not stopping and len(in_flight) < limit:
            change = graph.pop()
            if change is None:
                break
            future = asyncio.ensure_future(send(change))
            in_flight[future] = change
            future.add_done_callback(answered)
        if not in_flight and not all_answered.done():
            all_answered.set_result(None)

    def answered(future: asyncio.Future[Sent]) -> None:
        # Runs as soon as a write is answered: what it unblocks is sent in the same turn of
        # the event loop, with no waiting coroutine to wake first.
        nonlocal stopping
        change = in_flight.pop(future)
        if all_answered.done():  # an error ended the run: the rest is being cancelled
            return
        if future.cancelled():
            all_answered.set_exception(asyncio.CancelledError())
            return
        error = future.exception()
        if error is not None:
            all_answered.set_exception(error)
            return
        if future.result() is Sent.STOP:
            stopping = True
        else:
            graph.answered(change, future.result() is Sent.DONE)
        launch()

    launch()
    try:
        await all_answered
    except BaseException:
        for future in list(in_flight):
            future.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        raise
    return tuple(graph.held)
