"""The default transport's edge cases: stale keep-alive connections, proxies from the env."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Callable

import attrs
import httpx
import pytest

from bondha.config import ApiSettings
from bondha.httpxwire import HttpxWire
from bondha.model import Secret
from bondha.transport import Lanes, default_transport, tls_context
from bondha.wire import ConnectError, ConnectTimeout, Request, WireError
from tests.certificates import Certificates, make_certificates


class _OneAnswerPerConnection(http.server.BaseHTTPRequestHandler):
    """Answers as if keeping the connection alive, then closes it: a server's idle timeout."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def closing_server() -> Iterator[tuple[str, list[int]]]:
    connections: list[int] = []

    class Handler(_OneAnswerPerConnection):
        def setup(self) -> None:
            connections.append(1)
            super().setup()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", connections
    finally:
        server.shutdown()
        server.server_close()


def test_a_connection_closed_while_idle_is_replaced(closing_server: tuple[str, list[int]],
                                                    ) -> None:
    url, connections = closing_server

    async def three_gets() -> list[int]:
        import ssl

        lanes = Lanes(1, ssl.create_default_context())
        statuses = []
        for _ in range(3):
            answer = await lanes.exchange(Request("GET", f"{url}/x/", timeout=5.0))
            statuses.append(answer.status_code)
            await asyncio.sleep(0.05)  # let the server's close arrive
        await lanes.aclose()
        return statuses

    assert asyncio.run(three_gets()) == [200, 200, 200]
    assert len(connections) == 3


def test_a_refused_connect_is_a_connect_error_and_frees_its_place() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nobody listens there now: the kernel refuses

    async def twice() -> list[str]:
        lanes = Lanes(1, ssl.create_default_context())
        errors = []
        for _ in range(2):  # a second time: the failed dial did not keep the only place
            with pytest.raises(ConnectError) as caught:
                await lanes.exchange(Request("GET", f"http://127.0.0.1:{port}/x/", timeout=5.0))
            errors.append(str(caught.value))
        assert lanes.open == 0
        await lanes.aclose()
        return errors

    errors = asyncio.run(asyncio.wait_for(twice(), 30))  # a hang guard
    assert errors == [f"[Errno 111] Connect call failed ('127.0.0.1', {port})"] * 2


def _settings(url: str) -> ApiSettings:
    return ApiSettings(base_url=url, user="u", password=Secret("p"))


def test_a_proxy_in_the_environment_is_left_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(default_transport(_settings("https://mgmt.example.net"), 4), Lanes)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.net:3128")
    proxied = default_transport(_settings("https://mgmt.example.net"), 4)
    assert isinstance(proxied, HttpxWire)
    assert isinstance(proxied.transport, httpx.AsyncHTTPTransport)
    monkeypatch.setenv("NO_PROXY", "mgmt.example.net")
    assert isinstance(default_transport(_settings("https://mgmt.example.net"), 4), Lanes)


class _Stop(Exception):
    """What a run's guard raises when a newer event takes over."""


class _GuardStoppingAt:
    """A run's guard that counts its calls and raises :class:`_Stop` at the ``n``-th."""

    def __init__(self, n: int) -> None:
        self.calls = 0
        self._n = n

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == self._n:
            raise _Stop


def test_a_request_waiting_for_a_lane_ends_at_its_deadline_and_heeds_its_guard() -> None:
    """The only lane is held by a request the server never answers: the next request waits
    for a connection (the pool is full), and that wait is bounded like every other one."""
    listener = socket.create_server(("127.0.0.1", 0))  # accepts nothing, answers nothing
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/x/"

    def request(deadline: float, guard: Callable[[], None] | None = None) -> Request:
        return Request("GET", url, timeout=60.0, deadline=deadline, interrupt=guard)

    guard = _GuardStoppingAt(3)

    async def scenario() -> None:
        lanes = Lanes(1, ssl.create_default_context())
        holder = asyncio.ensure_future(
            lanes.exchange(request(time.monotonic() + 60)))
        while lanes.connects == 0:
            await asyncio.sleep(0.01)
        with pytest.raises(ConnectTimeout):
            await lanes.exchange(request(time.monotonic() + 0.2))
        with pytest.raises(_Stop):
            await lanes.exchange(request(time.monotonic() + 60, guard))
        assert lanes.most_open == 1
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder
        await lanes.aclose()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))  # a hang guard, not a timing assertion
    finally:
        listener.close()
    assert guard.calls == 3


def test_a_connect_that_hangs_heeds_the_guard() -> None:
    """A server whose accept queue is full drops the SYN: the connect waits, and the request
    waiting for it calls its guard meanwhile (a newer event ends it at once)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # accepts nothing: the queue fills with the first connects
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(listener.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    guard = _GuardStoppingAt(3)

    async def scenario() -> None:
        lanes = Lanes(1, ssl.create_default_context())
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x/"
        with pytest.raises(_Stop):
            await lanes.exchange(Request("GET", url, timeout=60.0, interrupt=guard))
        assert lanes.dialling == 1  # the connect goes on, for whichever request comes next
        await lanes.aclose()
        assert lanes.open == 0

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))  # a hang guard, not a timing assertion
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert guard.calls == 3


def test_closing_the_lanes_ends_a_request_waiting_for_its_answer() -> None:
    """The server read the request and never answers: closing the lanes (the daemon
    stopping) ends the wait at once, not at the request's timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    accepter = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
    accepter.start()

    async def scenario() -> BaseException:
        lanes = Lanes(1, ssl.create_default_context())
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x/"
        waiting = asyncio.ensure_future(lanes.exchange(Request("GET", url, timeout=600.0)))
        while lanes.connects == 0 or not held:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the request is sent and its answer awaited
        await lanes.aclose()
        with pytest.raises(WireError) as caught:
            await waiting
        return caught.value

    try:
        error = asyncio.run(asyncio.wait_for(scenario(), 30))  # a hang guard
    finally:
        for each in held:
            each.close()
        listener.close()
    assert "without answering" in str(error)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def test_without_a_ca_bundle_the_server_is_checked_against_the_cas_httpx_trusts(
        monkeypatch: pytest.MonkeyPatch, certs: Certificates) -> None:
    """The lanes build their TLS context themselves, with httpx's defaults: certifi's
    bundle, or $SSL_CERT_FILE where set; verify_ssl = false checks nothing."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    default = tls_context(_settings("https://mgmt.example.net"))
    assert default.verify_mode == ssl.CERT_REQUIRED
    assert default.check_hostname
    assert default.cert_store_stats()["x509_ca"] > 10  # certifi's bundle, not nothing
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    assert tls_context(_settings("https://mgmt.example.net")).cert_store_stats()[
        "x509_ca"] == 1
    unchecked = tls_context(attrs.evolve(_settings("https://mgmt.example.net"),
                                         verify_ssl=False))
    assert unchecked.verify_mode == ssl.CERT_NONE
    assert not unchecked.check_hostname
