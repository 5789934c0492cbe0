"""The swap-active-bond.conf format: what is accepted, what is refused, and how it is said."""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import bondha.config
from bondha.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    ApiSettings,
    Config,
    HaSettings,
    config_path,
    load_config,
    parse_config,
)
from bondha.errors import ConfigError
from bondha.model import BondSide, Kind, Pair, Role, Secret

SOURCE = Path("/etc/bonding/swap-active-bond.conf")
FILE = str(SOURCE)
SENTINEL = "Sentinel-Pa55word-7f3a"

# The example file the old script shipped (swap-active-bond.example.conf), verbatim.
OLD_EXAMPLE = """\
[bondingadmin]
host = bondingadmin.example.com
user = username or email
passwd = correct horse battery staple
#verify_ssl = true
#timeout = 10.0
#attempts = 3
#attempt_delay = 5.0

[bond]
# Set the object IDs on which to operate. Multiple connected IPs, routes, or CPE NAT IPs must
# be separated by commas, eg: 1, 2, 3
master_bond_id = 1
master_connected_ip_ids = 1
master_route_ids = 1
master_cpe_nat_ip_ids = 1
backup_bond_id = 2
backup_connected_ip_ids = 2
backup_route_ids = 2
backup_cpe_nat_ip_ids = 2

# You can omit routing objects that don't relate to a given bond by leaving the
# values blank, for example:
# master_cpe_nat_ip_ids =
# You can also remove those lines completely.
"""

# The how-to's [bond] example, verbatim (note "backup_bond_id= 3").
HOWTO_BOND = """\
[bond]
master_bond_id = 1
master_connected_ip_ids = 1,2
backup_bond_id= 3
backup_connected_ip_ids= 4,5
"""

ADMIN: dict[str, str] = {"host": "bonding.example.net", "user": "ha-bot", "passwd": "pw"}
BOND: dict[str, str] = {
    "master_bond_id": "1",
    "backup_bond_id": "2",
    "master_route_ids": "10",
    "backup_route_ids": "20",
}


def render(
    admin: Mapping[str, str | None] | None = None,
    bond: Mapping[str, str | None] | None = None,
    extra: str = "",
) -> str:
    """A valid config, with options changed (or removed, with None) per section."""
    text = ""
    for name, base, changes in (("bondingadmin", ADMIN, admin), ("bond", BOND, bond)):
        options: dict[str, str | None] = {**base, **(changes or {})}
        text += f"[{name}]\n"
        text += "".join(f"{key} = {value}\n" for key, value in options.items() if value is not None)
    return text + extra


def problems(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=SOURCE)
    return info.value.problems


def only_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(FILE), found[0]
    return found[0]


# --- accepted ----------------------------------------------------------------------------------


def test_old_example_file_verbatim() -> None:
    config = parse_config(OLD_EXAMPLE, source=SOURCE)
    assert config.api == ApiSettings(
        base_url="https://bondingadmin.example.com",
        user="username or email",
        password=Secret("correct horse battery staple"),
    )
    assert config.api.password.value == "correct horse battery staple"
    assert config.pair == Pair(
        master=BondSide(1, (1,), (1,), (1,)), backup=BondSide(2, (2,), (2,), (2,))
    )
    assert config.source == SOURCE
    assert config.warnings == ()


def test_howto_example_verbatim() -> None:
    text = "[bondingadmin]\nhost = bonding.example.net\nuser = u\npasswd = p\n\n" + HOWTO_BOND
    config = parse_config(text)
    assert config.pair == Pair(
        master=BondSide(bond_id=1, connected_ip_ids=(1, 2)),
        backup=BondSide(bond_id=3, connected_ip_ids=(4, 5)),
    )
    assert config.warnings == ()


def test_defaults() -> None:
    api = parse_config(render()).api
    assert (api.verify_ssl, api.timeout, api.attempts, api.attempt_delay) == (True, 10.0, 3, 5.0)
    assert api.api_root == "https://bonding.example.net/api/v3/"


def test_every_setting_read() -> None:
    text = render(
        admin={"verify_ssl": "TRUE", "timeout": "2.5", "attempts": "7", "attempt_delay": "0"}
    )
    api = parse_config(text).api
    assert (api.verify_ssl, api.timeout, api.attempts, api.attempt_delay) == (True, 2.5, 7, 0.0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True), ("yes", True), ("True", True), ("ON", True),
        ("0", False), ("no", False), ("false", False), ("Off", False),
    ],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert parse_config(render(admin={"verify_ssl": raw})).api.verify_ssl is expected


