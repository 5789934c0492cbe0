"""The library against the stand-in server over HTTP: failover, failback, idempotence, refusals."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import bondha
from bondha.config import Config
from bondha.model import Kind, Role, Secret
from bondha.testing import Fault, StandInServer, User, pair_fixture


def enabled_bonds(server: StandInServer, config: Config) -> dict[tuple[Kind, str], set[int]]:
    """For every configured floating address, the bonds on which the server has it enabled."""
    out: dict[tuple[Kind, str], set[int]] = {}
    for ref in config.pair.refs():
        obj = server.get_object(ref.bond_id, ref.kind, ref.id)
        key = (ref.kind, obj[ref.kind.address_field])
        out.setdefault(key, set())
        if obj["enabled"]:
            out[key].add(ref.bond_id)
    return out


def writes(server: StandInServer) -> int:
    return len(server.stats().writes)


def short_deadline(config: Config, seconds: float = 1.0, **ha: Any) -> Config:
    """Faults a retry can fix are retried until the deadline: keep tests of lasting faults short."""
    return attrs.evolve(config, ha=attrs.evolve(config.ha, deadline=seconds, **ha))


def test_failover_moves_every_address_and_never_overlaps(server: StandInServer,
                                                        config: Config) -> None:
    result = bondha.reconcile(config, Role.BACKUP)
    assert result.converged
    assert len(result.done) == 6
    assert set(map(frozenset, enabled_bonds(server, config).values())) == {frozenset({3})}
    report = server.address_report()
    assert report.overlap_moments == 0
    assert writes(server) == 6


def test_failback_and_rerun_writes_nothing(server: StandInServer, config: Config) -> None:
    bondha.reconcile(config, Role.BACKUP)
    result = bondha.reconcile(config, Role.MASTER)
    assert [c.ref.bond_id for c in result.done if not c.enabled] == [3, 3, 3]
    assert set(map(frozenset, enabled_bonds(server, config).values())) == {frozenset({1})}
    before = writes(server)
    again = bondha.reconcile(config, Role.MASTER)
    assert again.converged
    assert not again.plan
    assert writes(server) == before
    assert server.address_report().overlap_moments == 0


def test_dry_run_writes_nothing(server: StandInServer, config: Config) -> None:
    result = bondha.reconcile(config, Role.BACKUP, dry_run=True)
    assert len(result.plan) == 6
    assert result.done == ()
    assert writes(server) == 0


def test_partial_state_only_writes_what_differs(server: StandInServer, config: Config) -> None:
    server.set_enabled(3, Kind.ROUTE, 8, True)  # someone half-did a failover by hand: overlap
    server.set_enabled(1, Kind.ROUTE, 7, False)
    result = bondha.reconcile(config, Role.BACKUP)
    assert result.converged
    assert len(result.done) == 4
    assert sorted(r.id for r in result.plan.unchanged) == [7, 8]


@pytest.mark.parametrize(("change", "error", "culprit"), [
    ({"password": Secret("wrong")}, bondha.AuthError, "ha@example.net"),
    ({"user": "nobody@example.net"}, bondha.AuthError, "nobody@example.net"),
])
def test_wrong_credentials_refused_before_any_write(server: StandInServer, config: Config,
                                                    change: dict[str, Any],
                                                    error: type[Exception], culprit: str) -> None:
    bad = attrs.evolve(config, api=attrs.evolve(config.api, **change))
    with pytest.raises(error) as info:
        bondha.reconcile(bad, Role.BACKUP)
    assert culprit in str(info.value)
    assert "wrong" not in str(info.value)
    assert writes(server) == 0


def test_unknown_id_refused_naming_id_and_bond(server: StandInServer, config: Config) -> None:
    backup = attrs.evolve(config.pair.backup, route_ids=(8, 99))
    bad = attrs.evolve(config, pair=attrs.evolve(config.pair, backup=backup))
    with pytest.raises(bondha.NotFound) as info:
        bondha.reconcile(bad, Role.BACKUP)
    assert "route 99 on bond 3" in str(info.value)
    assert writes(server) == 0


def test_id_of_the_other_bond_is_not_found(server: StandInServer, config: Config) -> None:
    backup = attrs.evolve(config.pair.backup, route_ids=(7,))  # 7 lives on bond 1
    bad = attrs.evolve(config, pair=attrs.evolve(config.pair, backup=backup))
    with pytest.raises(bondha.NotFound, match="route 7 on bond 3"):
        bondha.reconcile(bad, Role.BACKUP)
    assert writes(server) == 0


def test_forbidden_bond_refused_before_any_write(config: Config, tmp_path: object) -> None:
    fixture = attrs.evolve(pair_fixture(2), users=(
        User("narrow@example.net", "pw", bonds=frozenset({1})),))
    with StandInServer(fixture) as server:
        api = attrs.evolve(config.api, base_url=server.url, user="narrow@example.net",
                           password=Secret("pw"))
        narrow = attrs.evolve(config, api=api, pair=fixture.pair())
        with pytest.raises(bondha.PermissionDenied, match="bond 2"):
            bondha.reconcile(narrow, Role.BACKUP)
        assert writes(server) == 0


def test_paginated_lists_are_followed(config: Config) -> None:
    fixture = pair_fixture(7)
    with StandInServer(fixture, page_size=3) as server:
        cfg = attrs.evolve(config, api=attrs.evolve(config.api, base_url=server.url),
                           pair=fixture.pair())
        result = bondha.reconcile(cfg, Role.BACKUP)
        assert result.converged
        assert len(result.done) == 42
        assert server.address_report().overlap_moments == 0


def test_collections_not_served_fall_back_to_object_reads(server: StandInServer,
                                                          config: Config) -> None:
    server.inject(Fault(method="GET", path=r"/bonds/\d+/\w+/$", status=404,
                        body='{"detail": "Not found."}'))
    result = bondha.reconcile(config, Role.BACKUP)
    assert result.converged
    assert len(result.done) == 6


def test_html_503_is_retried_then_converges(server: StandInServer, config: Config) -> None:
    server.inject(Fault(method="PATCH", status=503, count=2,
                        body="<html><body>Service Unavailable</body></html>",
                        headers={"Content-Type": "text/html"}))
    result = bondha.reconcile(config, Role.BACKUP)
    assert result.converged
    assert server.address_report().overlap_moments == 0


def test_failed_disable_holds_back_the_enable(server: StandInServer, config: Config) -> None:
    server.inject(Fault(method="PATCH", path=r"/bonds/1/cpe_nat_ips/10/$", status=503,
                        body="<html>down</html>"))
    with pytest.raises(bondha.ApplyError) as info:
        bondha.reconcile(short_deadline(config), Role.BACKUP)
    result = info.value.result
    assert [f.change.ref.id for f in result.failed] == [10]
    assert [c.ref.id for c in result.skipped] == [11]
    assert result.why_skipped(result.skipped[0]) == "the other bond's copy could not be disabled"
    assert "HTML" in result.failed[0].reason
    assert server.get_object(3, Kind.CPE_NAT_IP, 11)["enabled"] is False
    assert server.address_report().overlap_moments == 0
    assert len(result.done) == 4  # the other addresses moved


def test_failed_route_disable_holds_back_its_connected_ip(server: StandInServer,
                                                          config: Config) -> None:
    """Disabling connected IP 1 would leave route 7 enabled without its gateway 203.0.113.2."""
    server.inject(Fault(method="PATCH", path=r"/bonds/1/routes/7/$", status=503,
                        body="<html>down</html>"))
    with pytest.raises(bondha.ApplyError) as info:
        bondha.reconcile(short_deadline(config), Role.BACKUP)
    result = info.value.result
    assert [f.change.ref.id for f in result.failed] == [7]
    assert [c.ref.id for c in result.skipped] == [1, 4, 8]
    assert result.why_skipped(result.skipped[0]) == (
        "it waits for disable route 7 on bond 1 (198.51.100.0/24) (gateway), which failed")
    assert server.get_object(1, Kind.CONNECTED_IP, 1)["enabled"] is True
    assert server.stats().dependency_violations == 0
    assert server.address_report().overlap_moments == 0
    skipped = result.to_json()["skipped"]
    assert [entry["id"] for entry in skipped] == [1, 4, 8]
    assert "route 7" in skipped[0]["reason"]
    assert "NOT DONE (it waits for disable route 7" in result.render()


@pytest.mark.parametrize("body", ["not json", "[]", '{"id": 1}', '{"id": 1, "enabled": "yes"}'])
def test_garbage_answers_are_clean_errors(server: StandInServer, config: Config,
                                          body: str) -> None:
    server.inject(Fault(method="GET", status=200, body=body))
    with pytest.raises(bondha.BadResponse) as info:
        bondha.reconcile(config, Role.BACKUP)
    assert "\n" not in str(info.value)
    assert writes(server) == 0


def test_unmanaged_list_items_need_only_an_id(server: StandInServer, config: Config) -> None:
    odd = ('[{"id": 7, "url": "x", "enabled": true, "network": "198.51.100.0/24"},'
           ' {"id": 70, "enabled": "maybe", "network": null, "something": "new"}]')
    server.inject(Fault(method="GET", path=r"/bonds/1/routes/$", status=200, body=odd))
    result = bondha.reconcile(config, Role.BACKUP, dry_run=True)
    assert len(result.plan) == 6


def test_list_item_without_id_is_a_clean_error(server: StandInServer, config: Config) -> None:
    server.inject(Fault(method="GET", path=r"/bonds/1/routes/$", status=200,
                        body='[{"enabled": true}]'))
    with pytest.raises(bondha.BadResponse, match="whole-number 'id'"):
        bondha.reconcile(config, Role.BACKUP, dry_run=True)


def test_patch_answered_204_is_verified_by_reading_back(server: StandInServer,
                                                         config: Config) -> None:
    # The fault answers 204 without applying the write: verification notices, a second
    # round writes it again.
    server.inject(Fault(method="PATCH", path=r"/bonds/3/routes/8/$", status=204, count=1))
    result = bondha.reconcile(config, Role.BACKUP)
    assert result.converged
    assert result.rounds == 2
    assert writes(server) == 6
    assert server.get_object(3, Kind.ROUTE, 8)["enabled"] is True


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_a_failing_write_is_tried_exactly_attempts_times_per_round(
        server: StandInServer, config: Config, attempts: int) -> None:
    api = attrs.evolve(config.api, attempts=attempts, attempt_delay=0.01)
    one_round = attrs.evolve(config, api=api, ha=attrs.evolve(config.ha, deadline=0.5))
    server.inject(Fault(method="PATCH", path=r"/bonds/1/routes/7/$", status=503,
                        body="<html>busy</html>"))
    with pytest.raises(bondha.ApplyError) as info:
        bondha.reconcile(one_round, Role.BACKUP)
    rounds = info.value.result.rounds
    patches_of_7 = server.stats().requests_by_method["PATCH"] - len(server.stats().writes)
    assert patches_of_7 == attempts * rounds


def test_without_list_reads_each_object_is_read_alone_and_the_pair_is_the_same(
        server: StandInServer, config: Config) -> None:
    listed = bondha.read_live(config)
    server.inject(Fault(method="GET", path=r"/(connected_ips|routes|cpe_nat_ips)/$",
                        status=404, body='{"detail": "Not found."}'))
    before = server.stats().requests_by_method["GET"]
    alone = bondha.read_live(config)
    assert alone == listed
    assert list(alone) == list(listed)
    lists = sum(1 for side in (config.pair.master, config.pair.backup) for kind in Kind
                if side.ids(kind))
    # Each list refused, then one detail read per object.
    assert server.stats().requests_by_method["GET"] - before == lists + len(listed)
