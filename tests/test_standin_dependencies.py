"""Routes need their gateway's connected IP: the stand-in counts, or refuses, what breaks one,
and bondha writes in an order that never does (docs/library.md, "Write order")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest

import bondha
from bondha.model import Kind, Role
from bondha.testing import StandInServer, example_fixture, pair_fixture
from bondha.testing.fixtures import EXAMPLE_PASSWORD, EXAMPLE_USER, RoutingRecord

AUTH = (EXAMPLE_USER, EXAMPLE_PASSWORD)


def url(server: StandInServer, bond: int, kind: Kind, object_id: int) -> str:
    return f"{server.url}/api/v3/bonds/{bond}/{kind.value}/{object_id}/"


@pytest.fixture(params=[False, True], ids=["lax", "strict"])
def strict(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def example(strict: bool) -> Iterator[StandInServer]:
    with StandInServer(example_fixture(), strict_dependencies=strict) as running:
        yield running


def test_disabling_a_connected_ip_under_an_enabled_route(example: StandInServer,
                                                         strict: bool) -> None:
    answer = httpx.patch(url(example, 1, Kind.CONNECTED_IP, 1), json={"enabled": False},
                         auth=AUTH)
    stats = example.stats()
    assert [(v.id, v.routes, v.refused) for v in stats.violations] == [(1, (7,), strict)]
    if strict:
        assert answer.status_code == 400
        assert "198.51.100.0/24 (route 7)" in answer.json()["enabled"][0]
        assert example.get_object(1, Kind.CONNECTED_IP, 1)["enabled"] is True
        assert stats.writes == ()
        assert (stats.dependency_violations, stats.dependency_refusals) == (0, 1)
    else:
        assert answer.status_code == 200
        assert (stats.dependency_violations, stats.dependency_refusals) == (1, 0)


def test_enabling_a_route_before_its_connected_ip(example: StandInServer, strict: bool) -> None:
    answer = httpx.patch(url(example, 3, Kind.ROUTE, 8), json={"enabled": True}, auth=AUTH)
    assert answer.status_code == (400 if strict else 200)
    if strict:
        assert answer.json() == {"gateway": [
            "Gateway 203.0.113.2 is not in the network of an enabled connected IP of bond 3."]}
    # Now the right order: no violation.
    example.reset_stats()
    for kind, object_id in ((Kind.CONNECTED_IP, 4), (Kind.ROUTE, 8)):
        assert httpx.patch(url(example, 3, kind, object_id), json={"enabled": True},
                           auth=AUTH).status_code == 200
    assert example.stats().violations == ()


def test_what_breaks_nothing_is_no_violation() -> None:
    objects = (
        RoutingRecord(1, Kind.CONNECTED_IP, 1, True, "203.0.113.1/30"),
        RoutingRecord(1, Kind.CONNECTED_IP, 2, True, "203.0.113.5/29"),  # also holds .2
        RoutingRecord(1, Kind.ROUTE, 3, True, "198.51.100.0/24", gateway="203.0.113.2"),
        RoutingRecord(1, Kind.ROUTE, 4, True, "198.51.101.0/24", gateway="192.0.2.1"),
        RoutingRecord(1, Kind.ROUTE, 5, False, "198.51.102.0/24", gateway="203.0.113.2"),
    )
    fixture = bondha.testing.Fixture(objects, example_fixture().users)
    with StandInServer(fixture, strict_dependencies=True) as server:
        # Another connected IP still holds route 3's gateway; route 4's is in none of them
        # (a server cannot tell; nothing here can break it); disabling a route breaks nothing.
        for kind, object_id, enabled in ((Kind.CONNECTED_IP, 1, False), (Kind.ROUTE, 4, True),
                                         (Kind.ROUTE, 3, False)):
            assert httpx.patch(url(server, 1, kind, object_id), json={"enabled": enabled},
                               auth=AUTH).status_code == 200
        assert server.stats().violations == ()


# -- bondha against the strict server ------------------------------------------------------


@pytest.mark.parametrize("per_kind", [0, 12])
def test_failover_and_back_never_breaks_a_gateway(per_kind: int, tmp_path: Path) -> None:
    fixture = pair_fixture(per_kind) if per_kind else example_fixture()
    with StandInServer(fixture, strict_dependencies=True) as server:
        path = tmp_path / "swap-active-bond.conf"
        path.write_text(fixture.config_text(server.url, attempt_delay=0.01, timeout=5))
        path.chmod(0o600)
        config = bondha.load_config(path)
        for role in (Role.BACKUP, Role.MASTER):
            result = bondha.reconcile(config, role)
            assert result.converged
            assert result.rounds == 1
        stats = server.stats()
        assert stats.violations == ()
        assert len(stats.writes) == 2 * len(config.pair.refs())
        assert server.address_report().overlap_moments == 0


def test_a_refusal_is_reported_with_the_object_and_not_retried(tmp_path: Path) -> None:
    """The server knows a need bondha cannot: the route's gateway lies in the bonders'
    private link, which is not in [bond], and someone disabled it on the backup bond."""
    base = example_fixture()
    objects = tuple(attrs.evolve(o, gateway="192.168.66.1") if o.kind is Kind.ROUTE else o
                    for o in base.objects)
    fixture = attrs.evolve(base, objects=objects)
    with StandInServer(fixture, strict_dependencies=True) as server:
        server.set_enabled(3, Kind.CONNECTED_IP, 5, False)  # a click in the UI, not a write
        path = tmp_path / "swap-active-bond.conf"
        path.write_text(fixture.config_text(server.url, attempt_delay=0.01, timeout=5))
        path.chmod(0o600)
        with pytest.raises(bondha.ApplyError) as info:
            bondha.reconcile(bondha.load_config(path), Role.BACKUP)
        result = info.value.result
        assert [f.change.ref.id for f in result.failed] == [8]
        assert result.failed[0].reason == (
            "PATCH route 8 on bond 3: HTTP 400: gateway: Gateway 192.168.66.1 is not in the "
            "network of an enabled connected IP of bond 3.")
        assert result.rounds == 1  # a 400 is final: the same write would get the same answer
        assert server.stats().dependency_refusals == 1
        assert server.stats().requests_by_method["PATCH"] == 6  # one try at each write
        assert "enable route 8 on bond 3 (198.51.100.0/24): FAILED: PATCH route 8" in (
            result.render())
