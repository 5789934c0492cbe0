"""The stand-in HTTP server: a thread-per-connection keep-alive server around :class:`Api`.

Standard library only (no httpx), so the thing under test never shares code with it.
Quiet: no request log, no tracebacks for clients that go away.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from ..model import Kind, ObjectRef
from .api import Api, object_json
from .control import PREFIX, Control
from .faults import Fault, FaultInjector
from .fixtures import Fixture, RoutingRecord, example_fixture
from .messages import Request, Response, detail
from .store import ObjectStore, Stats
from .styles import ServerStyle, server_style
from .timeline import AddressReport


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        standin: StandInServer,
        address: tuple[str, int],
        tls: ssl.SSLContext | None,
        style: ServerStyle,
    ) -> None:
        self.standin = standin
        self.tls = tls
        self.style = style
        self.request_queue_size = style.backlog  # listen()'s backlog: the accept queue
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which stalls in a network
        # namespace without DNS; the name is never used.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or fails the TLS handshake is not worth a traceback."""

    def track(self, connection: socket.socket, *, is_open: bool) -> None:
        with self._open_lock:
            (self._open.add if is_open else self._open.discard)(connection)

    def close_connections(self) -> None:
        """End idle keep-alive connections, so no client keeps talking to a stopped server."""
        with self._open_lock:
            for connection in self._open:
                # The plain socket's shutdown: wakes the reader without touching TLS state.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(connection, socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 75  # seconds an idle keep-alive connection is kept, as nginx does
    server_version = "bondha-standin"
    server: _HTTPServer

    def setup(self) -> None:
        self._counted = False
        self._ended = False
        # Per style: with Nagle on, a second small write waits for the ACK of the first.
        self.disable_nagle_algorithm = self.server.style.nodelay  # type: ignore[misc]
        if self.server.tls is not None:
            # The handshake happens here, in the connection's thread, not in the accept loop.
            self.request.settimeout(self.timeout)
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()
        self.server.standin._store.connection_opened()  # finish() will end it
        self.server.track(self.connection, is_open=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._ending()
            self.server.track(self.connection, is_open=False)
            self.connection.close()

    def _ending(self) -> None:
        """Once per connection: it is no longer open."""
        if not self._ended:
            self._ended = True
            self.server.standin._store.connection_ending()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: benchmarks send thousands of requests."""

    def _handle(self) -> None:
        body = self._read_body()
        if body is None:
            return
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        scheme = "http" if self.server.tls is None else "https"
        # Absolute URLs name the server as the client addressed it, as Django does.
        host = headers.get("host")
        base_url = f"{scheme}://{host}" if host else self.server.standin.url
        request = Request(self.command, url.path, url.query, headers, body, base_url)
        if url.path.startswith(PREFIX):
            self._ending()  # a test's or benchmark's own connection: not counted as open
        response = self.server.standin._respond(request, first_on_connection=not self._counted)
        if not url.path.startswith(PREFIX):
            self._counted = True
        if response is None:
            # Abortive close: the peer sees a reset, not a clean end of stream.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        else:
            self._send(response)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _read_body(self) -> bytes | None:
        """The request body, read before anything else so the connection stays in step."""
        raw_length = self.headers.get("Content-Length") or "0"
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        if chunked or not (raw_length.isascii() and raw_length.isdigit()):
            self.close_connection = True
            self._send(detail(411 if chunked else 400, "A valid Content-Length is required."))
            return None
        return self.rfile.read(int(raw_length))

    def _send(self, response: Response) -> None:
        reason = self.responses.get(response.status, ("",))[0]
        lines = [
            f"{self.protocol_version} {response.status} {reason}",
            f"Date: {self.date_time_string()}",
            f"Server: {self.server_version}",
            *(f"{name}: {value}" for name, value in response.headers),
            f"Content-Length: {len(response.body)}",
        ]
        if any(
            (name.lower(), value.lower()) == ("connection", "close")
            for name, value in response.headers
        ):
            self.close_connection = True
        elif self.close_connection or self.server.style.close_always:
            self.close_connection = True
            lines.append("Connection: close")
        if self.close_connection:
            self._ending()
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if self.command == "HEAD" else response.body
        if self.server.style.split_writes:
            # http.server's order: end_headers() flushes the head, then the body is written.
            self.wfile.write(head)
            if body:
                self.wfile.write(body)
        else:
            self.wfile.write(head + body)


def _basic_user(header: str | None) -> str | None:
    """The account a Basic Authorization header names (not checked: for matching faults)."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(token.strip(), validate=True).decode().partition(":")[0]
    except ValueError:
        return None


class StandInServer:
    """An in-process stand-in of the management server's REST API (v3 and v4 paths).

    ``latency`` seconds are slept before answering each API request (changeable while
    running); ``page_size`` None serves bare JSON arrays, an int the paginated envelope;
    ``ssl_context`` serves https; ``seed`` makes faults with a ``rate`` reproducible;
    ``style`` names how the HTTP layer writes and accepts (:mod:`bondha.testing.styles`:
    ``proxy``, ``stdlib``, ``close``, ``tls``; ``tls`` needs ``ssl_context``).
    Writes that leave an enabled route without an enabled connected IP holding its gateway
    are counted (:attr:`Stats.violations <bondha.testing.Stats.violations>`); with
    ``strict_dependencies`` they are refused with a DRF field error (400), as a validating
    server would refuse them.
    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        fixture: Fixture | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        api_versions: Iterable[int] = (3, 4),
        page_size: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        seed: int | None = None,
        strict_dependencies: bool = False,
        style: str = "proxy",
    ) -> None:
        if page_size is not None and page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        self.style = server_style(style)
        if self.style.tls and ssl_context is None:
            raise ValueError("style 'tls' needs an ssl_context (the server's certificate)")
        self.fixture = fixture if fixture is not None else example_fixture()
        self.latency = latency
        self.api_versions = tuple(api_versions)
        self._address = (host, port)
        self._tls = ssl_context
        self._store = ObjectStore(self.fixture, strict_dependencies=strict_dependencies)
        self._faults = FaultInjector(seed)
        self._api = Api(self._store, self.fixture.users, self.api_versions, page_size)
        self._control = Control(self._store, self._faults)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> StandInServer:
        """Bind and serve in a daemon thread; statistics and the timeline start now."""
        if self._httpd is not None:
            raise RuntimeError("a StandInServer starts once")
        self._httpd = _HTTPServer(self, self._address, self._tls, self.style)
        self._store.reset()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # how quickly stop() returns
            name=f"bondha-standin:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and every open connection; idempotent."""
        if self._httpd is None or self._stopped or self._thread is None:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        self._thread.join()

    def __enter__(self) -> StandInServer:
        return self if self._httpd is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server has not been started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http(s)://host:port`` without a trailing slash; a wildcard host reads as loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
            self._address[0], self._address[0]
        )
        if ":" in host:
            host = f"[{host}]"
        return f"{'http' if self._tls is None else 'https'}://{host}:{self.port}"

    @property
    def strict_dependencies(self) -> bool:
        """Whether writes that break a route's gateway are refused (400); settable."""
        return self._store.strict_dependencies

    @strict_dependencies.setter
    def strict_dependencies(self, strict: bool) -> None:
        self._store.strict_dependencies = strict

    # -- what tests and benchmarks look at -------------------------------------------------

    def stats(self) -> Stats:
        return self._store.stats()

    def address_report(self) -> AddressReport:
        return self._store.report()

    def reset_stats(self) -> None:
        """Zero the statistics and restart the timeline from the current state."""
        self._store.reset()

    def objects(self) -> tuple[RoutingRecord, ...]:
        """Every object as it is now, sorted by id."""
        return self._store.records()

    def get_object(self, bond_id: int, kind: Kind | str, object_id: int) -> dict[str, Any]:
        """The object's JSON as a GET under the lowest API version would return it."""
        record = self._store.get(bond_id, Kind(kind), object_id)
        if record is None:
            raise KeyError(str(ObjectRef(bond_id, Kind(kind), object_id)))
        return object_json(record, self.url, min(self.api_versions))

    def set_enabled(
        self, bond_id: int, kind: Kind | str, object_id: int, enabled: bool
    ) -> None:
        """Toggle an object as an operator would in the web UI: on the timeline, not a write."""
        self._store.update(ObjectRef(bond_id, Kind(kind), object_id), {"enabled": enabled})

    def close_connections(self) -> None:
        """End every open connection, as a server's keep-alive timeout does; serving goes on."""
        if self._httpd is not None:
            self._httpd.close_connections()

    def inject(self, fault: Fault) -> None:
        self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- the application behind the transport ---------------------------------------------

    def _respond(self, request: Request, *, first_on_connection: bool) -> Response | None:
        """The answer to one request; None means: reset the connection instead."""
        if request.path.startswith(PREFIX):
            return self._control.handle(request)
        self._store.count_request(request.method, new_connection=first_on_connection)
        if self.latency > 0:
            time.sleep(self.latency)
        fault = self._faults.pick(request.method, request.path,
                                  _basic_user(request.header("authorization")))
        if fault is not None:
            time.sleep(fault.delay)
            if fault.drop:
                return None
            if fault.status is not None:
                headers = tuple(fault.response_headers().items())
                return Response(fault.status, fault.body_bytes, headers)
        return self._api.handle(request)
