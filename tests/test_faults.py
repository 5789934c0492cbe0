"""Faults of the management server, injected into the stand-in: retried to a total deadline,
verified, and the partial-failure policy both ways."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest

import bondha
from bondha.config import Config
from bondha.model import Kind, Role
from bondha.testing import Fault, StandInServer
from tests.conftest import bondha as bondha_cli
from tests.conftest import write_config

HTML_503 = "<html><body><h1>503 Service Unavailable</h1></body></html>"


def with_ha(config: Config, **ha: Any) -> Config:
    return attrs.evolve(config, ha=attrs.evolve(config.ha, **ha))


def with_api(config: Config, **api: Any) -> Config:
    return attrs.evolve(config, api=attrs.evolve(config.api, **api))


def active(server: StandInServer) -> dict[int, set[int]]:
    """For each floating pair (master id), the bonds on which it is enabled."""
    pairs = {1: (Kind.CONNECTED_IP, 4), 7: (Kind.ROUTE, 8), 10: (Kind.CPE_NAT_IP, 11)}
    return {master: {bond for bond, oid in ((1, master), (3, backup))
                     if server.get_object(bond, kind, oid)["enabled"]}
            for master, (kind, backup) in pairs.items()}


def patches(server: StandInServer) -> int:
    return server.stats().requests_by_method.get("PATCH", 0)


@pytest.mark.parametrize("fault", [
    Fault(method="PATCH", status=503, body='{"detail": "Service unavailable."}', count=3),
    Fault(method="PATCH", status=502, body=HTML_503, headers={"Retry-After": "0"}, count=3),
    Fault(method="GET", status=504, body=HTML_503, count=4),
    Fault(method="PATCH", status=429, body='{"detail": "Slow down."}',
          headers={"Retry-After": "0.05"}, count=2),
    Fault(method="PATCH", drop=True, count=3),
    Fault(method="GET", drop=True, count=3),
    Fault(method="PATCH", delay=1.0, count=2),  # the client's timeout is 0.3 s
    Fault(status=500, body=b"\x00\xff\xfe not even text", count=5, rate=0.5),
], ids=["503-json", "502-html-retry-after", "504-on-reads", "429", "reset-on-write",
        "reset-on-read", "timeout", "500-binary-random"])
def test_transient_faults_converge_without_overlap(server: StandInServer, config: Config,
                                                   fault: Fault) -> None:
    server.inject(fault)
    result = bondha.reconcile(with_ha(with_api(config, timeout=0.3), deadline=10), Role.BACKUP)
    assert result.converged
    assert active(server) == {1: {3}, 7: {3}, 10: {3}}
    assert server.address_report().overlap_moments == 0


def test_server_down_then_back_within_the_deadline(server: StandInServer,
                                                   config: Config) -> None:
    server.inject(Fault(drop=True))  # every request reset: the server is "down"
    healer = threading.Timer(0.6, server.clear_faults)
    healer.start()
    try:
        result = bondha.reconcile(with_ha(config, deadline=10), Role.BACKUP)
    finally:
        healer.cancel()
    assert result.converged
    assert active(server) == {1: {3}, 7: {3}, 10: {3}}
    assert server.address_report().overlap_moments == 0


def test_down_past_the_deadline_is_exit_1_with_a_summary(server: StandInServer,
                                                         config_path: Path) -> None:
    server.inject(Fault(method="PATCH", path=r"/cpe_nat_ips/", status=503, body=HTML_503))
    text = config_path.read_text() + "[bondha]\ndeadline = 1\n"
    out = bondha_cli("apply", "--active", "backup", config=write_config(config_path, text))
    assert out.returncode == 1
    assert "disable CPE NAT IP 10 on bond 1 (203.0.113.9/32): FAILED: " in out.stdout
    assert "HTML page" in out.stdout
    assert "enable CPE NAT IP 11 on bond 3 (203.0.113.9/32): NOT DONE" in out.stdout
    assert "enable route 8 on bond 3 (198.51.100.0/24): done" in out.stdout
    assert "NOT converged; 4 changed" in out.stdout
    assert "Traceback" not in out.stderr
    assert server.address_report().overlap_moments == 0


@pytest.mark.parametrize(("status", "body"), [
    (400, '{"enabled": ["Must be a valid boolean."]}'),
    (401, '{"detail": "Invalid username/password."}'),
    (403, '{"detail": "You do not have permission to perform this action."}'),
    (404, '{"detail": "Not found."}'),
])
def test_client_errors_on_writes_are_never_retried(server: StandInServer, config: Config,
                                                   status: int, body: str) -> None:
    server.inject(Fault(method="PATCH", path=r"/routes/7/$", status=status, body=body))
    with pytest.raises(bondha.ApplyError) as info:
        bondha.reconcile(with_ha(config, deadline=10), Role.BACKUP)
    result = info.value.result
    assert result.rounds == 1
    assert [f.change.ref.id for f in result.failed] == [7]
    assert [c.ref.id for c in result.skipped] == [8]
    assert patches(server) == 5  # one try at route 7, none at route 8, four that worked


@pytest.mark.parametrize("status", [401, 403, 404])
def test_client_errors_on_reads_are_never_retried(server: StandInServer, config: Config,
                                                  status: int) -> None:
    server.inject(Fault(method="GET", status=status, body='{"detail": "No."}'))
    with pytest.raises(bondha.RefusedError):
        bondha.reconcile(with_ha(config, deadline=10), Role.BACKUP)
    # One read per list, then (403/404 on a list: maybe an older server) one per object; after
    # a 404, one read of the bonds list to name every wrong bond and id (issue 13).
    assert server.stats().requests_by_method.get("GET", 0) <= (13 if status == 404 else 12)
    assert patches(server) == 0


def test_lost_write_is_found_by_verification_and_redone(server: StandInServer,
                                                        config: Config) -> None:
    # The server says "done" but never applies it (a proxy that answers from a cache...).
    server.inject(Fault(method="PATCH", path=r"/routes/8/$", status=200, count=1,
                        body='{"id": 8, "enabled": true, "network": "198.51.100.0/24"}'))
    result = bondha.reconcile(config, Role.BACKUP)
    assert result.converged
    assert result.rounds == 2
    assert active(server)[7] == {3}


@pytest.mark.parametrize(("policy", "route_8_enabled", "overlaps"), [
    ("hold", False, 0), ("enable", True, 1)])
def test_disable_that_never_succeeds(server: StandInServer, config: Config, policy: str,
                                     route_8_enabled: bool, overlaps: int) -> None:
    server.inject(Fault(method="PATCH", path=r"/routes/7/$", status=503, body=HTML_503))
    with pytest.raises(bondha.ApplyError) as info:
        bondha.reconcile(with_ha(config, deadline=1, on_disable_failure=policy), Role.BACKUP)
    result = info.value.result
    assert [f.change.ref.id for f in result.failed] == [7]
    assert server.get_object(3, Kind.ROUTE, 8)["enabled"] is route_8_enabled
    assert server.get_object(1, Kind.ROUTE, 7)["enabled"] is True
    route = next(a for a in server.address_report().addresses if a.kind is Kind.ROUTE)
    assert route.overlap_moments == overlaps
    assert route.dark_moments == 0  # the old copy stays lit either way
    assert active(server)[1] == {3}  # the other addresses moved


@pytest.mark.parametrize(("policy", "overlaps"), [("hold", 0), ("enable", 1)])
def test_disable_that_succeeds_late(server: StandInServer, config: Config, policy: str,
                                    overlaps: int) -> None:
    server.inject(Fault(method="PATCH", path=r"/routes/7/$", status=503, body=HTML_503, count=4))
    result = bondha.reconcile(with_ha(config, deadline=10, on_disable_failure=policy),
                              Role.BACKUP)
    assert result.converged
    assert result.rounds >= 2
    assert server.address_report().overlap_moments == overlaps


GARBAGE_ON_READS = [
    "not json", "{\"id\": 1,", "[]", "null", "\"text\"", '{"id": 1}',
    '{"id": 1, "enabled": "yes"}', '{"id": 1, "enabled": null}', '{"id": "1", "enabled": true}',
    '{"id": 1, "enabled": true, "ip": 17}', "<html><body>Login</body></html>",
    '{"results": "none", "next": null}', '{"results": [], "next": 5}',
]


@pytest.mark.parametrize("body", GARBAGE_ON_READS)
def test_garbage_on_reads_is_one_clean_error(server: StandInServer, config: Config,
                                             body: str) -> None:
    server.inject(Fault(method="GET", status=200, body=body))
    with pytest.raises(bondha.BadResponse) as info:
        bondha.reconcile(with_ha(config, deadline=10), Role.BACKUP)
    assert "\n" not in str(info.value)
    assert re.search(r"\bbond [13]\b", str(info.value))  # whichever read failed first
    assert patches(server) == 0


@pytest.mark.parametrize("body", [
    "not json", "[]", '{"id": 8}', '{"id": 8, "enabled": false, "network": "198.51.100.0/24"}',
    '{"id": 99, "enabled": true}'])
def test_garbage_answer_to_a_write_fails_that_write_cleanly(server: StandInServer,
                                                            config: Config, body: str) -> None:
    server.inject(Fault(method="PATCH", path=r"/routes/8/$", status=200, body=body))
    with pytest.raises(bondha.ApplyError) as info:
        bondha.reconcile(with_ha(config, deadline=10), Role.BACKUP)
    failure = info.value.result.failed
    assert [f.change.ref.id for f in failure] == [8]
    assert "route 8 on bond 3" in failure[0].reason
    assert "\n" not in failure[0].reason
    assert info.value.result.rounds == 1  # a garbled answer is not retried


def test_garbage_through_the_cli_is_no_traceback(server: StandInServer,
                                                 config_path: Path) -> None:
    server.inject(Fault(method="GET", status=200, body='[{"id": 1, "enabled": "maybe"}]'))
    out = bondha_cli("apply", "--active", "backup", config=config_path)
    assert out.returncode == 1
    assert "'enabled' is text, not true or false" in out.stderr
    assert "Traceback" not in out.stderr
