"""One HTTP/1.1 connection of the lanes (:mod:`bondha.transport`): a plain socket, or
asyncio's streams for TLS.

A server that ends every connection after one answer (``Connection: close``) makes each
request pay a connection set-up on the client, and asyncio's transport and streams cost
about 0.2 ms of CPU and two turns of the event loop per connection, before any byte is
sent. A plain-http connection is therefore a non-blocking socket driven by the loop's own
``sock_sendall`` and ``sock_recv``: no transport, no protocol object, no stream buffer,
and a connect that has completed by the time it is looked at (the loopback, a LAN) is used
at once. TLS needs the loop's TLS protocol, so an https connection keeps the streams.

Both kinds offer the same few operations; the exchange itself (h11's state, the bounds,
what counts as stale) stays in :class:`bondha.transport.Lanes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from typing import Any, Callable

import h11

__all__ = ["Connection", "SocketConnection", "StreamConnection", "abandon", "connected_at_once",
           "connecting"]

_READ_SIZE = 65536
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def connecting(loop: asyncio.AbstractEventLoop, sock: socket.socket,
               address: Any) -> asyncio.Future[None]:
    """A non-blocking connect of ``sock`` as a plain future: what ``loop.sock_connect``
    does, without a task and the turn of the event loop that starts it, and done at once
    when the handshake has completed by the time the call returns (the kernel's loopback
    does it within the call). Whoever gives up on it calls :func:`abandon`."""
    future: asyncio.Future[None] = loop.create_future()
    try:
        if connected_at_once(sock, address):
            future.set_result(None)
            return future
    except OSError as exc:
        future.set_exception(exc)
        return future
    fd = sock.fileno()

    def writable() -> None:
        loop.remove_writer(fd)
        if not future.done():
            _finish(future, sock, address)

    try:
        loop.add_writer(fd, writable)
    except NotImplementedError:  # not a selector loop (Windows): asyncio's own way
        return asyncio.ensure_future(loop.sock_connect(sock, address))
    return future


def connected_at_once(sock: socket.socket, address: Any) -> bool:
    """Connect the non-blocking ``sock``; True when the handshake completed within the
    call, False when it is still under way. A refusal raises OSError."""
    try:
        sock.connect(address)
    except (BlockingIOError, InterruptedError):
        if not _writable_now(sock):
            return False
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, f"Connect call failed {address}")
    return True


def _writable_now(sock: socket.socket) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        return bool(poller.poll(0))
    return bool(select.select([], [sock], [], 0)[1])


def _finish(future: asyncio.Future[None], sock: socket.socket, address: Any) -> None:
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        future.set_exception(OSError(error, f"Connect call failed {address}"))
    else:
        future.set_result(None)


def abandon(loop: asyncio.AbstractEventLoop, attempt: asyncio.Future[None],
            sock: socket.socket) -> None:
    """Stop a connect and close its socket; the watch on it ends first, while the number
    is still its own (a socket opened next may get the same one)."""
    attempt.cancel()
    with contextlib.suppress(NotImplementedError, ValueError):
        loop.remove_writer(sock.fileno())  # by number: an unwatched socket is not repr'd
    sock.close()


class Connection:
    """What the lanes do with a connection, whichever kind it is."""

    sock: socket.socket | None

    def __init__(self) -> None:
        self.protocol = h11.Connection(h11.CLIENT)
        self.used = False  # has been kept alive: a close may be the server's idle timeout

    def write(self, data: bytes) -> bool:
        """Hand ``data`` to the kernel; False when some is left for :meth:`flush`."""
        raise NotImplementedError

    async def flush(self) -> None:
        """Until what :meth:`write` left is sent."""
        raise NotImplementedError

    async def recv(self) -> bytes:
        """The next bytes that arrive; b"" when the server has ended the connection."""
        raise NotImplementedError

    def closed(self) -> bool:
        """The server ended it (seen while idle) or it is being closed."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def wait_closed(self) -> None:
        """Until the close is complete (a TLS close_notify)."""

    def quickack(self) -> None:
        """ACK what arrives now, not at the delayed-ACK timer (the mode does not stick)."""
        if _QUICKACK is not None and self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def reusable(self) -> bool:
        return self.protocol.our_state is h11.DONE and self.protocol.their_state is h11.DONE


class SocketConnection(Connection):
    """Plain http on a connected non-blocking socket, watched by the loop only while a
    send or a receive waits (what ``sock_sendall`` and ``sock_recv`` do, with a future of
    our own, so that :meth:`close` can end a wait that would otherwise never end)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = self._sock = sock  # ``sock`` may be None for a stream; this one never is
        self._fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._unsent = b""
        self._waiting: asyncio.Future[None] | None = None
        # As asyncio's transports do: each request goes out in one send, and must not wait
        # for the ACK of the one before.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> bool:
        self._unsent = data[self._send(data):]
        return not self._unsent

    async def flush(self) -> None:
        while self._unsent:
            await self._wait(self._loop.add_writer, self._loop.remove_writer)
            self._unsent = self._unsent[self._send(self._unsent):]

    def _send(self, data: bytes) -> int:
        self._check_open()
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    async def recv(self) -> bytes:
        while True:
            self._check_open()
            try:
                return self._sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                pass
            # Cancelled while it waits, it takes nothing: the bytes stay in the kernel.
            await self._wait(self._loop.add_reader, self._loop.remove_reader)

    async def _wait(self, watch: Callable[[int, Callable[[], None]], None],
                    unwatch: Callable[[int], object]) -> None:
        """Until the socket is ready (``watch``: add_reader or add_writer). The watch ends
        before this returns or raises, in this task: never later, on a reused number."""
        waiter: asyncio.Future[None] = self._loop.create_future()

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        watch(self._fd, ready)
        self._waiting = waiter
        try:
            await waiter
        finally:
            self._waiting = None
            if not self._closed:
                unwatch(self._fd)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionResetError("connection closed")

    def closed(self) -> bool:
        if self._closed:
            return True
        try:
            # Idle: nothing is due. An end of stream means the server closed it; bytes
            # nobody asked for (a server's "408 timeout" before it closes) are not an
            # answer to the next request either.
            self._sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # The loop's watches end first, while the number is the socket's own (by number:
        # the selector formats a socket object it does not watch into its error, slowly).
        with contextlib.suppress(ValueError, OSError, NotImplementedError):
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(ConnectionResetError("connection closed"))
        self._sock.close()


class StreamConnection(Connection):
    """https: asyncio's streams over its TLS protocol."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__()
        self.reader = reader
        self.writer = writer
        self.sock = writer.get_extra_info("socket")

    def write(self, data: bytes) -> bool:
        self.writer.write(data)
        return not self.writer.transport.get_write_buffer_size()

    async def flush(self) -> None:
        await self.writer.drain()

    async def recv(self) -> bytes:
        # A read cancelled while it waits takes nothing from the buffer.
        return await self.reader.read(_READ_SIZE)

    def closed(self) -> bool:
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()
