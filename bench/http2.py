#!/usr/bin/env python3
"""HTTP/2 or HTTP/1.1 lanes? A failover over TLS against a stand-in that offers h2 by ALPN.

The stand-in's API (``bondha.testing``, same latency, same objects) behind an HTTP/2
front end written here with the ``h2`` package (bench only: ``pip install h2``): TLS,
ALPN ``h2`` and ``http/1.1``; an HTTP/1.1 client is served by the stand-in's own HTTP
layer on a second port (``tls`` style), so both clients meet the same application.
Each run is a whole process, interleaved, alternating the failover's direction:

- ``lanes``: ``bondha.reconcile`` with its default transport (HTTP/1.1, ``pool_size``
  kept-alive TLS connections);
- ``h2``: the same call with httpx's transport, ``http2=True`` (one TLS connection, every
  request a stream), with ``pool_size`` requests in flight, and with 100.

    .venv/bin/python bench/http2.py --scenario 0.02:20 --runs 9
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from failover import Scenario, make_certificate

DRIVER = r"""
import sys, time, ssl
started = time.perf_counter()
import bondha
from bondha.config import load_config
from bondha.model import Role
config_path, role, mode, pool = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
config = load_config(config_path)
transport = None
if mode == "h2":
    import httpx
    context = ssl.create_default_context(cafile=config.api.ca_bundle)
    transport = httpx.AsyncHTTPTransport(verify=context, http2=True, http1=False,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
result = bondha.reconcile(config, Role(role), transport=transport, pool_size=pool)
assert result.converged, result.render()
print(time.perf_counter() - started)
"""


class H2Front:
    """TLS + ALPN h2 in front of a running StandInServer's application (same process)."""

    def __init__(self, standin: Any, cert: Path, key: Path) -> None:
        self.standin = standin
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.context.set_alpn_protocols(["h2"])
        self.workers = ThreadPoolExecutor(max_workers=128)  # the latency is slept per request
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait()

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            server = await asyncio.start_server(self._connection, "127.0.0.1", 0,
                                                ssl=self.context, backlog=511)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await server.serve_forever()

        self.loop.run_until_complete(start())

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        import h2.config
        import h2.connection
        import h2.events
        import h2.settings

        from bondha.testing.messages import Request

        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        connection.initiate_connection()
        connection.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 128})
        writer.write(connection.data_to_send())
        streams: dict[int, dict[str, Any]] = {}
        first = True
        window = asyncio.Event()  # set when the peer opens its flow-control window

        async def answer(stream_id: int, state: dict[str, Any]) -> None:
            nonlocal first
            headers = state["headers"]
            path, _, query = headers[":path"].partition("?")
            request = Request(headers[":method"], path, query,
                              {k: v for k, v in headers.items() if not k.startswith(":")},
                              b"".join(state["body"]), f"https://{headers[':authority']}")
            on_new, first = first, False
            response = await self.loop.run_in_executor(
                self.workers, lambda: self.standin._respond(request, first_on_connection=on_new))
            if response is None:
                writer.close()
                return
            connection.send_headers(stream_id, [
                (":status", str(response.status)), *response.headers,
                ("content-length", str(len(response.body)))])
            body = response.body
            while True:  # in frames the peer accepts, as its flow-control window allows
                size = min(len(body), connection.max_outbound_frame_size,
                           connection.local_flow_control_window(stream_id))
                if size <= 0 and body:
                    writer.write(connection.data_to_send())
                    window.clear()
                    await window.wait()
                    continue
                connection.send_data(stream_id, body[:size], end_stream=size == len(body))
                body = body[size:]
                if not body:
                    break
            writer.write(connection.data_to_send())

        tasks = set()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for event in connection.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = {
                            "headers": {k.decode() if isinstance(k, bytes) else k:
                                        v.decode() if isinstance(v, bytes) else v
                                        for k, v in event.headers}, "body": []}
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id]["body"].append(event.data)
                        connection.acknowledge_received_data(event.flow_controlled_length,
                                                             event.stream_id)
                    elif isinstance(event, h2.events.WindowUpdated):
                        window.set()
                    elif isinstance(event, h2.events.StreamEnded):
                        task = asyncio.ensure_future(
                            answer(event.stream_id, streams.pop(event.stream_id)))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                writer.write(connection.data_to_send())
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


def main(argv: Sequence[str] | None = None) -> int:
    import h2.settings  # noqa: F401  (fail early without the package)

    from bondha.testing import StandInServer, pair_fixture

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", type=Scenario.parse)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--pool-size", type=int, default=16)
    args = parser.parse_args(argv)
    print("| latency | addresses | HTTP/1.1 lanes s | h2, pool in flight s | h2, 100 in flight s "
          "| h2/lanes | h2 (100)/lanes | connections lanes / h2 |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario in args.scenario or [Scenario(0.02, 20), Scenario(0.005, 200)]:
        with tempfile.TemporaryDirectory(prefix="bondha-h2-") as workdir:
            work = Path(workdir)
            cert, key = make_certificate(work)
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_context.load_cert_chain(cert, key)
            with StandInServer(pair_fixture(scenario.per_kind), latency=scenario.latency,
                               style="tls", ssl_context=server_context) as standin:
                front = H2Front(standin, cert, key)
                configs = {}
                for name, url in (("lanes", standin.url), ("h2", f"https://127.0.0.1:{front.port}")):
                    path = work / f"{name}.conf"
                    path.write_text(standin.fixture.config_text(url, ca_bundle=str(cert)))
                    path.chmod(0o600)
                    configs[name] = path
                walls: dict[str, list[float]] = {"lanes": [], "h2": [], "h2-100": []}
                connections: dict[str, list[int]] = {"lanes": [], "h2": [], "h2-100": []}
                role = "backup"
                for _ in range(args.runs):
                    for mode in ("lanes", "h2", "h2-100"):
                        standin.reset_stats()
                        config = configs["lanes" if mode == "lanes" else "h2"]
                        pool = 100 if mode == "h2-100" else args.pool_size
                        started = time.perf_counter()
                        subprocess.run([sys.executable, "-c", DRIVER, str(config), role,
                                        "lanes" if mode == "lanes" else "h2", str(pool)],
                                       check=True, capture_output=True)
                        walls[mode].append(time.perf_counter() - started)
                        connections[mode].append(standin.stats().connections)
                        role = "master" if role == "backup" else "backup"
                medians = {mode: statistics.median(values) for mode, values in walls.items()}
                print(f"| {scenario.latency * 1000:g} ms | {scenario.addresses} | "
                      f"{medians['lanes']:.3f} | {medians['h2']:.3f} | {medians['h2-100']:.3f} | "
                      f"{medians['h2'] / medians['lanes']:.3f}x | "
                      f"{medians['h2-100'] / medians['lanes']:.3f}x | "
                      f"{max(connections['lanes'])} / {max(connections['h2'])} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
