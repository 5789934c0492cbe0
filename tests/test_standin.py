"""The stand-in management server: DRF-like answers, timeline, faults, statistics, process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from bondha.model import Kind, ObjectRef
from bondha.testing import (
    Fault,
    Fixture,
    StandInServer,
    User,
    example_fixture,
    pair_fixture,
)
from bondha.testing.faults import FaultInjector
from bondha.testing.fixtures import EXAMPLE_PASSWORD, EXAMPLE_USER
from bondha.testing.timeline import AddressTimeline

ROOT = Path(__file__).resolve().parent.parent
CONN, ROUTE, NAT = Kind.CONNECTED_IP, Kind.ROUTE, Kind.CPE_NAT_IP
VIEWER = User("viewer@example.net", "viewer pw", can_write=False)
SPACE_USER = User("space@example.net", "space pw", bonds={1, 3})


def path(bond: int, kind: Kind, object_id: int | None = None, version: int = 3) -> str:
    tail = "" if object_id is None else f"{object_id}/"
    return f"/api/v{version}/bonds/{bond}/{kind.value}/{tail}"


@pytest.fixture
def fixture() -> Fixture:
    example = example_fixture()
    return attrs.evolve(example, users=(*example.users, VIEWER, SPACE_USER))


@pytest.fixture
def client(server: StandInServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=(EXAMPLE_USER, EXAMPLE_PASSWORD)) as http:
        yield http


def as_user(server: StandInServer, user: User) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(user.email, user.password))


# -- objects and lists ----------------------------------------------------------------------


def test_get_object_has_url_address_and_extra_fields(
    server: StandInServer, client: httpx.Client
) -> None:
    body = client.get(path(1, CONN, 1)).json()
    assert body == {
        "id": 1,
        "url": f"{server.url}/api/v3/bonds/1/connected_ips/1/",
        "enabled": True,
        "ip": "203.0.113.1/30",
        "interface": "eth1",
        "include_private_wan": False,
        "comment": "",
        "nat": False,
    }
    route = client.get(path(3, ROUTE, 8)).json()
    assert route["network"] == "198.51.100.0/24"
    assert (route["gateway"], route["interface"], route["include_private_wan"]) == (
        "203.0.113.2", "Auto", False)
    assert server.get_object(3, "cpe_nat_ips", 11)["enabled"] is False


def test_bare_list_is_sorted_by_id(client: httpx.Client) -> None:
    response = client.get(path(3, CONN))
    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [4, 5]


def test_paginated_list_follows_next_and_rejects_pages_out_of_range() -> None:
    with StandInServer(pair_fixture(5), page_size=2) as server, as_user(
        server, User(EXAMPLE_USER, EXAMPLE_PASSWORD)
    ) as http:
        first = http.get(path(1, ROUTE)).json()
        assert (first["count"], first["previous"]) == (5, None)
        pages, url = [first], first["next"]
        while url:
            pages.append(http.get(url).json())
            url = pages[-1]["next"]
        ids = [item["id"] for page in pages for item in page["results"]]
        assert ids == [6, 7, 8, 9, 10]
        assert pages[1]["previous"] == f"{server.url}{path(1, ROUTE)}"
        assert pages[2]["previous"] == f"{server.url}{path(1, ROUTE)}?page=2"
        for page in ("4", "0", "x"):
            response = http.get(path(1, ROUTE), params={"page": page})
            assert (response.status_code, response.json()) == (404, {"detail": "Invalid page."})


def test_v4_paths_answer_with_v4_urls(server: StandInServer, client: httpx.Client) -> None:
    assert client.get(path(1, NAT, 10, version=4)).json()["url"].endswith(
        "/api/v4/bonds/1/cpe_nat_ips/10/"
    )
    with StandInServer(api_versions=(3,)) as v3_only, as_user(v3_only, VIEWER) as http:
        assert http.get(path(1, NAT, 10, version=4)).status_code == 404


# -- auth and permissions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (None, "Authentication credentials were not provided."),
        ((EXAMPLE_USER, "wrong"), "Invalid username/password."),
        (("nobody@example.net", EXAMPLE_PASSWORD), "Invalid username/password."),
    ],
)
def test_bad_credentials_get_401_with_a_challenge(
    server: StandInServer, auth: tuple[str, str] | None, message: str
) -> None:
    response = httpx.get(server.url + path(1, CONN, 1), auth=auth)
    assert (response.status_code, response.json()) == (401, {"detail": message})
    assert response.headers["WWW-Authenticate"] == 'Basic realm="api"'


def test_username_login_still_works(server: StandInServer) -> None:
    response = httpx.get(server.url + path(1, CONN, 1), auth=("ha", EXAMPLE_PASSWORD))
    assert response.status_code == 200


def test_user_outside_the_bonds_space_gets_403(server: StandInServer) -> None:
    forbidden = {"detail": "You do not have permission to perform this action."}
    with as_user(server, SPACE_USER) as http:
        assert http.get(path(1, CONN, 1)).status_code == 200
        response = http.get(path(5, CONN, 3))
        assert (response.status_code, response.json()) == (403, forbidden)


def test_read_only_user_may_read_but_not_patch(server: StandInServer) -> None:
    with as_user(server, VIEWER) as http:
        assert http.get(path(1, CONN, 1)).status_code == 200
        response = http.patch(path(1, CONN, 1), json={"enabled": False})
        assert response.status_code == 403
        options = http.options(path(1, CONN, 1))
    assert options.headers["Allow"] == "GET, OPTIONS"
    assert "actions" not in options.json()
    assert server.get_object(1, CONN, 1)["enabled"] is True
    assert server.stats().writes == ()


def test_options_lists_writable_fields_for_a_writer(client: httpx.Client) -> None:
    response = client.options(path(1, ROUTE, 7))
    body = response.json()
    assert response.headers["Allow"] == "GET, PATCH, PUT, OPTIONS"
    assert body["name"] == "Route Detail"
    assert body["parses"] == ["application/json"]
    assert body["actions"]["PUT"]["enabled"]["read_only"] is False
    assert body["actions"]["PUT"]["network"]["read_only"] is True
    assert body["actions"]["PUT"]["gateway"]["read_only"] is True
    assert body["actions"]["PUT"]["interface"]["type"] == "string"


# -- not found and not allowed -------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        path(9, CONN, 1),  # unknown bond
        path(1, CONN, 999),  # unknown id
        path(3, CONN, 1),  # the id belongs to the master bond
        path(1, ROUTE, 1),  # the id is a connected IP, not a route
        path(9, CONN),
    ],
)
def test_unknown_or_foreign_objects_are_json_404(client: httpx.Client, target: str) -> None:
    response = client.get(target)
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


@pytest.mark.parametrize(
    "target", ["/api/v3/bonds/1/connected_ips/1", "/api/v2/bonds/1/routes/7/", "/nope/"]
)
def test_unknown_urls_are_djangos_html_404(client: httpx.Client, target: str) -> None:
    response = client.get(target)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>Not Found</h1>" in response.text


def test_other_methods_are_405(client: httpx.Client) -> None:
    response = client.delete(path(1, CONN, 1))
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert client.patch(path(1, CONN), json={"enabled": True}).status_code == 405


# -- writes -------------------------------------------------------------------------------


def test_patch_returns_the_whole_object_and_is_recorded(
    server: StandInServer, client: httpx.Client
) -> None:
    response = client.patch(path(3, ROUTE, 8), json={"enabled": True, "id": 99, "network": "x"})
    assert response.status_code == 200
    assert response.json()["id"] == 8  # read-only fields are ignored
    assert response.json()["network"] == "198.51.100.0/24"
    assert server.get_object(3, ROUTE, 8)["enabled"] is True
    (write,) = server.stats().writes
    assert (write.method, write.ref) == ("PATCH", ObjectRef(3, ROUTE, 8))
    assert write.body["enabled"] is True


NOT_BOOLEAN = {"enabled": ["Must be a valid boolean."]}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "expected"),
    [
        (b'{"enabled": "true"}', "application/json", 400, NOT_BOOLEAN),
        (b'{"enabled": 1}', "application/json", 400, NOT_BOOLEAN),
        (b'{"enabled": null}', "application/json", 400, {
            "enabled": ["This field may not be null."]
        }),
        (b"[]", "application/json", 400, {
            "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
        }),
        (b"enabled=true", "text/plain", 415, {
            "detail": 'Unsupported media type "text/plain" in request.'
        }),
    ],
)
def test_bad_write_bodies_are_refused(
    server: StandInServer,
    client: httpx.Client,
    body: bytes,
    content_type: str,
    status: int,
    expected: dict[str, Any],
) -> None:
    response = client.patch(path(1, CONN, 1), content=body, headers={"Content-Type": content_type})
    assert (response.status_code, response.json()) == (status, expected)
    assert server.stats().writes == ()


def test_unparsable_json_is_a_parse_error(client: httpx.Client) -> None:
    json_type = {"Content-Type": "application/json"}
    response = client.put(path(1, CONN, 1), content=b"{", headers=json_type)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error - ")


# -- the address timeline ---------------------------------------------------------------------


def test_timeline_counts_seconds_and_moments_exactly() -> None:
    key = (CONN, "203.0.113.1/30")
    timeline = AddressTimeline({key: 1}, now=100.0)
    timeline.observe(key, 2, now=101.0)  # overlap for 0.5 s
    timeline.observe(key, 1, now=101.5)
    timeline.observe(key, 0, now=103.0)  # dark, still open at the report
    report = timeline.report(now=103.25)
    assert (report.overlap_seconds, report.overlap_moments) == (0.5, 1)
    assert (report.dark_seconds, report.dark_moments) == (0.25, 1)
    timeline.reset(now=104.0)  # the open dark interval counts as one moment from here
    after = timeline.report(now=105.0)
    assert (after.dark_seconds, after.dark_moments, after.overlap_moments) == (1.0, 1, 0)


def test_server_measures_overlap_and_dark_time_of_floating_addresses(
    server: StandInServer, client: httpx.Client
) -> None:
    client.patch(path(3, CONN, 4), json={"enabled": True})  # both bonds: overlap
    time.sleep(0.1)
    client.patch(path(1, CONN, 1), json={"enabled": False})
    server.set_enabled(3, CONN, 4, False)  # neither bond: dark
    time.sleep(0.1)
    server.set_enabled(1, CONN, 1, True)
    server.set_enabled(1, CONN, 2, False)  # the private link is not floating
    report = server.address_report()
    (figures,) = (a for a in report.addresses if a.kind is CONN)
    assert figures.address == "203.0.113.1/30"
    assert (figures.overlap_moments, figures.dark_moments) == (1, 1)
    assert 0.1 <= figures.overlap_seconds < 1.0
    assert 0.1 <= figures.dark_seconds < 1.0
    assert report.overlap_seconds == figures.overlap_seconds  # routes and CPE NAT IPs untouched
    assert len(report.addresses) == 3
    assert len(server.stats().writes) == 2  # set_enabled is not an API write
    server.reset_stats()
    assert server.address_report().overlap_moments == 0


# -- faults ---------------------------------------------------------------------------------


def test_status_fault_answers_html_with_retry_after_once(
    server: StandInServer, client: httpx.Client
) -> None:
    fault = Fault(
        method="patch", status=503, body="<html>busy</html>", headers={"Retry-After": "2"}, count=1
    )
    assert fault.method == "PATCH"
    server.inject(fault)
    assert client.get(path(1, CONN, 1)).status_code == 200  # GET does not match
    busy = client.patch(path(1, CONN, 1), json={"enabled": True})
    assert (busy.status_code, busy.headers["Retry-After"]) == (503, "2")
    assert busy.text == "<html>busy</html>"
    assert busy.headers["Content-Type"].startswith("text/html")
    assert client.patch(path(1, CONN, 1), json={"enabled": True}).status_code == 200


def test_garbage_body_fault(server: StandInServer, client: httpx.Client) -> None:
    server.inject(Fault(path=r"/routes/", status=200, body="not json"))
    response = client.get(path(1, ROUTE, 7))
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert client.get(path(1, CONN, 1)).json()["id"] == 1


def test_drop_resets_the_connection(server: StandInServer, client: httpx.Client) -> None:
    server.inject(Fault(drop=True, count=1))
    with pytest.raises(httpx.TransportError):
        client.get(path(1, CONN, 1))
    assert client.get(path(1, CONN, 1)).status_code == 200


def test_skip_and_count_pick_which_requests_fail(
    server: StandInServer, client: httpx.Client
) -> None:
    server.inject(Fault(path="/routes/", status=429, skip=1, count=2))
    statuses = [client.get(path(1, ROUTE, 7)).status_code for _ in range(4)]
    assert statuses == [200, 429, 429, 200]


def test_delay_fault_waits_then_serves(server: StandInServer, client: httpx.Client) -> None:
    server.inject(Fault(delay=0.2, count=1))
    started = time.monotonic()
    assert client.get(path(1, CONN, 1)).status_code == 200
    assert time.monotonic() - started >= 0.2
    server.clear_faults()


def test_rate_is_reproducible_with_a_seed() -> None:
    def pattern(seed: int) -> list[bool]:
        faults = FaultInjector(seed)
        faults.add(Fault(status=500, rate=0.5))
        return [faults.pick("GET", "/") is not None for _ in range(40)]

    assert pattern(7) == pattern(7)
    assert 0 < sum(pattern(7)) < 40


# -- statistics -----------------------------------------------------------------------------


def test_stats_count_requests_and_reused_connections(
    server: StandInServer, client: httpx.Client
) -> None:
    for _ in range(3):
        client.get(path(1, CONN, 1))
    client.patch(path(1, CONN, 1), json={"enabled": True})
    httpx.get(server.url + "/_standin/stats")  # control requests are not counted
    with as_user(server, VIEWER) as other:
        other.get(path(1, CONN, 1))
    stats = server.stats()
    assert (stats.requests, dict(stats.requests_by_method)) == (5, {"GET": 4, "PATCH": 1})
    assert stats.connections == 2
    server.reset_stats()
    assert (server.stats().requests, server.stats().connections) == (0, 0)


def test_concurrent_writes_are_all_served(server: StandInServer, client: httpx.Client) -> None:
    def toggle(index: int) -> None:
        response = client.patch(path(3, CONN, 4), json={"enabled": index % 2 == 0})
        assert response.status_code == 200

    threads = [threading.Thread(target=toggle, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = server.stats()
    assert len(stats.writes) == 40
    assert [w.at for w in stats.writes] == sorted(w.at for w in stats.writes)
    assert stats.connections <= 40


def test_stop_closes_idle_keep_alive_connections(
    server: StandInServer, client: httpx.Client
) -> None:
    assert client.get(path(1, CONN, 1)).status_code == 200
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(httpx.TransportError):
        client.get(path(1, CONN, 1))


# -- control endpoints ----------------------------------------------------------------------


def test_control_endpoints_steer_the_server(server: StandInServer) -> None:
    with httpx.Client(base_url=server.url + "/_standin") as control:
        enabled = control.post("/objects/3/connected_ips/4", json={"enabled": True})
        assert enabled.json()["enabled"] is True
        assert control.post("/objects/1/connected_ips/4", json={"enabled": True}).status_code == 404
        assert control.post("/objects/3/connected_ips/4", json={"enabled": "x"}).status_code == 400
        objects = {item["id"]: item for item in control.get("/objects").json()}
        assert (objects[4]["bond_id"], objects[4]["enabled"]) == (3, True)
        assert control.post("/faults", json={"status": 502, "count": 1}).status_code == 201
        assert control.post("/faults", json={"bogus": 1}).status_code == 400
        assert httpx.get(server.url + path(1, CONN, 1)).status_code == 502
        stats = control.get("/stats").json()
        assert stats["requests"] == 1
        assert stats["address_report"]["overlap_moments"] == 1
        assert control.delete("/faults").status_code == 200
        assert control.post("/reset").status_code == 200
        assert control.get("/stats").json()["requests"] == 0


# -- fixtures -------------------------------------------------------------------------------


def test_example_config_names_the_floating_objects_only() -> None:
    text = example_fixture().config_text("http://127.0.0.1:8080", attempt_delay=0.05)
    assert "host = http://127.0.0.1:8080\n" in text
    assert "attempt_delay = 0.05\n" in text
    assert "verify_ssl = true\n" in text
    assert "master_connected_ip_ids = 1\n" in text
    assert "backup_connected_ip_ids = 4\n" in text
    assert "backup_cpe_nat_ip_ids = 11\n" in text


def test_pair_fixture_scales_and_round_trips_through_json(tmp_path: Path) -> None:
    fixture = pair_fixture(1000, active="backup")
    pair = fixture.pair()
    assert len(pair.master.route_ids) == len(pair.backup.cpe_nat_ip_ids) == 1000
    assert len({o.address_key for o in fixture.objects}) == 3000
    assert all(o.enabled == (o.bond_id == 2) for o in fixture.objects)
    fixture.dump(tmp_path / "pair.json")
    assert Fixture.load(tmp_path / "pair.json") == fixture
    assert "master_route_ids = 1001, 1002," in fixture.config_text("http://x")


def test_duplicate_ids_are_refused() -> None:
    example = example_fixture()
    with pytest.raises(ValueError, match="unique"):
        Fixture((*example.objects, example.objects[0]), example.users)


# -- TLS and the separate process -----------------------------------------------------------


def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    with StandInServer(ssl_context=tls) as server:
        assert server.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=trust, auth=(EXAMPLE_USER, EXAMPLE_PASSWORD)) as http:
            assert http.get(server.url + path(1, CONN, 1)).json()["url"].startswith("https://")
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + path(1, CONN, 1))  # the default trust store refuses it


def test_runs_as_a_process_until_sigterm(tmp_path: Path) -> None:
    ready, config, stats = tmp_path / "url", tmp_path / "swap-active-bond.conf", tmp_path / "s.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "bondha.testing", "--ready-file", str(ready), "--write-config",
         str(config), "--config-option", "attempt_delay=0.05", "--stats-file", str(stats),
         "--strict-dependencies"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        url = ready.read_text().strip()
        response = httpx.get(url + path(1, CONN, 1), auth=(EXAMPLE_USER, EXAMPLE_PASSWORD))
        assert response.json()["ip"] == "203.0.113.1/30"
        # Route 7 goes through connected IP 1: strict, the server refuses to strand it.
        refused = httpx.patch(url + path(1, CONN, 1), json={"enabled": False},
                              auth=(EXAMPLE_USER, EXAMPLE_PASSWORD))
        assert refused.status_code == 400
        assert "route 7" in refused.json()["enabled"][0]
        assert config.stat().st_mode & 0o777 == 0o600
        assert f"host = {url}\n" in config.read_text()
        assert "attempt_delay = 0.05\n" in config.read_text()
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert out == f"listening on {url}\n"
    written = json.loads(stats.read_text())
    assert written["requests"] == 2
    assert (written["dependency_violations"], written["dependency_refusals"]) == (0, 1)
