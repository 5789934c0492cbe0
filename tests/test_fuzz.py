"""Hostile input: config files, password files, notify arguments and every API response body.

The outcome must always be a clean :class:`BondhaError` or a correct result: never another
exception, a hang, or a write that was not in bondha's own plan. Budgets are small in the
normal suite (see tests/fuzzing.py; ``BONDHA_FUZZ_SCALE`` runs more).

FIFO lines: the notify_fifo reader is being written on another branch; until it lands, the
lines are fuzzed through the parser that exists (``parse_notify_args`` on the split line).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bondha.cli import main
from bondha.config import Config, load_config
from bondha.config.secrets import SecretFileError, read_secret_file
from bondha.errors import ApplyError, BondhaError, ConfigError, UsageError
from bondha.keepalived.events import parse_notify_args, role_for
from bondha.model import Kind, Role
from bondha.reconciler import reconcile
from bondha.result import Result
from bondha.testing import Fault, StandInServer, example_fixture
from tests.conftest import write_config
from tests.fuzzing import fuzz

SENTINEL = "Sentinel-Pa55word-7f3a"
T = TypeVar("T")


def outcome(function: Callable[..., T], *args: Any, **kwargs: Any) -> T | Exception:
    """The result, or the clean error; any other exception fails the test."""
    try:
        return function(*args, **kwargs)
    except (BondhaError, SecretFileError) as error:
        return error

# --- config and password files -----------------------------------------------------------------

_OPTION_LINES = st.sampled_from([
    "[bondingadmin]", "[bond]", "[bondha]", "[DEFAULT]", "host = 127.0.0.1:1", "user = u",
    f"passwd = {SENTINEL}", "passwd_file = pw", "passwd_file = missing", "passwd_file = .",
    "passwd_file = /dev/null", "passwd_file =", "ca_bundle = pw", "ca_bundle = /dev/null",
    "ca_bundle =", "api_version = 4", "api_version = 2", "api_version = v3",
    "verify_ssl = false", "allow_readable_secrets = yes", "allow_readable_secrets = 2",
    "master_bond_id = 1", "backup_bond_id = 2", "master_route_ids = 1", "backup_route_ids = 2",
    "pool_size = 0", "deadline = inf", "timeout = 1e400", "  continued",
])
_config_texts = st.lists(_OPTION_LINES | st.text(max_size=25), max_size=20).map("\n".join)
_password_bytes = st.binary(max_size=40) | st.sampled_from(
    [SENTINEL.encode(), SENTINEL.encode() + b"\n", b"\xef\xbb\xbf" + SENTINEL.encode(),
     SENTINEL.encode() + b"\r\n\r\n", b"a\nb", b"\n", b"", b"x" * 5000])
_environments = st.fixed_dictionaries({}, optional={
    "BONDHA_PASSWORD": st.sampled_from(["", SENTINEL]) | st.text(max_size=8),
    "CREDENTIALS_DIRECTORY": st.just("creds"),
})


@fuzz(200)
@given(_config_texts, _password_bytes, _environments)
def test_config_files_give_a_config_or_a_config_error(text: str, password: bytes,
                                                      environ: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "pw").write_bytes(password)
        (base / "creds").mkdir()
        (base / "creds" / "bondha-password").write_bytes(password)
        if "CREDENTIALS_DIRECTORY" in environ:
            environ = {**environ, "CREDENTIALS_DIRECTORY": str(base / "creds")}
        path = write_config(base / "c.conf", text)
        config = outcome(load_config, path, environ=environ)
    if isinstance(config, Exception):
        assert isinstance(config, ConfigError)
        assert config.problems
        assert all("\n" not in problem for problem in config.problems)
        assert SENTINEL not in str(config)
        return
    assert config.api.password.value  # never an empty password
    assert SENTINEL not in repr(config)
    assert all(SENTINEL not in warning for warning in config.warnings)


@fuzz(200)
@given(_password_bytes)
def test_password_files_give_one_line_or_a_clean_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pw"
        path.write_bytes(content)
        password = outcome(read_secret_file, path)
    if isinstance(password, Exception):
        assert isinstance(password, SecretFileError)
        shown = content.decode("utf-8", "replace").strip("\r\n\ufeff")
        assert not shown.strip() or shown not in str(password)
        return
    assert password
    assert "\n" not in password
    assert "\r" not in password
    assert password.encode() in content


# --- notify arguments and FIFO lines -----------------------------------------------------------

_words = st.sampled_from(["INSTANCE", "GROUP", "VI_1", '"VI_1"', "MASTER", "master", " BACKUP",
                          "FAULT", "STOP", "DELETED", "10", "9", "0", "255", "256", "-1", "010",
                          "+10", "1e1", "²", "\u0661\u0660", "10\x00", ""]) | st.text(max_size=10)


_states = st.sampled_from(["MASTER", "master", " BACKUP", "FAULT", "STOP"]) | _words
_priorities = st.sampled_from(["10", "9", "0", "255", "256", "-1", "010", "+10", " 10", "1e1",
                               "²", "\u0661\u0660", "10\x00", "0x0a"]) | st.text(max_size=4)
_four = st.tuples(_words, _words, _states, _priorities).map(list)


@fuzz(300)
@given(st.lists(_words, max_size=6) | _four)
@example(["INSTANCE", "VI_1", "MASTER", "²"])  # str.isdigit() but not int(): was a traceback
def test_notify_arguments_give_an_event_or_a_usage_error(args: list[str]) -> None:
    event = outcome(parse_notify_args, args)
    if isinstance(event, Exception):
        assert isinstance(event, UsageError)
        return
    assert 0 <= event.priority <= 255
    assert role_for(event) in (None, Role.MASTER, Role.BACKUP)


@fuzz(300)
@given(st.lists(_words, max_size=6).map(" ".join) | st.text(max_size=40))
def test_fifo_lines_through_the_existing_parser(line: str) -> None:
    try:
        event = parse_notify_args(line.split())
    except UsageError:
        return
    assert event.state.value in line.upper()


# --- the API, through the stand-in server ------------------------------------------------------

FIXTURE = example_fixture()


@pytest.fixture(scope="module")
def standin() -> Iterator[StandInServer]:
    with StandInServer(FIXTURE) as server:
        yield server


@pytest.fixture(scope="module")
def fuzz_config(standin: StandInServer, tmp_path_factory: pytest.TempPathFactory) -> Config:
    text = FIXTURE.config_text(standin.url, attempts=2, attempt_delay=0, timeout=1)
    text += "[bondha]\ndeadline = 1.5\n"
    return load_config(write_config(tmp_path_factory.mktemp("fuzz") / "c.conf", text))


def restore(server: StandInServer) -> None:
    """Back to the fixture's state, no faults, statistics from zero."""
    server.clear_faults()
    for record in FIXTURE.objects:
        server.set_enabled(record.bond_id, record.kind, record.id, record.enabled)
    server.reset_stats()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


