"""The connections to the management server: keep-alive HTTP/1.1 "lanes" on asyncio.

:func:`default_transport` picks the transport for a server (the lanes, or httpx's own
through a proxy) and :func:`tls_context` the one TLS context all of its connections share.

Why not httpx's own transport: httpcore and anyio cost about 0.8 ms of CPU per request on
the bonders' class of machine, and a 600-address failover makes 1,200 requests, so the
client's CPU, not the server's latency, set the length of the outage. Here h11 (the parser
httpcore itself uses) reads and writes the messages and asyncio moves the bytes: about a
third of the cost. At most ``size`` connections are open (or being opened), each carrying
one request at a time; an idle one is reused, the most recently used first. Bodies are read
whole: the management API answers with small JSON documents.

What the kernel does to such a client, measured against servers that write and accept
differently (``bondha.testing`` styles, docs/performance.md):

- A server that writes the head and the body of an answer separately with Nagle on
  (Python's ``http.server``) holds the body until the head is ACKed, and a kept-alive
  client socket delays that ACK (40 ms on Linux). After sending a request and after each
  read that leaves the answer incomplete the socket is put in quick-ACK mode
  (``TCP_QUICKACK``, Linux; elsewhere nothing is done and the delay stays).
- A burst of connects overflows a short accept queue (Python's default backlog is 5); the
  kernel drops the surplus SYNs and the client's retransmission comes after 1 s. A request
  therefore takes whichever connection is ready first (an idle one or a new one), never
  waits on one particular connect, and a connect far slower than those that succeeded is
  abandoned and dialled again: its SYN was dropped, and a new one gets in once the queue
  has drained.

The lanes speak :mod:`bondha.wire`'s small request and answer, not httpx's: httpx is not
even imported on this path (its import is a tenth of a small failover). Used only where
httpx would not route through a proxy (:func:`default_transport` decides): proxies stay
httpx's business (:mod:`bondha.httpxwire`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

import h11

from .config import ApiSettings
from .config.secrets import load_ca_bundle
from .connections import (
    Connection,
    SocketConnection,
    StreamConnection,
    abandon,
    connected_at_once,
    connecting,
)
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

__all__ = ["DEFAULT_MAX_BODY", "AnswerTooLarge", "Lanes", "default_transport", "tls_context"]

# A connect still pending this long after the fastest one to the same server completed
# (times _HEDGE_FACTOR), or _HEDGE_MIN at least, is taken for a SYN dropped by a full accept
# queue: dialled again at once instead of waiting for the kernel's 1 s retransmission.
_HEDGE_FACTOR = 8.0
_HEDGE_MIN = 0.025
_RESOLVED_FOR = 60.0  # seconds a name lookup is reused (the daemon's lanes live for days)
DEFAULT_MAX_BODY = 8 * 1024 * 1024
T = TypeVar("T")
Origin = tuple[str, str, int]  # scheme, host, port: where a connection goes


if sys.version_info >= (3, 11):
    async def _within(aw: Awaitable[T], timeout: float | None) -> T:
        """``await aw``, or asyncio.TimeoutError after ``timeout`` seconds. asyncio.timeout
        cancels the waiting task itself; wait_for wraps ``aw`` in a task of its own, and
        two such tasks per request were a tenth of the client's CPU at 1,200 requests."""
        async with asyncio.timeout(timeout):
            return await aw
else:  # the portable fallback
    async def _within(aw: Awaitable[T], timeout: float | None) -> T:
        return await asyncio.wait_for(aw, timeout)


def _content_length(head: h11.Response) -> int | None:
    for name, value in head.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked that it is a number
    return None