@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        ("bonding.example.net", "https://bonding.example.net"),
        ("bonding.example.net/", "https://bonding.example.net"),
        ("Bonding.Example.NET", "https://bonding.example.net"),
        ("bonding.example.net:8443", "https://bonding.example.net:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("HTTPS://mgmt.example.net/proxy/", "https://mgmt.example.net/proxy"),
        ("https://[2001:db8::1]:8443", "https://[2001:db8::1]:8443"),
        ("203.0.113.7", "https://203.0.113.7"),
    ],
)
def test_host_forms(host: str, base_url: str) -> None:
    config = parse_config(render(admin={"host": host}))
    assert config.api.base_url == base_url
    assert config.warnings == ()


@pytest.mark.parametrize("absent", [True, False])
def test_blank_or_absent_lists_mean_none(absent: bool) -> None:
    blank: str | None = None if absent else ""
    text = render(
        bond={
            "master_connected_ip_ids": blank,
            "backup_connected_ip_ids": blank,
            "master_route_ids": " 1, 2 ,3 ",
            "backup_route_ids": "4,5,6",
            "master_cpe_nat_ip_ids": blank,
        }
    )
    pair = parse_config(text).pair
    assert pair == Pair(BondSide(1, (), (1, 2, 3), ()), BondSide(2, (), (4, 5, 6), ()))


def test_percent_in_password_is_literal() -> None:
    config = parse_config(render(admin={"passwd": "50%off%(user)s"}))
    assert config.api.password.value == "50%off%(user)s"


def test_bom_and_crlf_accepted() -> None:
    text = "\ufeff" + render().replace("\n", "\r\n")
    config = parse_config(text)
    assert config.api.base_url == "https://bonding.example.net"
    assert config.pair.master.route_ids == (10,)


def test_load_config_reads_file_and_records_source(tmp_path: Path) -> None:
    path = tmp_path / "swap-active-bond.conf"
    path.write_text(OLD_EXAMPLE, encoding="utf-8")
    config = load_config(path)
    assert config.source == path
    assert config == parse_config(OLD_EXAMPLE, source=path)


# --- refused: the file -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.conf"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory") as info:
        load_config(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.conf"
    path.write_text(OLD_EXAMPLE, encoding="utf-8")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ConfigError, match="permission denied") as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_permission_denied_for_real(tmp_path: Path) -> None:
    path = tmp_path / "secret.conf"
    path.write_text(OLD_EXAMPLE, encoding="utf-8")
    path.chmod(0)
    with pytest.raises(ConfigError, match="permission denied"):
        load_config(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conf"
    path.write_bytes(render(admin={"passwd": "caf\xe9"}).encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}, line 4: not UTF-8 text; save it as UTF-8"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host = x\n" + render(), f"{FILE}, line 1: 'host = x' comes before the first [section]"),
        (render() + "[bond]\n", f"{FILE}, line 10: [bond]: section appears twice"),
        (
            render(extra="backup_route_ids = 21\n"),
            f"{FILE}, line 10: [bond] backup_route_ids: option set twice",
        ),
        (
            render(extra="master_route_ids 5\n"),
            f"{FILE}, line 10: cannot parse 'master_route_ids 5'; expected 'option = value'",
        ),
    ],
    ids=["no-header", "duplicate-section", "duplicate-option", "not-an-option"],
)
def test_syntax_errors_name_the_line(text: str, expected: str) -> None:
    assert only_problem(text).startswith(expected)


def test_option_names_are_case_insensitive_so_a_repeat_is_a_duplicate() -> None:
    assert "[bondingadmin] host: option set twice" in only_problem(render(admin={"HOST": "x"}))


# --- refused: sections and options -------------------------------------------------------------


@pytest.mark.parametrize("section", ["bondingadmin", "bond"])
def test_missing_section(section: str) -> None:
    text = render()
    start = text.index(f"[{section}]")
    end = text.find("[", start + 1)
    text = text[:start] + (text[end:] if end != -1 else "")
    assert only_problem(text).startswith(f"{FILE}: [{section}]: missing section")


