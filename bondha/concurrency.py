"""Running API calls concurrently, bounded, and never leaving a task behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Callable, TypeVar

__all__ = ["gather_all", "gather_limited"]

T = TypeVar("T")


async def gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """``asyncio.gather``, but the first error cancels the rest (no writes after a failure
    abandons the run, no tasks left talking to a closed client)."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def gather_limited(limit: int, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``jobs`` concurrently, at most ``limit`` at once; results in order."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await gather_all(run(job) for job in jobs)

