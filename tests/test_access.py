"""bondha check's least-privilege report and API versions, against the stand-in; no writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from bondha.config import load_config
from bondha.errors import ConfigError
from bondha.rights import check_access
from bondha.testing import Fault, StandInServer, User, example_fixture
from tests.conftest import bondha, write_config

RESTRICTED = User("pair@example.net", "pw-pair", bonds={1, 3})
READ_ONLY = User("viewer@example.net", "pw-viewer", bonds={1, 3}, can_write=False)


@pytest.fixture
def fixture() -> Any:
    base = example_fixture()
    return attrs.evolve(base, users=(*base.users, RESTRICTED, READ_ONLY))


def config_for(tmp_path: Path, server: StandInServer, user: User | None = None,
               **options: Any) -> Path:
    account: dict[str, Any] = {} if user is None else {"user": user.email,
                                                      "password": user.password}
    text = server.fixture.config_text(server.url, attempt_delay=0.01, **account, **options)
    return write_config(tmp_path / "c.conf", text)


def check_json(path: Path) -> tuple[int, dict[str, Any], str]:
    out = bondha("--json", "check", config=path)
    return out.returncode, json.loads(out.stdout) if out.stdout else {}, out.stderr


def only_reads(server: StandInServer) -> None:
    stats = server.stats()
    assert stats.writes == ()
    assert set(stats.requests_by_method) <= {"GET", "OPTIONS"}


def test_full_account_passes_and_is_warned_about_other_bonds(server: StandInServer,
                                                             tmp_path: Path) -> None:
    code, data, stderr = check_json(config_for(tmp_path, server))
    assert code == 0, stderr
    access = data["access"]
    assert access["ok"] is True
    assert access["versions"] == [3, 4]
    assert all(o["can_write"] is True for o in access["objects"])
    assert len(access["objects"]) == 6
    assert access["other_bonds"] == [5]
    assert any("can see 1 bond besides the pair (5)" in w for w in access["warnings"])
    assert any("only a write would tell" in n for n in access["notes"])
    only_reads(server)


def test_restricted_account_has_nothing_to_warn_about(server: StandInServer,
                                                      tmp_path: Path) -> None:
    code, data, stderr = check_json(config_for(tmp_path, server, RESTRICTED))
    assert code == 0, stderr
    assert data["access"]["other_bonds"] == []
    assert data["access"]["warnings"] == []
    only_reads(server)


def test_read_only_account_fails_the_check_naming_each_object(server: StandInServer,
                                                              tmp_path: Path) -> None:
    out = bondha("check", config=config_for(tmp_path, server, READ_ONLY))
    assert out.returncode == 3
    assert "check FAILED: 6 objects cannot be changed" in out.stdout
    assert "may read but not change route 8 on bond 3" in out.stderr
    only_reads(server)


def test_rights_beyond_the_need_are_warned(server: StandInServer, tmp_path: Path) -> None:
    # A server that also lets the account delete objects and create routes.
    server.inject(Fault(method="OPTIONS", path=r"/[0-9]+/$", status=200,
                        body='{"name": "x", "renders": [], "actions": {"PUT": {}}}',
                        headers={"Allow": "GET, PUT, PATCH, DELETE, OPTIONS"}))
    server.inject(Fault(method="OPTIONS", path=r"/routes/$", status=200, body="{}",
                        headers={"Allow": "GET, POST, OPTIONS"}))
    code, data, _ = check_json(config_for(tmp_path, server, RESTRICTED))
    assert code == 0
    warnings = data["access"]["warnings"]
    assert any("allows DELETE on 6 configured objects" in w for w in warnings)
    assert any("may create routes on bond 1, routes on bond 3" in w for w in warnings)


def test_a_server_that_says_nothing_is_reported_as_unknown(server: StandInServer,
                                                           tmp_path: Path) -> None:
    server.inject(Fault(method="OPTIONS", status=405, body='{"detail": "no"}'))
    server.inject(Fault(method="GET", path=r"/bonds/$", status=404,
                        body="<html>Not Found</html>"))
    report = check_access(load_config(config_for(tmp_path, server, RESTRICTED)))
    assert report.ok
    assert {o.can_write for o in report.objects} == {None}
    assert report.other_bonds is None
    assert any("does not say whether the account may change 6" in w for w in report.warnings)
    assert any("does not list bonds" in n for n in report.notes)


@pytest.mark.parametrize("version", [3, 4])
def test_api_version_is_the_one_point_that_picks_the_paths(fixture: Any, tmp_path: Path,
                                                           version: int) -> None:
    with StandInServer(fixture, api_versions=(version,)) as only_one:
        path = config_for(tmp_path, only_one, api_version=version)
        out = bondha("apply", "--active", "backup", config=path)
        assert out.returncode == 0, out.stderr
        assert only_one.get_object(3, "routes", 8)["enabled"] is True
        code, data, stderr = check_json(path)
        assert code == 0, stderr
        assert data["access"]["versions"] == [version]
        assert data["access"]["api_version"] == version


def test_a_version_the_server_does_not_answer_is_named(fixture: Any, tmp_path: Path) -> None:
    with StandInServer(fixture, api_versions=(3,)) as v3_only:
        path = config_for(tmp_path, v3_only, api_version=4)
        out = bondha("check", config=path)
        assert out.returncode == 2
        assert "api_version = 4: the server does not answer API v4" in out.stderr
        assert "set api_version = 3" in out.stderr
        out = bondha("plan", "--active", "backup", config=path)
        assert out.returncode == 3
        assert "check host and api_version" in out.stderr
        with pytest.raises(ConfigError):
            check_access(load_config(path))


@pytest.mark.parametrize("value", ["5", "three", "3.0", "v"])
def test_bad_api_version_is_a_config_error(tmp_path: Path, value: str) -> None:
    text = example_fixture().config_text("https://h", api_version=value)
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.conf", text))
    (problem,) = info.value.problems
    assert f"[bondingadmin] api_version = '{value}': must be 3 or 4" in problem


def test_api_version_default_and_v_prefix(tmp_path: Path) -> None:
    fixture = example_fixture()
    assert load_config(write_config(tmp_path / "a.conf", fixture.config_text("https://h"))
                       ).api.api_root == "https://h/api/v3/"
    config = load_config(write_config(tmp_path / "b.conf",
                                      fixture.config_text("https://h", api_version="v4")))
    assert config.api.api_root == "https://h/api/v4/"