@pytest.mark.parametrize(
    ("section", "option"),
    [
        ("bondingadmin", "host"),
        ("bondingadmin", "user"),
        ("bondingadmin", "passwd"),
        ("bond", "master_bond_id"),
        ("bond", "backup_bond_id"),
    ],
)
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_required_option(section: str, option: str, how: str) -> None:
    value = None if how == "missing" else ""
    changes = {option: value}
    text = render(admin=changes) if section == "bondingadmin" else render(bond=changes)
    expected = "required option is missing" if how == "missing" else "required, but empty"
    if (option, how) == ("passwd", "missing"):
        expected += ("; or set passwd_file, $BONDHA_PASSWORD or the systemd credential "
                     "bondha-password")
    assert only_problem(text) == f"{FILE}: [{section}] {option}: {expected}"


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("verify_ssl", "maybe", "not a boolean"),
        ("verify_ssl", "", "is empty; remove the line to use the default (true)"),
        ("timeout", "ten", "not a number of seconds"),
        ("timeout", "0", "must be more than 0 seconds"),
        ("timeout", "-1", "must be more than 0 seconds"),
        ("timeout", "nan", "must be a finite number"),
        ("timeout", "inf", "must be a finite number"),
        ("attempt_delay", "-0.5", "must be 0 seconds or more"),
        ("attempt_delay", "-inf", "must be a finite number"),
        ("attempt_delay", "5s", "not a number of seconds"),
        ("attempts", "0", "must be 1 or more"),
        ("attempts", "2.5", "not a whole number"),
        ("attempts", "three", "not a whole number"),
    ],
)
def test_bad_setting(option: str, value: str, why: str) -> None:
    problem = only_problem(render(admin={option: value}))
    shown = f" = {value!r}" if value else ""
    assert problem.startswith(f"{FILE}: [bondingadmin] {option}{shown}: {why}"), problem


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("ftp://bonding.example.net", "unsupported scheme 'ftp'"),
        ("https://", "no server name"),
        (":8443", "no server name"),
        ("https://bonding.example.net/?x=1", "must not contain a query"),
        ("bonding.example.net#top", "must not contain a query ('?') or fragment ('#')"),
        ("bonding example.net", "contains whitespace"),
        ("bonding.example.net:99999", "invalid port '99999'"),
        ("bonding.example.net:0", "invalid port '0'"),
        ("bonding.example.net:https", "invalid port 'https'"),
        ("https:/bonding.example.net", "not a URL"),
        ("2001:db8::1", "must be in brackets"),
        ("https://[2001:db8::zz]", "IPv6 address"),  # urlsplit or we find it, by version
        ("https://[::1", "not a valid URL; check the IPv6 address in brackets"),
        ("bond!ng.example.net", "invalid server name"),
        ("https://bonding.example.net/api/v3", "the server's address only; drop '/api/v3'"),
        ("bonding.example.net/api/v4/", "the server's address only; drop '/api/v4'"),
    ],
)
def test_bad_host(host: str, why: str) -> None:
    problem = only_problem(render(admin={"host": host}))
    assert problem.startswith(f"{FILE}: [bondingadmin] host"), problem
    assert why in problem


def test_host_with_credentials_points_to_user_and_passwd_without_echoing_them() -> None:
    problem = only_problem(render(admin={"host": f"https://admin:{SENTINEL}@bonding.example.net"}))
    assert problem == (
        f"{FILE}: [bondingadmin] host: must not contain a user name or password; "
        "put those in user and passwd"
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("abc", "item 1 'abc': not a positive whole number"),
        ("1.5", "item 1 '1.5': not a positive whole number"),
        ("-3", "item 1 '-3': not a positive whole number"),
        ("0", "item 1 '0': not a positive whole number"),
        ("1, 2x", "item 2 '2x': not a positive whole number"),
        ("1,,2", "item 2 is empty (a stray comma?)"),
        ("1, 2,", "item 3 is empty (a stray comma?)"),
        (",1", "item 1 is empty (a stray comma?)"),
        (
            "1 # primary",
            "item 1 '1 # primary': not a positive whole number "
            "(comments must be on a line of their own)",
        ),
        ("1" * 30, f"item 1 '{'1' * 30}': too large to be an id"),
        ("5, 6, 5", "item 3: id 5 is listed twice"),
        ("5, 005", "item 2: id 5 is listed twice"),
    ],
)
@pytest.mark.parametrize("option", ["master_route_ids", "backup_cpe_nat_ip_ids"])
def test_bad_id_list(option: str, value: str, why: str) -> None:
    problem = only_problem(render(bond={option: value}))
    assert problem == f"{FILE}: [bond] {option} = {value!r}: {why}"


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.0", "1,2"])
@pytest.mark.parametrize("option", ["master_bond_id", "backup_bond_id"])
def test_bad_bond_id(option: str, value: str) -> None:
    problem = only_problem(render(bond={option: value}))
    assert problem == f"{FILE}: [bond] {option} = {value!r}: not a positive whole number"


