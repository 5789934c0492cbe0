"""The default transport's edge cases: stale keep-alive connections, proxies from the env."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from bondha.config import ApiSettings
from bondha.model import Secret
from bondha.transport import Lanes, default_transport


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

        async with httpx.AsyncClient(transport=Lanes(1, ssl.create_default_context())) as http:
            statuses = []
            for _ in range(3):
                response = await http.get(f"{url}/x/")
                statuses.append(response.status_code)
                await asyncio.sleep(0.05)  # let the server's close arrive
            return statuses

    assert asyncio.run(three_gets()) == [200, 200, 200]
    assert len(connections) == 3


def _settings(url: str) -> ApiSettings:
    return ApiSettings(base_url=url, user="u", password=Secret("p"))


def test_a_proxy_in_the_environment_is_left_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(default_transport(_settings("https://mgmt.example.net"), 4), Lanes)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.net:3128")
    assert isinstance(default_transport(_settings("https://mgmt.example.net"), 4),
                      httpx.AsyncHTTPTransport)
    monkeypatch.setenv("NO_PROXY", "mgmt.example.net")
    assert isinstance(default_transport(_settings("https://mgmt.example.net"), 4), Lanes)
