"""The connections to the management server: keep-alive HTTP/1.1 "lanes" on asyncio.

:func:`default_transport` picks the transport for a server (the lanes, or httpx's own
through a proxy) and :func:`tls_context` the one TLS context all of its connections share.

Why not httpx's own transport: httpcore and anyio cost about 0.8 ms of CPU per request on
the bonders' class of machine, and a 600-address failover makes 1,200 requests, so the
client's CPU, not the server's latency, set the length of the outage. Here h11 (the parser
httpcore itself uses) reads and writes the messages and asyncio moves the bytes: about a
third of the cost. At most ``size`` connections are open, each carrying one request at a
time; an idle one is reused, the most recently used first. Bodies are read whole: the
management API answers with small JSON documents.

Used only where httpx would not route through a proxy (:func:`default_transport` decides):
proxies stay httpx's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.request
from urllib.parse import urlsplit

import h11
import httpx

from .config import ApiSettings
from .config.secrets import load_ca_bundle

__all__ = ["Lanes", "default_transport", "tls_context"]

_READ_SIZE = 65536


class _Stale(Exception):
    """A kept-alive connection the server had closed: nothing was answered, try a fresh one."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT)

    def reusable(self) -> bool:
        return self.protocol.our_state is h11.DONE and self.protocol.their_state is h11.DONE


class Lanes(httpx.AsyncBaseTransport):
    """At most ``size`` keep-alive connections; ``tls`` for ``https://`` URLs."""

    def __init__(self, size: int, tls: ssl.SSLContext) -> None:
        self._size = size
        self._tls = tls
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._gate: asyncio.Semaphore | None = None  # made in the running loop (Python 3.9)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self._size)
        timeouts = request.extensions.get("timeout", {})
        async with self._gate:
            connection = self._idle.pop() if self._idle else None
            try:
                if connection is not None:
                    try:
                        return await self._exchange(connection, request, timeouts)
                    except _Stale:
                        self._discard(connection)
                connection = await self._connect(request.url, timeouts.get("connect"))
                try:
                    return await self._exchange(connection, request, timeouts)
                except _Stale:
                    raise httpx.RemoteProtocolError(
                        "server closed the connection without answering") from None
            except BaseException:
                if connection is not None:
                    self._discard(connection)
                raise

    async def _connect(self, url: httpx.URL, timeout: float | None) -> _Connection:
        secure = url.scheme == "https"
        port = url.port or (443 if secure else 80)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                url.host, port, ssl=self._tls if secure else None,
                server_hostname=url.host if secure else None), timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout("connection timed out") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        connection = _Connection(reader, writer)
        self._open.add(connection)
        return connection

    async def _exchange(self, connection: _Connection, request: httpx.Request,
                        timeouts: dict[str, float | None]) -> httpx.Response:
        """One request and its whole answer; httpx's exceptions for what goes wrong."""
        try:
            await self._send(connection, request, timeouts.get("write"))
            head, body = await self._receive(connection, timeouts.get("read"))
        except asyncio.TimeoutError:
            raise httpx.ReadTimeout("no answer in time") from None
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
        if connection.reusable():
            connection.protocol.start_next_cycle()
            self._idle.append(connection)
        else:
            self._discard(connection)
        return httpx.Response(head.status_code, headers=list(head.headers), content=body,
                              extensions={"http_version": b"HTTP/1.1"})

    @staticmethod
    async def _send(connection: _Connection, request: httpx.Request,
                    timeout: float | None) -> None:
        protocol = connection.protocol
        body = await request.aread()
        data = protocol.send(h11.Request(method=request.method, target=request.url.raw_path,
                                         headers=list(request.headers.raw)))
        if body:
            data += protocol.send(h11.Data(data=body))
        data += protocol.send(h11.EndOfMessage())
        try:
            connection.writer.write(data)
            await asyncio.wait_for(connection.writer.drain(), timeout)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _Stale from exc

    @staticmethod
    async def _receive(connection: _Connection,
                       timeout: float | None) -> tuple[h11.Response, bytes]:
        protocol = connection.protocol
        head: h11.Response | None = None
        chunks: list[bytes] = []
        answered = False
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                try:
                    raw = await asyncio.wait_for(connection.reader.read(_READ_SIZE), timeout)
                except ConnectionResetError as exc:
                    if answered:
                        raise
                    raise _Stale from exc
                if not raw and not answered:
                    raise _Stale
                answered = True
                protocol.receive_data(raw)
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return head, b"".join(chunks)
            elif isinstance(event, (h11.ConnectionClosed, h11.EndOfMessage)):
                raise httpx.RemoteProtocolError("server closed the connection mid-answer")

    def _discard(self, connection: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
        connection.writer.close()

    async def aclose(self) -> None:
        connections, self._open, self._idle = self._open, set(), []
        for connection in connections:
            connection.writer.close()
        for connection in connections:
            with contextlib.suppress(OSError, ssl.SSLError):
                await connection.writer.wait_closed()


def default_transport(settings: ApiSettings, pool_size: int) -> httpx.AsyncBaseTransport:
    """Our lean lanes, unless the environment (``HTTPS_PROXY`` and friends, as curl and httpx
    read them) routes the server through a proxy: then httpx's own transport, via the proxy."""
    parts = urlsplit(settings.base_url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        return httpx.AsyncHTTPTransport(verify=tls_context(settings), limits=limits,
                                        proxy=proxy)
    return Lanes(pool_size, tls_context(settings))


def tls_context(settings: ApiSettings) -> ssl.SSLContext:
    """One TLS context for every lane; none worth loading for a plain-http server.

    Loading the CA bundle takes about 40 ms, a fifth of a small failover's start-up. An
    ``http://`` base URL never needs it: redirects are not followed and pagination links
    must stay on the same origin, so such a client never opens a TLS connection (the bare
    context would refuse any certificate if it did).
    """
    if settings.base_url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if settings.verify_ssl and settings.ca_bundle:
        return load_ca_bundle(settings.ca_bundle)  # loaded once, when the config was read
    return httpx.create_ssl_context(verify=settings.verify_ssl)  # the system's CAs, or none

