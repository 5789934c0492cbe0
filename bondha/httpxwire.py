"""An httpx transport as a :class:`bondha.wire.Wire`: the seam for callers, tests and proxies.

bondha's own lanes (:mod:`bondha.transport`) carry its requests without httpx. A caller may
still hand :class:`bondha.client.ApiClient` (or ``bondha.reconcile``) any
``httpx.AsyncBaseTransport``: an ASGI app, ``httpx.MockTransport``, HTTP/2, or httpx's own
transport through the proxy that the environment names. This module puts such a transport
behind the same interface, with the same bounds the lanes keep themselves: the request's
deadline over the whole exchange, its interrupt called while it waits, and at most
``max_body`` bytes read. It is the one module that imports httpx, and only this adapter's
users load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable
from typing import Callable, TypeVar

import httpx

from .wire import (
    INTERRUPT_EVERY,
    Answer,
    AnswerTooLarge,
    ConnectError,
    ConnectTimeout,
    Headers,
    InvalidURL,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    Request,
    Wire,
)

__all__ = ["HttpxWire", "through_proxy"]

T = TypeVar("T")


class HttpxWire(Wire):
    """``transport`` behind :class:`Wire`; answers of at most ``max_body`` bytes."""

    def __init__(self, transport: httpx.AsyncBaseTransport, max_body: int) -> None:
        self.transport = transport
        self._max_body = max_body

    async def exchange(self, request: Request) -> Answer:
        timeout = request.timeout
        try:
            outgoing = httpx.Request(
                request.method, request.url, headers=request.headers,
                content=request.body or None, extensions={"timeout": {
                    "connect": timeout, "read": timeout, "write": timeout, "pool": timeout}})
        except httpx.InvalidURL as exc:
            raise InvalidURL(str(exc)) from None
        deadline = request.deadline
        whole = self._read_whole(outgoing, request.url)
        try:
            if deadline is None:
                return await whole
            return await _bounded(whole, deadline, request.interrupt)
        except httpx.TimeoutException as exc:
            raise (ConnectTimeout if isinstance(exc, httpx.ConnectTimeout)
                   else ReadTimeout)(str(exc)) from exc
        except httpx.ConnectError as exc:
            raise ConnectError(str(exc)) from exc
        except httpx.RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise ReadError(str(exc) or type(exc).__name__) from exc

    async def _read_whole(self, request: httpx.Request, url: str) -> Answer:
        response = await self.transport.handle_async_request(request)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_body:
                raise AnswerTooLarge(self._max_body)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > self._max_body:
                    raise AnswerTooLarge(self._max_body)
                chunks.append(chunk)
        finally:
            await response.aclose()
        return Answer(response.status_code, Headers(response.headers.raw), b"".join(chunks),
                      url)

    async def aclose(self) -> None:
        await self.transport.aclose()


def through_proxy(proxy: str, pool_size: int, tls: ssl.SSLContext, max_body: int) -> HttpxWire:
    """httpx's own transport through ``proxy``: at most ``pool_size`` connections, ``tls``
    towards the server."""
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    return HttpxWire(httpx.AsyncHTTPTransport(verify=tls, limits=limits, proxy=proxy),
                     max_body)


async def _bounded(aw: Awaitable[T], deadline: float,
                   interrupt: Callable[[], None] | None) -> T:
    """``aw`` within ``deadline`` (ReadTimeout after it), calling ``interrupt`` every
    :data:`~bondha.wire.INTERRUPT_EVERY` seconds meanwhile."""
    task = asyncio.ensure_future(aw)
    try:
        while True:
            if interrupt is not None:
                interrupt()
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReadTimeout("no whole answer before the deadline")
            done, _ = await asyncio.wait({task}, timeout=min(INTERRUPT_EVERY, left)
                                         if interrupt is not None else left)
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
