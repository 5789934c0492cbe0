"""Every server style the stand-in offers, met by the default transport: counts, never time.

The styles differ in how the server's HTTP layer writes and accepts (two writes with
Nagle, a listen backlog of 5, Connection: close, TLS). Whatever the style, a failover
converges with one request per read and write (none re-sent), and the connections stay
within ``pool_size``: kept alive where the server allows it, one per request where not.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import bondha
from bondha.config import Config
from bondha.model import Role
from bondha.node.warm import WarmTransport
from bondha.testing import StandInServer, pair_fixture
from bondha.testing.__main__ import main as standin_main
from bondha.transport import Lanes
from bondha.wire import Request
from tests.certificates import Certificates, make_certificates

PER_KIND = 8  # 24 addresses, 48 writes: more than the pool's connections, and the backlog
POOL = 16


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(params=["proxy", "stdlib", "close", "tls"])
def styled(request: pytest.FixtureRequest, certs: Certificates) -> Iterator[StandInServer]:
    tls = certs.server_context() if request.param == "tls" else None
    with StandInServer(pair_fixture(PER_KIND), style=request.param, ssl_context=tls) as server:
        yield server


def _config(server: StandInServer, certs: Certificates, pool_size: int = POOL) -> Config:
    options = {"ca_bundle": str(certs.ca)} if server.style.tls else {}
    text = server.fixture.config_text(server.url, attempt_delay=0.01, timeout=5, **options)
    config = bondha.parse_config(text)
    return attrs.evolve(config, ha=attrs.evolve(config.ha, pool_size=pool_size))


def test_each_style_converges_with_no_request_resent(styled: StandInServer,
                                                     certs: Certificates) -> None:
    result = bondha.reconcile(_config(styled, certs), Role.BACKUP)
    assert result.converged
    stats = styled.stats()
    assert len(stats.writes) == stats.requests_by_method.get("PATCH") == 6 * PER_KIND
    assert stats.requests_by_method.get("GET") == 12  # six collections, before and after
    if styled.style.close_always:
        assert stats.connections == stats.requests  # the server allowed one request each
    else:
        assert stats.connections <= POOL
    assert 1 < stats.most_open <= POOL  # concurrent, and never more than the pool at once
    assert styled.address_report().overlap_moments == 0


def test_a_burst_larger_than_the_backlog_is_served_within_the_pool() -> None:
    """32 requests at once through 16 lanes at a server whose accept queue holds 6."""
    with StandInServer(pair_fixture(2), style="stdlib") as server:
        lanes = Lanes(POOL, ssl.create_default_context())

        async def burst() -> list[int]:
            answers = await asyncio.gather(*(lanes.exchange(Request(
                "GET", f"{server.url}/api/v3/bonds/1/routes/", timeout=10.0))
                for _ in range(32)))
            await lanes.aclose()
            return [answer.status_code for answer in answers]

        statuses = asyncio.run(burst())
        assert len(statuses) == 32
        assert set(statuses) == {401}  # no credentials: still answered, which is the point
        assert lanes.most_open <= POOL
        assert server.stats().connections <= POOL


def test_against_a_server_that_closes_each_connection_the_next_is_made_at_once() -> None:
    """On the loopback a connect has completed when it returns: after the first dial, a
    request whose connection the server closed takes a new one in its own call."""
    with StandInServer(pair_fixture(2), style="close") as server:
        lanes = Lanes(1, ssl.create_default_context())

        async def one_after_another() -> list[int]:
            statuses = []
            for _ in range(20):
                answer = await lanes.exchange(Request(
                    "GET", f"{server.url}/api/v3/bonds/1/routes/", timeout=10.0))
                statuses.append(answer.status_code)
            await lanes.aclose()
            return statuses

        assert asyncio.run(one_after_another()) == [401] * 20
        assert lanes.connects == server.stats().connections == 20
        assert lanes.made_at_once >= 10  # all but the first, unless the machine is very busy
        assert server.stats().most_open == 1


def test_warm_connections_are_reused_and_replaced_when_the_server_closes_them(
        certs: Certificates) -> None:
    with StandInServer(pair_fixture(PER_KIND), style="stdlib") as server:
        config = _config(server, certs, pool_size=4)
        lanes = Lanes(4, ssl.create_default_context())
        warm = WarmTransport(lanes, server.url, 4, interval=0.05)
        try:
            assert warm.warmed() == 4
            assert lanes.connects == 4
            assert bondha.reconcile(config, Role.BACKUP, transport=warm).converged
            assert lanes.connects == 4  # the run opened none of its own
            server.close_connections()  # the server's idle timeout, on every connection
            deadline = 100
            while lanes.connects < 8 and deadline:  # the keeper replaces them
                deadline -= 1
                asyncio.run(asyncio.sleep(0.05))
            assert lanes.connects == 8
            server.reset_stats()
            assert bondha.reconcile(config, Role.MASTER, transport=warm).converged
            stats = server.stats()
            assert stats.requests == 12 + 6 * PER_KIND  # nothing re-sent
            assert stats.connections <= 4
            assert lanes.connects == 8
        finally:
            warm.close()


def test_style_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown server style 'nginx'; one of: proxy"):
        StandInServer(style="nginx")
    with pytest.raises(ValueError, match="style 'tls' needs an ssl_context"):
        StandInServer(style="tls")


def test_the_command_line_refuses_tls_style_without_a_certificate(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        standin_main(["--style", "tls"])
    assert exit_info.value.code == 2
    assert "--style tls needs --tls-cert and --tls-key" in capsys.readouterr().err