def test_same_bond_for_both_roles() -> None:
    problem = only_problem(render(bond={"backup_bond_id": "1"}))
    assert problem == (
        f"{FILE}: [bond] master_bond_id, backup_bond_id: both are 1; "
        "the master and the backup must be two different bonds"
    )


def test_same_object_id_on_both_bonds() -> None:
    text = render(bond={"master_route_ids": "10, 11", "backup_route_ids": "11, 12"})
    problem = only_problem(text)
    assert problem.startswith(
        f"{FILE}: [bond] master_route_ids, backup_route_ids: route 11 is listed for both bonds"
    )


def test_same_id_in_different_kinds_is_fine() -> None:
    config = parse_config(
        render(bond={"master_connected_ip_ids": "20", "backup_connected_ip_ids": "10"})
    )
    assert config.pair.master.connected_ip_ids == (20,)
    assert config.pair.master.route_ids == (10,)


def test_nothing_to_move() -> None:
    problem = only_problem(render(bond={"master_route_ids": None, "backup_route_ids": ""}))
    assert problem.startswith(f"{FILE}: [bond]: no floating object configured")
    assert "master_connected_ip_ids, master_route_ids, master_cpe_nat_ip_ids" in problem


def test_all_problems_reported_at_once() -> None:
    text = render(
        admin={"host": "ftp://x", "timeout": "0", "user": None},
        bond={"master_bond_id": "x", "backup_route_ids": "1,,"},
    )
    found = problems(text)
    assert [p.split(":")[1].strip() for p in found] == [
        "[bondingadmin] host = 'ftp",
        "[bondingadmin] user",
        "[bondingadmin] timeout = '0'",
        "[bond] master_bond_id = 'x'",
        "[bond] backup_route_ids = '1,,'",
        "[bond] backup_route_ids = '1,,'",
    ]
    assert all(p.startswith(f"{FILE}: ") for p in found)


def test_message_names_config_when_there_is_no_file() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(render(admin={"user": None}))
    assert info.value.problems == ("<config>: [bondingadmin] user: required option is missing",)


# --- warnings ----------------------------------------------------------------------------------


def warnings_of(text: str) -> tuple[str, ...]:
    return parse_config(text, source=SOURCE).warnings


def test_no_warnings_for_a_clean_config() -> None:
    assert warnings_of(render()) == ()


@pytest.mark.parametrize(
    ("bond", "warning"),
    [
        ({"colour": "blue"}, "[bond] colour: unknown option, ignored"),
        (
            {"timeout": "3"},
            "[bond] timeout: unknown option, ignored (it belongs in [bondingadmin])",
        ),
    ],
)
def test_unknown_option(bond: dict[str, str | None], warning: str) -> None:
    assert warnings_of(render(bond=bond)) == (f"{FILE}: {warning}",)


# Issue 13: a near miss of a known name leaves a setting unused; it was a warning, and
# `master_routes_ids` made an outage that bondha called success. Now an error.
@pytest.mark.parametrize(
    ("bond", "error"),
    [
        (
            {"master_route_id": "4"},
            "[bond] master_route_id: unknown option (did you mean master_route_ids?); "
            "fix the name (a misspelt name would be ignored)",
        ),
        (
            {"backup_conected_ip_ids": "4"},
            "[bond] backup_conected_ip_ids: unknown option "
            "(did you mean backup_connected_ip_ids?); fix the name (a misspelt name would be "
            "ignored)",
        ),
    ],
)
def test_unknown_option_near_a_known_one_is_an_error(bond: dict[str, str | None],
                                                     error: str) -> None:
    assert f"{FILE}: {error}" in problems(render(bond=bond))


def test_password_is_a_near_miss_of_passwd() -> None:
    text = render().replace("passwd = ", "password = ")
    assert any("[bondingadmin] password: unknown option (did you mean passwd?)" in p
               for p in problems(text))


