"""Password sources, their precedence, and the refusal of password files others can read."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from bondha.config import load_config
from bondha.config.secrets import guard_secret_files, secret_file_problems
from bondha.errors import ConfigError
from bondha.testing import StandInServer
from bondha.testing.fixtures import EXAMPLE_PASSWORD, Fixture
from tests.conftest import HOOK, bondha, run, write_config

FILE_PW = "from-the-file"
ENV_PW = "from-the-environment"
CRED_PW = "from-systemd"


def without_passwd(fixture: Fixture, server: StandInServer, **options: Any) -> str:
    text = fixture.config_text(server.url, attempt_delay=0.01, **options)
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith("passwd ="))


def secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, object]:
    """Every source set at once, each with a different password."""
    creds = tmp_path / "creds"
    creds.mkdir()
    secret(creds / "bondha-password", CRED_PW)
    secret(tmp_path / "password", FILE_PW + "\n")
    return {"credential": str(creds), "env": ENV_PW}


@pytest.mark.parametrize(("present", "expected", "source"), [
    ({"credential", "env", "file", "passwd"}, CRED_PW, "credential"),
    ({"env", "file", "passwd"}, ENV_PW, "BONDHA_PASSWORD"),
    ({"file", "passwd"}, FILE_PW, "passwd_file"),
    ({"passwd"}, "in-the-config", "passwd"),
])
def test_precedence(tmp_path: Path, sources: dict[str, object], present: set[str],
                    expected: str, source: str) -> None:
    lines = ["[bondingadmin]", "host = bonding.example.net", "user = u"]
    if "passwd" in present:
        lines.append("passwd = in-the-config")
    if "file" in present:
        lines.append("passwd_file = password")  # relative: next to the config file
    lines += ["[bond]", "master_bond_id = 1", "backup_bond_id = 2", "master_route_ids = 1",
              "backup_route_ids = 2"]
    environ = {}
    if "credential" in present:
        environ["CREDENTIALS_DIRECTORY"] = str(sources["credential"])
    if "env" in present:
        environ["BONDHA_PASSWORD"] = str(sources["env"])
    config = load_config(write_config(tmp_path / "c.conf", "\n".join(lines) + "\n"),
                         environ=environ)
    assert config.api.password.value == expected
    assert config.api.password_source == source
    if "passwd" in present and source != "passwd":
        assert any("passwd: not used" in w and "remove it from the file" in w
                   for w in config.warnings)
    # The config file holds a secret whenever passwd is in it, used or not.
    assert (tmp_path / "c.conf" in config.secret_files) == ("passwd" in present)
    assert (tmp_path / "password" in config.secret_files) == (source == "passwd_file")


def test_credentials_directory_without_our_credential_falls_through(tmp_path: Path) -> None:
    text = ("[bondingadmin]\nhost = h\nuser = u\npasswd = p\n[bond]\nmaster_bond_id = 1\n"
            "backup_bond_id = 2\nmaster_route_ids = 1\nbackup_route_ids = 2\n")
    config = load_config(write_config(tmp_path / "c.conf", text),
                         environ={"CREDENTIALS_DIRECTORY": str(tmp_path), "BONDHA_PASSWORD": ""})
    assert config.api.password.value == "p"
    assert any("$BONDHA_PASSWORD: is set but empty" in w for w in config.warnings)


def test_no_source_names_them_all(tmp_path: Path) -> None:
    text = ("[bondingadmin]\nhost = h\nuser = u\n[bond]\nmaster_bond_id = 1\n"
            "backup_bond_id = 2\nmaster_route_ids = 1\nbackup_route_ids = 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.conf", text), environ={})
    (problem,) = info.value.problems
    assert "passwd_file" in problem
    assert "BONDHA_PASSWORD" in problem
    assert "bondha-password" in problem


@pytest.mark.parametrize(("content", "why"), [
    (None, "file not found"),
    ("", "is empty"),
    ("\n", "is empty"),
    ("two\nlines\n", "more than one line"),
    (b"\xff\xfe-not-utf8", "not UTF-8"),
    ("x" * 5000, "not a password file"),
    ("fifo", "not a regular file"),
    ("dir", "not a regular file"),
])
def test_bad_passwd_file_is_one_error_naming_it(tmp_path: Path, content: str | bytes | None,
                                                why: str) -> None:
    path = tmp_path / "password"
    if content == "fifo":
        os.mkfifo(path)  # reading it would block forever: must be refused, not read
    elif content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    text = (f"[bondingadmin]\nhost = h\nuser = u\npasswd_file = {path}\n[bond]\n"
            "master_bond_id = 1\nbackup_bond_id = 2\nmaster_route_ids = 1\nbackup_route_ids = 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.conf", text), environ={})
    (problem,) = info.value.problems
    assert f"[bondingadmin] passwd_file = '{path}'" in problem
    assert why in problem
    assert "lines" not in problem.replace("more than one line", "")


@pytest.mark.parametrize(("mode", "who"), [
    (0o644, "readable by group and others (mode 0644)"),
    (0o640, "readable by group (mode 0640)"),
    (0o604, "readable by others (mode 0604)"),
    (0o660, "readable and writable by group (mode 0660)"),
])
def test_loose_modes_are_named_with_the_exact_chmod(tmp_path: Path, mode: int, who: str) -> None:
    path = secret(tmp_path / "my password", "pw", mode)
    text = (f"[bondingadmin]\nhost = h\nuser = u\npasswd_file = {path}\n[bond]\n"
            "master_bond_id = 1\nbackup_bond_id = 2\nmaster_route_ids = 1\nbackup_route_ids = 2\n")
    config = load_config(write_config(tmp_path / "c.conf", text), environ={})
    (problem,) = secret_file_problems(config.secret_files)
    assert problem == (f"{path}: holds the password but is {who}; fix it with: "
                       f"chmod 600 '{path}'")
    with pytest.raises(ConfigError) as info:
        guard_secret_files(config.secret_files, refuse=True)
    assert "allow_readable_secrets = true" in str(info.value)
    path.chmod(0o600)
    assert secret_file_problems(config.secret_files) == []


def test_guard_for_a_daemon_logs_at_error_and_goes_on(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = write_config(tmp_path / "c.conf", "[bondingadmin]\nhost = h\nuser = u\npasswd = p\n"
                        "[bond]\nmaster_bond_id = 1\nbackup_bond_id = 2\nmaster_route_ids = 1\n"
                        "backup_route_ids = 2\n")
    path.chmod(0o644)
    config = load_config(path, environ={})
    logger = logging.getLogger("bondha")
    logger.addHandler(caplog.handler)
    propagate, logger.propagate = logger.propagate, False  # one record, however set up
    try:
        problems = guard_secret_files(config.secret_files, refuse=False)
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = propagate
    assert len(problems) == 1
    assert [(r.levelno, f"chmod 600 {path}" in r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, True)]


@pytest.mark.parametrize("command", [("check",), ("plan", "--active", "backup"),
                                     ("apply", "--active", "backup")])
@pytest.mark.parametrize("loose", ["config", "passwd_file"])
def test_hand_run_commands_refuse_a_readable_password_file(
        server: StandInServer, fixture: Fixture, tmp_path: Path, command: tuple[str, ...],
        loose: str) -> None:
    if loose == "config":
        path = write_config(tmp_path / "c.conf", fixture.config_text(server.url))
        culprit = path
    else:
        culprit = secret(tmp_path / "password", EXAMPLE_PASSWORD, 0o644)
        path = write_config(tmp_path / "c.conf",
                            without_passwd(fixture, server, passwd_file=culprit))
    culprit.chmod(0o644)
    out = bondha(*command, config=path)
    assert out.returncode == 2
    assert f"{culprit}: holds the password but is readable by group and others" in out.stderr
    assert f"chmod 600 {culprit}" in out.stderr
    assert server.stats().requests == 0  # refused before anything was read


def test_opt_out_runs_with_a_warning(server: StandInServer, fixture: Fixture,
                                     tmp_path: Path) -> None:
    text = fixture.config_text(server.url) + "[bondha]\nallow_readable_secrets = true\n"
    path = write_config(tmp_path / "c.conf", text)
    path.chmod(0o640)
    out = bondha("check", config=path)
    assert out.returncode == 0, out.stderr
    assert "WARNING" in out.stderr
    assert "allowed by [bondha] allow_readable_secrets = true" in out.stderr


@pytest.mark.parametrize("via", ["hook", "notify", "status"])
def test_outage_commands_log_the_mode_and_proceed(server: StandInServer, config_path: Path,
                                                  via: str) -> None:
    config_path.chmod(0o644)
    args = ("INSTANCE", "VI_1", "MASTER", "9")
    if via == "hook":
        out = run(str(HOOK), *args, config=config_path)
    else:
        out = bondha(*(("notify", *args) if via == "notify" else ("status",)), config=config_path)
    assert out.returncode == 0, out.stderr
    assert "ERROR" in out.stderr
    assert f"chmod 600 {config_path}" in out.stderr
    if via != "status":
        assert server.get_object(3, "routes", 8)["enabled"] is True  # the failover happened


@pytest.mark.parametrize("source", ["env", "credential", "passwd_file"])
def test_cli_with_each_source(server: StandInServer, fixture: Fixture, tmp_path: Path,
                              source: str) -> None:
    env: dict[str, str] = {}
    options: dict[str, Any] = {}
    if source == "env":
        env["BONDHA_PASSWORD"] = EXAMPLE_PASSWORD
    elif source == "credential":
        secret(tmp_path / "bondha-password", EXAMPLE_PASSWORD, 0o400)
        env["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    else:
        options["passwd_file"] = secret(tmp_path / "pw", EXAMPLE_PASSWORD + "\n")
    path = write_config(tmp_path / "c.conf", without_passwd(fixture, server, **options))
    path.chmod(0o644)  # no secret in it: readable is fine
    out = bondha("--json", "check", config=path, env=env)
    assert out.returncode == 0, out.stderr
    assert '"password_source"' in out.stdout
    assert "ERROR" not in out.stderr