@st.composite
def _object_bodies(draw: st.DrawFn) -> Any:
    """A plausible object with some fields broken: the server's own shape, lying or wrong."""
    record = draw(st.sampled_from(FIXTURE.objects))
    body: dict[str, Any] = {"id": record.id, **record.api_fields()}
    for key in draw(st.lists(st.sampled_from(["id", "enabled", "ip", "network", "url"]),
                             max_size=3)):
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(_json | st.sampled_from([True, False, 1, "1", "true", 2**70]))
    return body


@st.composite
def _pages(draw: st.DrawFn) -> Any:
    """A paginated list with hostile links."""
    nxt = draw(st.none() | _json | st.sampled_from([
        "?page=2", "/api/v3/bonds/1/routes/", "//evil.example/x", "http://[::1", "javascript:x",
        "http://127.0.0.1:1/api/v3/", "http://127.0.0.1:99999/", "\x00", "%zz", "h" * 3000]))
    items = draw(st.lists(_object_bodies() | _json, max_size=3))
    return {"count": draw(_json), "next": nxt, "results": draw(st.sampled_from([items, None]))}


_bodies = st.one_of(
    st.binary(max_size=100),
    _json.map(json.dumps),
    _object_bodies().map(json.dumps),
    st.lists(_object_bodies(), max_size=4).map(json.dumps),
    _pages().map(json.dumps),
    st.sampled_from(["", "<html>502 Bad Gateway</html>", "{", "[]", "null", "1e999",
                     '{"detail": null}', '{"enabled": ["x"]}', "\ufeff{}"]),
)
_headers = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(["application/json", "text/html", "text/plain",
                                     "application/json; charset=latin-1", "", "\x7f"]),
    "Retry-After": st.sampled_from(["0", "-1", "nan", "inf", "1e309", "0.01", "soon",
                                    "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 0:0:0 GMT"]),
    "Location": st.sampled_from(["/api/v3/", "http://evil.example/", ""]),
    "Allow": st.sampled_from(["GET", "", "PATCH,PATCH"]),
})
_faults = st.builds(
    Fault,
    method=st.sampled_from(["GET", "PATCH", None]),
    path=st.sampled_from([r"/connected_ips/1/$", r"/routes/8/$", r"/routes/$",
                          r"/cpe_nat_ips/", ".*"]),
    status=st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500,
                            503]),
    body=_bodies,
    headers=_headers,
    count=st.none() | st.integers(1, 3),
    skip=st.integers(0, 2),
)