def test_unknown_section() -> None:
    warnings = warnings_of(render(extra="[misc]\n"))
    assert warnings == (f"{FILE}: [misc]: unknown section, ignored",)
    assert f"{FILE}: [bondadmin]: unknown section (did you mean [bondingadmin]?); fix the " \
        "name (a misspelt name would be ignored)" in problems(
            render(extra="[bondadmin]\nhost = x\n"))


def test_default_section_is_honoured_as_the_old_script_did_but_warned() -> None:
    text = "[DEFAULT]\ntimeout = 3\nuser = other\nshade = x\n" + render()
    config = parse_config(text, source=SOURCE)
    assert config.api.timeout == 3.0
    assert config.api.user == "ha-bot"  # the section's own value wins
    assert config.warnings == (
        f"{FILE}: [DEFAULT] timeout: [DEFAULT] applies to every section; "
        "used as [bondingadmin] timeout, better moved there",
        f"{FILE}: [DEFAULT] user: ignored: [bondingadmin] sets user itself",
        f"{FILE}: [DEFAULT] shade: unknown option, ignored",
    )


def test_errors_in_default_values_name_the_default_section() -> None:
    problem = only_problem("[DEFAULT]\nattempts = 0\n" + render())
    assert problem == f"{FILE}: [DEFAULT] attempts = '0': must be 1 or more"


def test_lists_of_different_lengths_are_accepted_with_a_warning() -> None:
    text = render(
        bond={
            "master_route_ids": "10, 11",
            "master_cpe_nat_ip_ids": "30",
        }
    )
    config = parse_config(text, source=SOURCE)
    assert config.pair.master.route_ids == (10, 11)
    assert config.warnings == (
        f"{FILE}: [bond] master_route_ids, backup_route_ids: master has 2 routes, "
        "backup has 1 route; accepted as the old script did, but check that no id is missing",
        f"{FILE}: [bond] master_cpe_nat_ip_ids, backup_cpe_nat_ip_ids: master has 1 CPE NAT IP, "
        "backup has none; accepted as the old script did, but check that no id is missing",
    )


@pytest.mark.parametrize("value", ["false", "no", "0", "OFF"])
def test_tls_verification_off_warns_every_load(value: str) -> None:
    text = render(admin={"verify_ssl": value})
    expected = (
        f"{FILE}: [bondingadmin] verify_ssl = {value!r}: TLS certificate verification is off; "
        "whoever intercepts the connection can pose as the server and read the password "
        "(set ca_bundle to trust a self-signed server instead)",
    )
    assert warnings_of(text) == expected
    assert warnings_of(text) == expected


def test_plain_http_to_a_remote_server_warns() -> None:
    warnings = warnings_of(render(admin={"host": "http://bonding.example.net"}))
    assert warnings == (
        f"{FILE}: [bondingadmin] host = 'http://bonding.example.net': plain http; "
        "the password crosses the network unencrypted",
    )


# --- the password stays secret -----------------------------------------------------------------


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert SENTINEL not in text
        assert SENTINEL.lower() not in text.lower()


def test_password_never_in_errors() -> None:
    text = (
        "[DEFAULT]\n"
        f"passwd = {SENTINEL}\n"
        + render(
            admin={"passwd": SENTINEL, "verify_ssl": "perhaps", "host": "ftp://x", "timeout": "-1"},
            bond={"master_bond_id": "1", "backup_bond_id": "1", "master_route_ids": "1,,x"},
            extra=f"passwd = {SENTINEL}\npasswd: {SENTINEL}\n[other]\npasswd = {SENTINEL}\n",
        )
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=SOURCE)
    error = info.value
    assert len(error.problems) >= 1
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert_hidden(str(error), repr(error), rendered, *error.problems)


def test_password_never_in_semantic_errors_or_warnings() -> None:
    text = render(
        admin={"passwd": SENTINEL, "verify_ssl": "perhaps", "host": "ftp://x", "user": ""},
        bond={"backup_bond_id": "1", "master_route_ids": "1,,x", "pasword": SENTINEL},
        extra=f"[DEFAULT]\npasswd = {SENTINEL}\n[junk]\npasswd = {SENTINEL}\n",
    )
    found = problems(text)
    assert len(found) == 6  # host, user, verify_ssl, two route items, the shared bond
    assert_hidden(*found)


