"""Warm connections for the daemon: a keepalived transition becomes writes, not handshakes.

``bondha notify`` is a new process for each event: it pays the interpreter, the imports
and one connection set-up per lane before its first write. The daemon pays them once.
:class:`WarmTransport` keeps the default transport's lanes on an event loop of its own
(a thread), opened ahead of time and topped up every ``interval`` seconds: a connection
the server closed while idle (its keep-alive timeout) is replaced before the next event
needs it. Each run of the reconciler runs on that loop (:meth:`WarmTransport.run`) and
sends through it; the lanes bound every exchange by the run's deadline as they do per run.

The cost: up to ``pool_size`` idle connections to the management server, and a new
handshake on each after every keep-alive timeout of the server (nginx: 75 s).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..config import Config
from ..transport import Lanes, default_transport
from ..wire import Answer, Request, Wire

__all__ = ["WarmTransport", "warm_transport"]

log = logging.getLogger("bondha")
T = TypeVar("T")


class WarmTransport(Wire):
    """``lanes`` kept open towards ``url`` on a loop thread; :meth:`close` ends them.

    The clients that send through it may close it (they do after each run): that only
    ends their use of it, not the connections.
    """

    def __init__(self, lanes: Lanes, url: str, count: int, *, interval: float = 1.0,
                 timeout: float | None = None) -> None:
        self._lanes = lanes
        self._url = url
        self._count = count
        self._interval = interval
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bondha-warm", daemon=True)
        self._thread.start()
        self._ready.wait()

    @property
    def lanes(self) -> Lanes:
        return self._lanes

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._keep_warm())
        finally:
            self._loop.close()

    async def _keep_warm(self) -> None:
        self._stopping = asyncio.Event()
        self._ready.set()
        try:
            while not self._stopping.is_set():
                opened = await self._lanes.warm(self._url, self._count, self._timeout)
                if opened:
                    log.debug("warm connections: %d opened to %s", opened, self._url)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._interval)
        finally:
            await self._lanes.aclose()

    def warmed(self, timeout: float = 10.0) -> int:
        """Top up now and wait until no connect is under way (start-up, tests); returns
        the connections open."""

        async def top_up() -> int:
            await self._lanes.warm(self._url, self._count, self._timeout)
            while self._lanes.dialling:  # the keeper's own top-up may still be going
                await asyncio.sleep(0.005)
            return self._lanes.open

        return asyncio.run_coroutine_threadsafe(top_up(), self._loop).result(timeout)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the lanes' own loop and wait for it: a reconciler run sends
        straight on the warm connections, without a hop between threads per request."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def exchange(self, request: Request) -> Answer:
        """Sent on the lanes; the lanes bound it by the request's deadline, as per run."""
        if asyncio.get_running_loop() is self._loop:
            return await self._lanes.exchange(request)
        future: concurrent.futures.Future[Answer] = asyncio.run_coroutine_threadsafe(
            self._lanes.exchange(request), self._loop)
        return await asyncio.wrap_future(future)

    async def aclose(self) -> None:
        """A client is done with it: the connections stay open for the next run."""

    def close(self, timeout: float = 5.0) -> None:
        """End the connections and the thread; idempotent."""
        if not self._thread.is_alive():
            return
        stopping = self._stopping
        if stopping is not None:
            self._loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout)


def warm_transport(config: Config) -> WarmTransport | None:
    """Warm lanes for ``config``'s server; None where the default transport is not the
    lanes (a proxy from the environment: httpx's transport, per run)."""
    lanes = default_transport(config.api, config.ha.pool_size, config.ha.max_body)
    if not isinstance(lanes, Lanes):
        return None
    return WarmTransport(lanes, config.api.base_url, config.ha.pool_size,
                         timeout=config.api.timeout)