def _writes_within_plan(server: StandInServer, result: Result | None) -> None:
    writes = server.stats().writes
    if result is None:
        assert writes == (), "an error before the plan, but writes were made"
        return
    planned = {(change.ref, change.enabled) for change in result.plan.changes}
    for write in writes:
        assert write.method == "PATCH"
        assert set(write.body) == {"enabled"}
        assert (write.ref, write.body["enabled"]) in planned, f"unplanned write {write}"


@fuzz(60)
@given(faults=st.lists(_faults, min_size=1, max_size=3), role=st.sampled_from(Role))
def test_any_api_answer_gives_a_clean_error_or_a_correct_result(
        standin: StandInServer, fuzz_config: Config, faults: list[Fault], role: Role) -> None:
    restore(standin)
    for fault in faults:
        standin.inject(fault)
    answer = outcome(reconcile, fuzz_config, role)
    result: Result | None
    if isinstance(answer, Exception):
        assert isinstance(answer, BondhaError)
        assert "\n" not in str(answer)
        result = answer.result if isinstance(answer, ApplyError) else None
    else:
        result = answer
    _writes_within_plan(standin, result)
    if result is not None and result.converged:
        standin.clear_faults()  # "converged" must be true of the server, not of the lies
        wanted = {record.id: record for record in FIXTURE.objects}
        for change in result.plan.changes:
            assert standin.get_object(change.ref.bond_id, change.ref.kind,
                                      change.ref.id)["enabled"] is change.enabled
        assert set(wanted) >= {c.ref.id for c in result.plan.changes}


@fuzz(25)
@given(faults=st.lists(_faults, min_size=1, max_size=2),
       args=_four | st.just(["INSTANCE", "VI_1", "MASTER", "9"]))
def test_notify_against_hostile_answers_exits_cleanly(
        standin: StandInServer, fuzz_config: Config, faults: list[Fault],
        args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    restore(standin)
    for fault in faults:
        standin.inject(fault)
    assert fuzz_config.source is not None
    capsys.readouterr()
    code = main(["-q", "--config", str(fuzz_config.source), "notify", *args])
    assert code in (0, 1, 2, 3)
    assert "internal error" not in capsys.readouterr().err
    try:
        acting = role_for(parse_notify_args(args)) is not None
    except UsageError:
        acting = False
    if not acting:
        assert standin.stats().writes == ()


def test_routes_fixture_has_what_the_fuzzers_target() -> None:
    """The fault paths above name objects of the example fixture; keep them in step."""
    ids = {(record.kind, record.id) for record in FIXTURE.objects}
    assert {(Kind.CONNECTED_IP, 1), (Kind.ROUTE, 8)} <= ids
