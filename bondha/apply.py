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
    """The bookkeeping of one run: what each write still waits for, and what is ready.

    Writes are numbered in plan order and every table is a list by number: a 600-address
    failover looks each write up a dozen times, and a list index is cheaper than a hash.
    """

    def __init__(self, plan: Plan, go_ahead: GoAhead) -> None:
        order = self._order = plan.changes
        self._go_ahead = go_ahead
        self._number = number = {change: n for n, change in enumerate(order)}
        self._deps = plan.dependencies
        self._then = [[number[c] for c in dep.then] for dep in self._deps]
        self._gates: list[list[int]] = [[] for _ in order]  # the dependencies a write is `first` of
        self._waiting = [0] * len(order)  # dependencies not yet fully answered
        self._unanswered = [len(dep.first) for dep in self._deps]
        for dep_number, dep in enumerate(self._deps):
            for change in dep.first:
                if change in number:  # else never answered: its waiters are never sent
                    self._gates[number[change]].append(dep_number)
            for waiter in self._then[dep_number]:
                self._waiting[waiter] += 1
        self._height = self._heights()
        self._blocked: dict[int, tuple[Dependency, Change, bool]] = {}
        self.held: list[Held] = []
        self._ready: list[tuple[int, int]] = []
        for n, waiting in enumerate(self._waiting):
            if not waiting:
                self._push(n)

    def _heights(self) -> list[int]:
        """Each write's longest chain of writes that wait behind it, itself included."""
        height = [0] * len(self._order)
        tallest_then: dict[int, int] = {}
        for n in reversed(range(len(height))):  # plan order respects every edge
            below = 0
            for dep_number in self._gates[n]:
                if dep_number not in tallest_then:
                    tallest_then[dep_number] = max(height[w] for w in self._then[dep_number])
                below = max(below, tallest_then[dep_number])
            height[n] = below + 1
        return height

    def _push(self, n: int) -> None:
        heapq.heappush(self._ready, (-self._height[n], n))

    def pop(self) -> Change | None:
        return self._order[heapq.heappop(self._ready)[1]] if self._ready else None

    def answered(self, change: Change, ok: bool) -> None:
        """``change`` is settled: done (``ok``), or failed or held back."""
        settled = [(self._number[change], ok)]
        while settled:
            current, current_ok = settled.pop()
            for dep_number in self._gates[current]:
                dep = self._deps[dep_number]
                if not current_ok:
                    failed = current not in self._blocked
                    for waiter in self._then[dep_number]:
                        if waiter not in self._blocked and not self._go_ahead(
                                self._order[waiter], dep, self._order[current]):
                            self._blocked[waiter] = (dep, self._order[current], failed)
                self._unanswered[dep_number] -= 1
                if self._unanswered[dep_number]:
                    continue
                for waiter in self._then[dep_number]:
                    self._waiting[waiter] -= 1
                    if self._waiting[waiter]:
                        continue
                    block = self._blocked.get(waiter)
                    if block is None:
                        self._push(waiter)
                    else:
                        self.held.append(Held(self._order[waiter], *block))
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