@pytest.mark.parametrize(
    "text",
    [
        f"passwd = {SENTINEL}\n[bondingadmin]\n",
        f"[bondingadmin]\npasswd {SENTINEL}\n",
        f"[bondingadmin]\nPassWd:{SENTINEL}\nPASSWD = {SENTINEL}\n",
        f"[bondingadmin]\npasswd = abc\n  more\n{SENTINEL}\n",
        f"[bondingadmin]\npasswd = {SENTINEL}\n[bondingadmin]\n",
    ],
    ids=["before-header", "no-equals", "duplicate", "stray-line-after-password", "dup-section"],
)
def test_password_never_in_syntax_errors(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=SOURCE)
    error = info.value
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert_hidden(str(error), rendered, *error.problems)
    assert FILE in str(error)


def test_password_never_in_repr_or_warnings() -> None:
    config = parse_config(
        render(admin={"passwd": SENTINEL, "verify_ssl": "no"}, extra="[x]\n"), source=SOURCE
    )
    assert config.api.password.value == SENTINEL
    assert config.warnings
    assert_hidden(repr(config), str(config), repr(config.api), *config.warnings)


# --- where the file is -------------------------------------------------------------------------


def test_config_path_precedence() -> None:
    env = {CONFIG_ENV: "/srv/from-env.conf"}
    assert config_path("/srv/cli.conf", env) == Path("/srv/cli.conf")
    assert config_path(None, env) == Path("/srv/from-env.conf")
    assert config_path("", env) == Path("/srv/from-env.conf")
    assert config_path(None, {}) == DEFAULT_CONFIG_PATH
    assert config_path(None, {CONFIG_ENV: ""}) == DEFAULT_CONFIG_PATH
    assert str(DEFAULT_CONFIG_PATH) == "/etc/bonding/swap-active-bond.conf"


def test_public_names() -> None:
    assert bondha.config.__all__ == [
        "API_VERSIONS",
        "CONFIG_ENV",
        "DEFAULT_CONFIG_PATH",
        "ApiSettings",
        "Config",
        "HaSettings",
        "config_path",
        "load_api_settings",
        "load_config",
        "parse_config",
    ]
    for name in bondha.config.__all__:
        assert hasattr(bondha.config, name)


# --- properties --------------------------------------------------------------------------------

object_ids = st.integers(min_value=1, max_value=10**18 - 1)


@st.composite
def pairs(draw: st.DrawFn) -> Pair:
    """Any pair the config can express: disjoint ids per kind, two different bonds."""
    master_bond, backup_bond = draw(st.lists(object_ids, min_size=2, max_size=2, unique=True))
    sides: dict[Role, list[tuple[int, ...]]] = {Role.MASTER: [], Role.BACKUP: []}
    for _ in Kind:
        pool = draw(st.lists(object_ids, max_size=6, unique=True))
        split = draw(st.integers(0, len(pool)))
        sides[Role.MASTER].append(tuple(pool[:split]))
        sides[Role.BACKUP].append(tuple(pool[split:]))
    assume(any(sides[Role.MASTER]) or any(sides[Role.BACKUP]))
    return Pair(
        BondSide(master_bond, *sides[Role.MASTER]),
        BondSide(backup_bond, *sides[Role.BACKUP]),
    )


@st.composite
def rendered_pairs(draw: st.DrawFn) -> tuple[Pair, str]:
    """A pair and one of the many ways to write it down."""
    pair = draw(pairs())
    separators = st.sampled_from([",", ", ", " ,", " , ", ",\t"])
    assigns = st.sampled_from([" = ", "=", "= ", " =", ": ", ":"])
    lines = []
    for role in Role:
        side = pair.side(role)
        lines.append(f"{role.value}_bond_id{draw(assigns)}{side.bond_id}")
        for kind in Kind:
            ids = side.ids(kind)
            option = f"{role.value}_{kind.config_stem}_ids"
            write_blank = draw(st.booleans())  # an empty list is either blank or absent
            if ids or write_blank:
                joined = "".join(
                    (draw(separators) if n else "") + str(object_id)
                    for n, object_id in enumerate(ids)
                )
                lines.append(f"{option}{draw(assigns)}{joined}")
    lines = draw(st.permutations(lines))
    text = "[bond]\n" + "\n".join(lines) + "\n" + render().split("[bond]")[0]
    return pair, text


