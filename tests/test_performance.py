"""What makes a failover fast, counted by the stand-in server (no timing: that is bench/'s job).

Reads in O(1) round trips, writes over a bounded pool of keep-alive connections in
dependency order, nothing written on a converged re-run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest

import bondha
from bondha.config import Config, HaSettings
from bondha.errors import TransportError
from bondha.model import Role
from bondha.testing import Fault, StandInServer, pair_fixture

PER_KIND = 30  # 90 floating addresses: many more writes than connections


@pytest.fixture
def big_server() -> Iterator[StandInServer]:
    with StandInServer(pair_fixture(PER_KIND)) as running:
        yield running


def big_config(server: StandInServer, pool_size: int | None = None) -> Config:
    text = pair_fixture(PER_KIND).config_text(server.url, attempt_delay=0.01, timeout=5)
    config = bondha.parse_config(text)
    if pool_size is not None:
        config = attrs.evolve(config, ha=attrs.evolve(config.ha, pool_size=pool_size))
    return config


def test_default_pool_keeps_connections_bounded_and_alive(big_server: StandInServer) -> None:
    result = bondha.reconcile(big_config(big_server), Role.BACKUP)
    assert result.converged
    stats = big_server.stats()
    addresses = 3 * PER_KIND
    assert len(stats.writes) == 2 * addresses
    # Six collections (3 kinds x 2 bonds), read once before and once after the writes.
    assert stats.requests_by_method.get("GET") == 12
    assert 1 <= stats.connections <= HaSettings().pool_size == 16
    assert big_server.address_report().overlap_moments == 0


@pytest.mark.parametrize("pool_size", [1, 3])
def test_pool_size_bounds_connections(big_server: StandInServer, pool_size: int) -> None:
    assert bondha.reconcile(big_config(big_server, pool_size), Role.BACKUP).converged
    assert big_server.stats().connections <= pool_size


def test_writes_land_in_dependency_order_over_a_small_pool(big_server: StandInServer) -> None:
    """Route i's gateway is in connected IP i: with far more writes than connections, every
    write still waits for what it depends on, and each address goes dark exactly once."""
    bondha.reconcile(big_config(big_server, pool_size=4), Role.BACKUP)
    stats = big_server.stats()
    assert len(stats.writes) == 2 * 3 * PER_KIND
    assert stats.violations == ()
    assert stats.connections <= 4
    report = big_server.address_report()
    assert report.dark_moments == 3 * PER_KIND
    assert report.overlap_moments == 0


def test_converged_rerun_reads_once_and_writes_nothing(big_server: StandInServer) -> None:
    config = big_config(big_server)
    bondha.reconcile(config, Role.BACKUP)
    big_server.reset_stats()
    again = bondha.reconcile(config, Role.BACKUP)
    assert again.converged
    assert not again.plan
    stats = big_server.stats()
    assert stats.writes == ()
    assert stats.requests_by_method == {"GET": 6}


def test_paginated_collections_are_followed() -> None:
    with StandInServer(pair_fixture(PER_KIND), page_size=7) as server:
        result = bondha.reconcile(big_config(server), Role.BACKUP)
        assert result.converged
        pages = -(-PER_KIND // 7)  # per collection
        assert server.stats().requests_by_method.get("GET") == 2 * 6 * pages


def test_a_connection_is_given_back_after_an_error_answer(big_server: StandInServer) -> None:
    """With one connection, a 503 that kept it would stall every later request."""
    big_server.inject(Fault(method="PATCH", status=503, count=2, body="<html>busy</html>"))
    result = bondha.reconcile(big_config(big_server, pool_size=1), Role.BACKUP)
    assert result.converged
    assert big_server.stats().connections == 1


def test_the_apply_path_loads_no_httpx(big_server: StandInServer, tmp_path: Path) -> None:
    """httpx (and the proxy reader urllib.request) cost a tenth of a small failover's
    start-up: ``bondha apply`` on the default lanes must not import them."""
    path = tmp_path / "swap-active-bond.conf"
    path.write_text(pair_fixture(PER_KIND).config_text(big_server.url, timeout=5))
    path.chmod(0o600)
    program = (
        "import sys\n"
        "from bondha.cli import main\n"
        f"code = main(['--config', {str(path)!r}, 'apply', '--active', 'backup'])\n"
        "loaded = sorted({name.split('.')[0] for name in sys.modules} & "
        "{'httpx', 'httpcore', 'anyio'} | ({'urllib.request'} & set(sys.modules)))\n"
        "print('loaded:', ','.join(loaded))\n"
        "sys.exit(code)\n")
    env = {key: value for key, value in os.environ.items()
           if not key.lower().endswith("_proxy")}
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         timeout=60, check=False, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "loaded: "
    assert len(big_server.stats().writes) == 2 * 3 * PER_KIND


def test_an_httpx_transport_passed_in_carries_the_failover(big_server: StandInServer) -> None:
    """The transport seam stays httpx's: any httpx transport (here its own, over HTTP/1.1)
    carries a whole failover, bounded like the lanes."""
    transport = httpx.AsyncHTTPTransport()
    result = bondha.reconcile(big_config(big_server), Role.BACKUP, transport=transport)
    assert result.converged
    assert len(big_server.stats().writes) == 2 * 3 * PER_KIND


def test_an_httpx_transport_that_cannot_connect_is_a_transport_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        text = pair_fixture(1).config_text(f"http://127.0.0.1:{port}", attempts=1, timeout=2)
        with pytest.raises(TransportError, match="cannot reach"):
            bondha.reconcile(bondha.parse_config(text), Role.BACKUP,
                             transport=httpx.AsyncHTTPTransport())
