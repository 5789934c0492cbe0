"""A hostile (or badly broken) management server, on raw sockets, for testing clients' bounds.

Each :class:`HostileServer` answers every request the same way, as its ``mode`` says:

``chunked``
    ``200``, ``Transfer-Encoding: chunked``, chunks of 64 KiB without end.
``huge``
    ``200`` with ``Content-Length`` of 100 MB, and the bytes to go with it.
``trickle``
    ``200`` with a small JSON body, one byte every ``trickle_delay`` (0.5 s) seconds.
``pages``
    ``200``, a DRF page with no results whose ``next`` is always a new page.
``control``
    ``403`` whose ``detail`` carries a terminal's control sequences: ``ESC [ 2 J`` (clear
    the screen), an OSC title, a C1 ``0x9b`` CSI, a newline that forges a log line.
``control-names``
    ``200`` lists whose objects' addresses carry the same sequences (every configured id,
    enabled on both bonds: the client has something to show).

Standard library only, sockets and threads, no HTTP library: the client under test never
shares code with it. Use as ``with HostileServer("trickle") as server: server.url``;
``python -m bondha.testing.hostile MODE`` serves in the foreground and prints its URL.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["CONTROL_TEXT", "MODES", "HostileServer"]

MODES = ("chunked", "huge", "trickle", "pages", "control", "control-names")
#: Clear screen, set the window title, a C1 CSI, and a newline that forges a log line.
CONTROL_TEXT = "\x1b[2J\x1b]0;owned\x07\x9b31m\nbondha: ERROR: forged line"
HUGE_BYTES = 100 * 1000 * 1000
_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024


class HostileServer:
    """One mode, every request; counts requests (``requests``) for the tests."""

    def __init__(self, mode: str, *, host: str = "127.0.0.1", port: int = 0,
                 trickle_delay: float = 0.5) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.mode = mode
        self.trickle_delay = trickle_delay
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server((host, port), backlog=64)
        self._listener.settimeout(0.2)
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HostileServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        thread = threading.Thread(target=self._accept, name="hostile-accept", daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._listener.close()

    # -- serving ------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(1.0)
        with contextlib.closing(connection):
            try:
                while not self._stop.is_set():
                    target = self._read_head(connection)
                    if target is None:
                        return
                    with self._lock:
                        self.requests += 1
                        number = self.requests
                    if not self._answer(connection, target, number):
                        return
            except OSError:
                return  # the client went away: what a bounded client does

    def _read_head(self, connection: socket.socket) -> str | None:
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = connection.recv(4096)
            except socket.timeout:
                if self._stop.is_set():
                    return None
                continue
            if not chunk or len(data) > _MAX_HEAD:
                return None
            data += chunk
        request_line = data.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        return parts[1] if len(parts) == 3 else "/"

    def _answer(self, connection: socket.socket, target: str, number: int) -> bool:
        """Send this mode's answer; True when the connection may carry another request."""
        mode = self.mode
        if mode in ("chunked", "huge"):
            self._flood(connection)
            return False
        if mode == "trickle":
            body = json.dumps({"results": [], "next": None, "padding": "x" * 200}).encode()
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n" % len(body))
            for index in range(len(body)):
                if self._stop.wait(self.trickle_delay):
                    return False
                connection.sendall(body[index:index + 1])
            return True
        if mode == "pages":
            path = urlsplit(target).path
            return self._json(connection, 200, {
                "count": 10 ** 9, "results": [],
                "next": f"{path}?page={number + 1}", "previous": None})
        if mode == "control":
            return self._json(connection, 403, {"detail": f"denied {CONTROL_TEXT}"})
        return self._json(connection, 200, self._listing(target))

    def _flood(self, connection: socket.socket) -> None:
        """``chunked``: chunks without end; ``huge``: 100 MB as declared."""
        block = b" " * _CHUNK
        if self.mode == "chunked":
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n" % _CHUNK + block + b"\r\n"
            while not self._stop.is_set():
                connection.sendall(chunk)
            return
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n" % HUGE_BYTES)
        for _ in range(HUGE_BYTES // _CHUNK):
            if self._stop.is_set():
                return
            connection.sendall(block)
        connection.sendall(b" " * (HUGE_BYTES % _CHUNK))

    @staticmethod
    def _listing(target: str) -> list[dict[str, object]]:
        """For ``control-names``: ids 1 to 20 of the collection asked for, addresses hostile."""
        parts = [p for p in urlsplit(target).path.split("/") if p]
        kind = parts[-1] if parts else "connected_ips"
        field = {"connected_ips": "ip", "routes": "network", "cpe_nat_ips": "ip"}.get(kind, "ip")
        return [{"id": i, "enabled": True, field: f"10.0.0.{i}{CONTROL_TEXT}"}
                for i in range(1, 21)]

    @staticmethod
    def _json(connection: socket.socket, status: int, data: object) -> bool:
        body = json.dumps(data).encode()  # \u escapes in JSON: decoded to raw controls
        reason = {200: b"OK", 403: b"Forbidden"}.get(status, b"Status")
        connection.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n" % (status, reason, len(body)) + body)
        return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in MODES:
        sys.stderr.write(f"usage: python -m bondha.testing.hostile {{{','.join(MODES)}}}\n")
        return 2
    with HostileServer(args[0]) as server:
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