@given(rendered_pairs())
def test_rendered_pair_round_trips(case: tuple[Pair, str]) -> None:
    pair, text = case
    assert parse_config(text).pair == pair


junk_lines = st.sampled_from(
    [
        "[bondingadmin]", "[bond]", "[DEFAULT]", "[", "]", "[]", "= x", "x =", ":", "#", ";",
        "host = bonding.example.net", "host = http://[::1", "host = https://a:b@c", "user = u",
        f"passwd = {SENTINEL}", f"passwd {SENTINEL}", "master_bond_id = 1", "backup_bond_id = 2",
        "master_route_ids = 1, 2", "backup_route_ids = 3,", "master_connected_ip_ids = 0",
        "verify_ssl = maybe", "timeout = nan", "attempts = 99999999999", "  continued",
        "x = %(y)s", "\t", "",
    ]
) | st.text(max_size=30).filter(lambda s: SENTINEL not in s)


@given(st.lists(junk_lines, max_size=25).map("\n".join) | st.text())
def test_junk_gives_config_error_or_config_never_the_password(text: str) -> None:
    outcome = parse_or_error(text)  # anything but a ConfigError escapes and fails the test
    if isinstance(outcome, ConfigError):
        assert outcome.problems
        assert all(problem.startswith(FILE) for problem in outcome.problems)
        assert_hidden(str(outcome), *outcome.problems)
    else:
        assert_hidden(repr(outcome), *outcome.warnings)


def parse_or_error(text: str) -> Config | ConfigError:
    try:
        return parse_config(text, source=SOURCE)
    except ConfigError as error:
        return error


# --- [bondha] ----------------------------------------------------------------------------------


def test_bondha_section_is_optional_with_defaults() -> None:
    assert parse_config(render()).ha == HaSettings(pool_size=16, deadline=30.0)


def test_bondha_section_values() -> None:
    config = parse_config(render(extra="[bondha]\npool_size = 4\ndeadline = 12.5\n"))
    assert config.ha == HaSettings(pool_size=4, deadline=12.5)
    assert config.warnings == ()


def test_bondha_reliability_options() -> None:
    config = parse_config(render(extra=(
        "[bondha]\non_disable_failure = Enable\nstate_dir = /var/lib/bondha\n"
        "notify_fifo = /run/bondha/notify.fifo\ninstances = VI_1, VI_2,VI_1\n"
        "reconcile_interval = 2.5\n")))
    assert config.ha == HaSettings(
        on_disable_failure="enable", state_dir=Path("/var/lib/bondha"),
        notify_fifo=Path("/run/bondha/notify.fifo"), instances=("VI_1", "VI_2"),
        reconcile_interval=2.5)
    assert config.warnings == ()


def test_bondha_reliability_defaults() -> None:
    ha = parse_config(render(extra="[bondha]\ninstances =\nstate_dir =\n")).ha
    assert (ha.on_disable_failure, ha.state_dir, ha.notify_fifo, ha.instances,
            ha.reconcile_interval) == ("hold", None, None, (), 30.0)


@pytest.mark.parametrize(("line", "message"), [
    ("on_disable_failure = maybe", "must be hold"),
    ("state_dir = run/bondha", "absolute path"),
    ("notify_fifo = fifo", "absolute path"),
    ("instances = VI_1,,VI_2", "item 2 is empty"),
    ("instances = \"VI_1\"", "not an instance name"),
    ("reconcile_interval = 0", "more than 0 seconds"),
    ("reconcile_interval = 0.01", "0.1 seconds or more"),
    ("reconcile_interval = often", "not a number of seconds"),
    ("pool_size = 0", "must be 1 or more"),
    ("pool_size = 500", "must be 100 or less"),
    ("pool_size = many", "not a whole number"),
    ("deadline = 0", "more than 0 seconds"),
    ("deadline = soon", "not a number of seconds"),
])
def test_bondha_section_bad_values(line: str, message: str) -> None:
    problem = only_problem(render(extra=f"[bondha]\n{line}\n"))
    assert f"[bondha] {line.split(' =', maxsplit=1)[0]}" in problem
    assert message in problem


def test_bondha_section_unknown_option_near_a_known_one_is_an_error() -> None:
    found = problems(render(extra="[bondha]\npool_sise = 4\n"))
    assert any("pool_sise" in p and "did you mean pool_size" in p for p in found)