def _watches_sockets(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the loop can watch a socket for us (add_reader): every loop but Windows'
    proactor, which gets the streams for plain http too."""
    proactor = getattr(asyncio, "ProactorEventLoop", None)
    return proactor is None or not isinstance(loop, proactor)


class _Stale(Exception):
    """A kept-alive connection the server had closed: nothing was answered, try a fresh one."""


class _Clock:
    """The waits of one exchange: each within its own timeout, all within the deadline."""

    __slots__ = ("deadline", "interrupt")

    def __init__(self, request: Request) -> None:
        self.deadline: float | None = request.deadline
        self.interrupt: Callable[[], None] | None = request.interrupt

    def limit(self, timeout: float | None) -> float | None:
        """``timeout``, shortened to what is left before the deadline."""
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError
        return left if timeout is None else min(timeout, left)

    async def read(self, connection: Connection, timeout: float | None) -> bytes:
        limit = self.limit(timeout)
        if self.interrupt is None:
            return await _within(connection.recv(), limit)
        end = None if limit is None else time.monotonic() + limit
        first = True
        while True:
            if not first:  # the client called it just before sending: not again at once
                self.interrupt()
            first = False
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise asyncio.TimeoutError
            # A read cancelled while it waits takes nothing from the buffer: slicing is safe.
            with contextlib.suppress(asyncio.TimeoutError):
                return await _within(connection.recv(), INTERRUPT_EVERY if left is None
                                     else min(INTERRUPT_EVERY, left))

    async def wait(self, future: asyncio.Future[T]) -> T:
        """``future``'s result within the deadline, calling the interrupt meanwhile; the
        future itself is left alone when the wait ends early (it is shared)."""
        while True:
            if self.interrupt is not None:
                self.interrupt()
            left = None if self.deadline is None else self.deadline - time.monotonic()
            if left is not None and left <= 0:
                raise asyncio.TimeoutError
            wait = left if self.interrupt is None else (
                INTERRUPT_EVERY if left is None else min(INTERRUPT_EVERY, left))
            done, _ = await asyncio.wait({future}, timeout=wait)
            if done:
                return future.result()


class Lanes(Wire):
    """At most ``size`` keep-alive connections; ``tls`` for ``https://`` URLs; answers of
    at most ``max_body`` bytes.

    Each exchange is bounded here, by the request's timeout and deadline, with its
    interrupt called while it waits: the client need not wrap it in a watcher task.
    """

    def __init__(self, size: int, tls: ssl.SSLContext,
                 max_body: int = DEFAULT_MAX_BODY) -> None:
        self._size = size
        self._tls = tls
        self._max_body = max_body
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self._dialling = 0  # connects under way: they count against ``size`` too
        self._dials: set[asyncio.Future[None]] = set()
        self._waiting: deque[asyncio.Future[Connection]] = deque()
        self._fastest_connect: float | None = None
        self._at_once = False  # the last dial's handshake had completed when it returned
        self.connects = 0  # connections established, for tests and benchmarks
        self.most_open = 0  # the most connections open or being opened at once
        self.made_at_once = 0  # of the connects, those made within the request's own call
        self._last: tuple[Origin, float | None] | None = None  # where waiters go
        # The server's addresses, resolved once: (host, port), [(family, sockaddr), ...]
        self._addresses: tuple[tuple[str, int], list[tuple[int, Any]]] | None = None
        self._resolved = 0.0

    async def exchange(self, request: Request) -> Answer:
        clock = _Clock(request)
        where = (request.scheme, request.host, request.port)
        while True:
            connection = await self._acquire(where, request.timeout, clock)
            try:
                return await self._exchange(connection, request, clock)
            except _Stale:
                self._discard(connection)
                if not connection.used:
                    raise RemoteProtocolError(
                        "server closed the connection without answering") from None
                # Kept alive, then closed by the server before it read this request:
                # nothing was answered, so once more on another connection.
            except BaseException:
                self._discard(connection)
                raise

    # -- which connection carries a request --------------------------------------------

    async def _acquire(self, where: Origin, timeout: float | None,
                       clock: _Clock) -> Connection:
        """An idle connection, one made at once (:meth:`_connect_at_once`), or whichever
        becomes ready first: one handed back by another request or one dialled because of
        this request (never a wait on one connect). The wait ends at the request's deadline
        (ConnectTimeout) and calls its interrupt meanwhile; a connect it started goes on and
        the connection joins the idle ones."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed():
                return connection
            self._discard(connection)  # the server's idle timeout: no use sending on it
        if self._at_once and not self._waiting and (
                len(self._open) + self._dialling < self._size):
            made = self._connect_at_once(where)
            if made is not None:
                return made
        self._last = (where, timeout)
        waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._dial_for_waiters(where, timeout)
        try:
            return await clock.wait(waiter)
        except BaseException as exc:
            with contextlib.suppress(ValueError):
                self._waiting.remove(waiter)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed over as we were cancelled
            if isinstance(exc, asyncio.TimeoutError):
                raise ConnectTimeout("connection timed out") from None
            raise

    def _connect_at_once(self, where: Origin) -> Connection | None:
        """A plain-http connection made within this call, or None (nothing left behind).

        Against a server that closes every connection each request needs a new one, and a
        dial task with the hand-over through a waiter costs several turns of the event
        loop, each waiting behind every other lane's work: every lane waited for the whole
        round's CPU before its next request went out, and the lanes stayed in step. On the
        loopback or a LAN the handshake has completed by the time the connect returns, so
        the request takes its connection at once. When it has not (a far server, or a SYN
        dropped by a full accept queue), the socket is closed unused and the request waits
        as before, for whichever connection is ready first; this is tried again only after
        a dial has completed at once (``_at_once``), so a far server is not sent a SYN twice.
        """
        scheme, host, port = where
        addresses = self._addresses
        if scheme != "http" or addresses is None or addresses[0] != (host, port) or (
                asyncio.get_running_loop().time() - self._resolved > _RESOLVED_FOR):
            return None  # https needs its handshake; a name is looked up again by a dial
        family, address = addresses[1][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if not connected_at_once(sock, address):
                self._at_once = False
                sock.close()
                return None
            connection = SocketConnection(sock)
        except OSError:
            sock.close()  # refused, unreachable: the dial that follows says so
            return None
        self._open.add(connection)
        self.connects += 1
        self.made_at_once += 1
        self.most_open = max(self.most_open, len(self._open) + self._dialling)
        return connection

    def _release(self, connection: Connection) -> None:
        """Hand ``connection`` to the longest-waiting request, or keep it idle."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _dial_for_waiters(self, where: Origin, timeout: float | None) -> None:
        """Start connects for waiting requests while the pool has room."""
        while len(self._waiting) > self._dialling and (
                len(self._open) + self._dialling < self._size):
            self._dialling += 1
            self.most_open = max(self.most_open, len(self._open) + self._dialling)
            dial = asyncio.ensure_future(self._dial(where, timeout))
            self._dials.add(dial)
            dial.add_done_callback(self._dials.discard)

    async def _dial(self, where: Origin, timeout: float | None) -> None:
        try:
            connection = await self._connect(where, timeout)
        except (ConnectError, ConnectTimeout, OSError) as exc:
            self._dialling -= 1
            # The longest-waiting request gets the error; the others dial again.
            while self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    break
            self._dial_for_waiters(where, timeout)
            return
        except BaseException:  # cancelled by aclose()
            self._dialling -= 1
            raise
        self._dialling -= 1
        self._release(connection)

    @property
    def open(self) -> int:
        """Connections open or being opened."""
        return len(self._open) + self._dialling

    @property
    def dialling(self) -> int:
        return self._dialling

    async def warm(self, url: str, count: int, timeout: float | None = None) -> int:
        """Open idle connections to ``url`` until ``count`` are open (``size`` at most),
        first dropping idle ones the server has closed, so that the next requests go out
        without a handshake. Returns how many were opened; connect errors are not raised
        (the requests that follow will meet them)."""
        for connection in [c for c in self._idle if c.closed()]:
            self._discard(connection)
        wanted = min(count, self._size) - len(self._open) - self._dialling
        if wanted <= 0:
            return 0
        self._dialling += wanted
        self.most_open = max(self.most_open, len(self._open) + self._dialling)
        probe = Request("GET", url)
        where = (probe.scheme, probe.host, probe.port)
        dials = [asyncio.ensure_future(self._connect(where, timeout)) for _ in range(wanted)]
        opened = 0
        try:
            for outcome in await asyncio.gather(*dials, return_exceptions=True):
                self._dialling -= 1
                if isinstance(outcome, Connection):
                    outcome.used = True  # no request yet, but kept waiting like one
                    self._release(outcome)
                    opened += 1
        except BaseException:  # cancelled: close what was opened
            for dial in dials:
                dial.cancel()
            self._dialling -= wanted - opened
            raise
        return opened

    async def _connect(self, where: Origin, timeout: float | None) -> Connection:
        scheme, host, port = where
        secure = scheme == "https"
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            sock = await self._tcp_connect(host, port, deadline)
            if secure or not _watches_sockets(loop):
                # The TLS handshake is never hedged: it is the server's CPU, not a lost
                # packet.
                reader, writer = await _within(asyncio.open_connection(
                    sock=sock, ssl=self._tls, server_hostname=host),
                    None if deadline is None else max(0.0, deadline - loop.time()))
                connection: Connection = StreamConnection(reader, writer)
            else:
                connection = SocketConnection(sock)
        except asyncio.TimeoutError:
            raise ConnectTimeout("connection timed out") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is one)
            raise ConnectError(str(exc) or type(exc).__name__) from exc
        self._open.add(connection)
        self.connects += 1
        return connection

    async def _tcp_connect(self, host: str, port: int, deadline: float | None) -> socket.socket:
        """A connected socket; a connect far slower than the fastest one so far is dialled
        again (its SYN was dropped by a full accept queue; a new one gets in)."""
        loop = asyncio.get_running_loop()
        if (self._addresses is None or self._addresses[0] != (host, port)
                or loop.time() - self._resolved > _RESOLVED_FOR):
            infos = await asyncio.wait_for(  # bounded: a resolver may hang
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                None if deadline is None else max(0.0, deadline - loop.time()))
            self._addresses = ((host, port), [(info[0], info[4]) for info in infos])
            self._resolved = loop.time()
        stalls = 0
        while True:
            error: OSError | None = None
            for family, address in self._addresses[1]:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                started = loop.time()
                attempt = connecting(loop, sock, address)
                try:
                    stalled = await self._stalled(attempt, started, deadline, stalls)
                except BaseException:
                    abandon(loop, attempt, sock)
                    raise
                if stalled:
                    abandon(loop, attempt, sock)
                    break
                try:
                    attempt.result()
                except OSError as exc:
                    sock.close()
                    error = exc
                    continue
                took = loop.time() - started
                if self._fastest_connect is None or took < self._fastest_connect:
                    self._fastest_connect = took
                return sock
            else:
                self._addresses = None  # perhaps moved: look the name up again next time
                raise error or OSError(f"cannot connect to {host}:{port}")
            if deadline is not None and loop.time() >= deadline:
                raise asyncio.TimeoutError
            stalls += 1

    async def _stalled(self, attempt: asyncio.Future[Any], started: float,
                       deadline: float | None, stalls: int) -> bool:
        """Wait for ``attempt``; True when it is far slower than the connects that succeeded
        (each stall of the same connect doubles the patience: the queue has not drained)."""
        loop = asyncio.get_running_loop()
        if attempt.done():  # the handshake had completed when the connect returned
            self._at_once = attempt.exception() is None
            return False
        while True:
            now = loop.time()
            if deadline is not None and now >= deadline:
                return True
            if self._fastest_connect is None:
                wait = _HEDGE_MIN  # nothing to compare with yet: look again soon
                patience = None
            else:
                patience = max(_HEDGE_MIN, _HEDGE_FACTOR * self._fastest_connect) * 2 ** stalls
                if now - started >= patience:
                    return True
                wait = started + patience - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            done, _ = await asyncio.wait({attempt}, timeout=wait)
            if done:
                return False

    async def _exchange(self, connection: Connection, request: Request,
                        clock: _Clock) -> Answer:
        """One request and its whole answer; :mod:`bondha.wire`'s exceptions for what goes
        wrong."""
        try:
            await self._send(connection, request, clock.limit(request.timeout))
            head, body = await self._receive(connection, request.timeout, clock,
                                             self._max_body)
        except asyncio.TimeoutError:
            raise ReadTimeout("no answer in time") from None
        except OSError as exc:
            raise ReadError(str(exc) or type(exc).__name__) from exc
        except h11.RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from exc
        connection.used = True
        if connection.reusable():
            connection.protocol.start_next_cycle()
            self._release(connection)
        else:
            self._discard(connection)
        return Answer(head.status_code, Headers(head.headers), body, request.url)

    @staticmethod
    async def _send(connection: Connection, request: Request,
                    timeout: float | None) -> None:
        protocol = connection.protocol
        try:
            data = protocol.send(h11.Request(method=request.method, target=request.target,
                                             headers=request.headers))
        except h11.LocalProtocolError as exc:  # a header bondha built from the config
            raise InvalidURL(str(exc)) from None
        if request.body:
            data += protocol.send(h11.Data(data=request.body))
        data += protocol.send(h11.EndOfMessage())
        try:
            sent = connection.write(data)
            connection.quickack()  # the answer's head will be ACKed as it arrives
            if not sent:  # else: nothing to wait for
                await _within(connection.flush(), timeout)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _Stale from exc

    @staticmethod
    async def _receive(connection: Connection, timeout: float | None, clock: _Clock,
                       max_body: int) -> tuple[h11.Response, bytes]:
        protocol = connection.protocol
        head: h11.Response | None = None
        chunks: list[bytes] = []
        size = 0
        answered = False
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                try:
                    raw = await clock.read(connection, timeout)
                except ConnectionResetError as exc:
                    if answered:
                        raise
                    raise _Stale from exc
                if not raw and not answered:
                    raise _Stale
                answered = True
                protocol.receive_data(raw)
                connection.quickack()  # a body still to come is not held by our ACK
            elif isinstance(event, h11.Response):
                head = event
                declared = _content_length(head)
                if declared is not None and declared > max_body:
                    raise AnswerTooLarge(max_body)  # refused before a byte of it is read
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > max_body:  # chunked without end, or more than declared
                    raise AnswerTooLarge(max_body)
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return head, b"".join(chunks)
            elif isinstance(event, (h11.ConnectionClosed, h11.EndOfMessage)):
                raise RemoteProtocolError("server closed the connection mid-answer")

    def _discard(self, connection: Connection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
        self._open.discard(connection)
        connection.close()
        if self._waiting and self._last is not None:
            self._dial_for_waiters(*self._last)  # its place in the pool is free again

    async def aclose(self) -> None:
        for dial in list(self._dials):
            dial.cancel()
        await asyncio.gather(*self._dials, return_exceptions=True)
        connections, self._open, self._idle = self._open, set(), []
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.wait_closed()


def default_transport(settings: ApiSettings, pool_size: int,
                      max_body: int = DEFAULT_MAX_BODY) -> Wire:
    """Our lean lanes, unless the environment (``HTTPS_PROXY`` and friends, as curl and httpx
    read them) routes the server through a proxy: then httpx's own transport, via the proxy."""
    proxy = _proxy_for(settings.base_url)
    if proxy is not None:
        from .httpxwire import through_proxy  # only here: the lanes never load httpx
        return through_proxy(proxy, pool_size, tls_context(settings), max_body)
    return Lanes(pool_size, tls_context(settings), max_body)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url``, or None (no ``*_proxy`` variable is set,
    or ``no_proxy`` exempts the host). urllib's reading of those variables is the standard;
    it is loaded only when one is set (its import costs more than a failover's read)."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None
    import urllib.request
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return proxy
    return None


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
    if not settings.verify_ssl:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    # The CAs httpx trusts by default, so that a server trusted before is trusted now:
    # $SSL_CERT_FILE or $SSL_CERT_DIR where set, else certifi's bundle.
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi
    return ssl.create_default_context(cafile=certifi.where())
