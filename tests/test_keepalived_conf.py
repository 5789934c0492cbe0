"""The keepalived.conf renderer and checker: what the docs teach is what the checker accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bondha.errors import UsageError
from bondha.keepalived.check import (
    Level,
    check_keepalived_file,
    check_keepalived_text,
    check_script_file,
)
from bondha.keepalived.parse import parse_keepalived_text
from bondha.keepalived.render import KeepalivedSettings, render_keepalived_conf
from bondha.model import Role
from tests.conftest import bondha


def settings(role: Role = Role.MASTER, interface: str = "eth1",
             **overrides: object) -> KeepalivedSettings:
    src, peer = ("192.168.66.1", "192.168.66.2") if role is Role.MASTER else (
        "192.168.66.2", "192.168.66.1")
    return KeepalivedSettings.create(role, interface, src, peer, "horsebat", **overrides)  # type: ignore[arg-type]


def messages(text: str, level: Level = Level.ERROR, **kwargs: str) -> list[str]:
    return [f.message for f in check_keepalived_text(text, **kwargs) if f.level is level]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("fifo", [None, "/run/bondha/keepalived.fifo"])
def test_rendered_config_passes_the_checker(role: Role, fifo: str | None) -> None:
    text = render_keepalived_conf(settings(role, fifo=fifo))
    assert check_keepalived_text(text, fifo=fifo) == []
    assert ("vrrp_notify_fifo" in text) is (fifo is not None)
    assert ('notify "/usr/lib/bondha/swap-active-bond"' in text) is (fifo is None)


def test_rendered_priorities_and_config_path() -> None:
    master = parse_keepalived_text(render_keepalived_conf(settings()))
    backup = parse_keepalived_text(render_keepalived_conf(
        settings(Role.BACKUP, priority=5, config_path="/etc/x.conf")))
    assert next(n for n in master if n.keyword == "vrrp_instance").find("priority").args == ("10",)  # type: ignore[union-attr]
    instance = next(n for n in backup if n.keyword == "vrrp_instance")
    assert instance.find("priority").args == ("5",)  # type: ignore[union-attr]
    assert instance.find("notify").args == (  # type: ignore[union-attr]
        "/usr/lib/bondha/swap-active-bond --config /etc/x.conf",)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"priority": 9}, "master bonder's priority must be 10"),
    ({"peer": "192.168.66.1"}, "the peer is the other bonder"),
    ({"src": "eth0"}, "--src 'eth0': not an IP address"),
    ({"auth_pass": "horsebattery"}, "1 to 8 characters"),
    ({"auth_pass": 'a"b'}, "--auth-pass: use letters"),
    ({"hook": "swap-active-bond"}, "absolute path"),
    ({"interface": "eth1 }"}, "--interface"),
    ({"router_id": 0}, "--router-id 0"),
])
def test_bad_settings_are_refused_naming_the_option(overrides: dict[str, object],
                                                    message: str) -> None:
    arguments: dict[str, object] = {"src": "192.168.66.1", "peer": "192.168.66.2",
                                    "auth_pass": "horsebat", **overrides}
    src, peer, auth = arguments.pop("src"), arguments.pop("peer"), arguments.pop("auth_pass")
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as caught:
        KeepalivedSettings.create(Role.MASTER, str(arguments.pop("interface", "eth1")),
                                  str(src), str(peer), str(auth), **arguments)  # type: ignore[arg-type]
    assert "horsebattery" not in str(caught.value)


def test_backup_priority_must_be_below_ten() -> None:
    with pytest.raises(UsageError, match="1 to 9"):
        settings(Role.BACKUP, priority=10)


def _edit(old: str, new: str, role: Role = Role.MASTER) -> str:
    text = render_keepalived_conf(settings(role))
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("priority 10", "priority 100", "state MASTER but priority 100"),
    ("priority 10", "", "priority missing"),
    ("    unicast_peer {\n        192.168.66.2\n    }\n", "", "no unicast_peer"),
    ("192.168.66.2\n", "192.168.66.1\n", "is this bonder's own unicast_src_ip"),
    ('    notify "/usr/lib/bondha/swap-active-bond"', "", "bondha is never told"),
    ('notify "/usr/lib/bondha/swap-active-bond"', 'notify "swap-active-bond"',
     "not an absolute path"),
    ('notify "/usr/lib/bondha/swap-active-bond"',
     "notify_master /usr/lib/bondha/swap-active-bond", "without the TYPE NAME"),
    ("    virtual_router_id 2\n", "", "no virtual_router_id"),
])
def test_checker_finds_what_breaks_the_pair(old: str, new: str, message: str) -> None:
    assert any(message in m for m in messages(_edit(old, new))), messages(_edit(old, new))


def test_checker_on_the_backup_and_on_warnings() -> None:
    assert any("state BACKUP but priority 10" in m
               for m in messages(_edit("priority 9", "priority 10", Role.BACKUP)))
    unsafe = _edit("    enable_script_security\n    script_user bondha\n", "")
    warnings = messages(unsafe, Level.WARNING)
    assert any("enable_script_security" in w for w in warnings)
    assert any("runs as root" in w for w in warnings)
    assert any("nopreempt" in w for w in messages(
        _edit("    advert_int 1\n", "    advert_int 1\n    nopreempt\n"), Level.WARNING))
    other = _edit('swap-active-bond"', 'swap-active-bond --config /etc/other.conf"')
    assert any("not the checked config" in w for w in messages(
        other, Level.WARNING, config_path="/etc/bonding/swap-active-bond.conf"))
    assert any("notify_fifo is /run/x" in m for m in messages(
        render_keepalived_conf(settings()), fifo="/run/x"))


def test_unbalanced_braces_are_one_finding_with_the_line() -> None:
    assert messages("vrrp_instance VI_1 {\n  state MASTER\n") == [
        "cannot parse: line 1: block 'vrrp_instance' is never closed"]
    assert messages("}\n") == ["cannot parse: line 1: '}' closes no block"]


def test_comments_and_quotes_are_parsed_as_keepalived_does() -> None:
    nodes = parse_keepalived_text('a "b c" # d\n! e\nf { g\n}\n')
    assert [(n.keyword, n.args) for n in nodes] == [("a", ("b c",)), ("f", ())]
    assert nodes[1].children is not None
    assert [c.keyword for c in nodes[1].children] == ["g"]


def test_script_security_rules(tmp_path: Path) -> None:
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o755)
    safe.chmod(0o755)
    hook = safe / "hook"
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    # tmp_path's parents are root's (we may not be root: then everything is "not owned").
    owned = all(p.stat().st_uid == 0 for p in (hook, *hook.parents))
    assert (check_script_file(str(hook), user_is_root=True) == []) is owned
    hook.chmod(0o775)
    assert any("writable by group or others" in p
               for p in check_script_file(f"{hook} --config x", user_is_root=True))
    hook.chmod(0o644)
    assert any("not an executable file" in p for p in check_script_file(str(hook),
                                                                         user_is_root=False))
    assert check_script_file(str(safe / "missing"), user_is_root=False) == [
        f"{safe / 'missing'}: No such file or directory"]


def test_check_file_reports_an_unreadable_file_and_the_hook(tmp_path: Path) -> None:
    assert [f.message for f in check_keepalived_file(tmp_path / "none.conf")] == [
        "cannot read: No such file or directory"]
    conf = tmp_path / "keepalived.conf"
    conf.write_text(render_keepalived_conf(settings(hook=str(tmp_path / "hook"))))
    assert any("hook: No such file or directory" in f.message
               for f in check_keepalived_file(conf))


def test_cli_renders_and_checks(config_path: Path, tmp_path: Path) -> None:
    rendered = bondha("--config", str(config_path), "keepalived-config", "--role", "backup",
                      "--interface", "eth1", "--src", "192.168.66.2", "--peer", "192.168.66.1",
                      "--auth-pass", "horsebat", "--track-script", "")
    assert rendered.returncode == 0, rendered.stderr
    assert f'swap-active-bond --config {config_path}"' in rendered.stdout
    assert "chk_node" not in rendered.stdout
    keepalived_conf = tmp_path / "keepalived.conf"
    keepalived_conf.write_text(rendered.stdout.replace("priority 9", "priority 10"))
    checked = bondha("--config", str(config_path), "check", "--keepalived", str(keepalived_conf))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "state BACKUP but priority 10" in checked.stdout
    assert "check failed" in checked.stdout
    refused = bondha("--config", str(config_path), "keepalived-config", "--role", "master",
                     "--interface", "eth1", "--src", "192.168.66.1", "--peer", "192.168.66.2",
                     "--auth-pass", "horsebat", "--priority", "9")
    assert refused.returncode == 2
    assert "master bonder's priority must be 10" in refused.stderr


# --- VRRPv3: sub-second detection -----------------------------------------------------------------


def v3_settings(role: Role = Role.MASTER, **overrides: object) -> KeepalivedSettings:
    src, peer = ("192.168.66.1", "192.168.66.2") if role is Role.MASTER else (
        "192.168.66.2", "192.168.66.1")
    options: dict[str, Any] = {"advert_int": 0.2, **overrides}
    return KeepalivedSettings.create(role, "eth1", src, peer, "", **options)


@pytest.mark.parametrize("role", list(Role))
def test_sub_second_advert_int_renders_vrrp_version_3(role: Role) -> None:
    text = render_keepalived_conf(v3_settings(role))
    top = parse_keepalived_text(text)
    globals_ = next(n for n in top if n.keyword == "global_defs")
    instance = next(n for n in top if n.keyword == "vrrp_instance")
    assert globals_.find("vrrp_version").args == ("3",)  # type: ignore[union-attr]
    assert instance.find("advert_int").args == ("0.2",)  # type: ignore[union-attr]
    assert instance.find("authentication") is None, "VRRPv3 has no authentication"
    assert check_keepalived_text(text) == []


def test_whole_seconds_stay_on_vrrp_version_2() -> None:
    text = render_keepalived_conf(settings(advert_int=2.0))
    assert "vrrp_version" not in text
    assert "auth_pass horsebat" in text
    forced = render_keepalived_conf(v3_settings(advert_int=1.0, vrrp_version=3))
    assert "vrrp_version 3" in forced


@pytest.mark.parametrize(("make", "message"), [
    (lambda: v3_settings(vrrp_version=2), "VRRPv2 takes whole seconds from 1 to 255"),
    (lambda: settings(advert_int=0.2), "VRRPv3 has no authentication"),
    (lambda: v3_settings(advert_int=0.005), "VRRPv3 takes 0.01 to 40.95 seconds"),
    (lambda: v3_settings(advert_int=0.125), "in steps of 0.01"),
    (lambda: v3_settings(advert_int=41.0, vrrp_version=3), "VRRPv3 takes 0.01 to 40.95"),
    (lambda: settings(advert_int=0.0, vrrp_version=2), "VRRPv2 takes whole seconds"),
])
def test_bad_vrrp_version_choices_are_named(make: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make()  # type: ignore[operator]


def test_checker_flags_a_sub_second_advert_int_under_vrrp_version_2() -> None:
    text = render_keepalived_conf(settings()).replace("advert_int 1", "advert_int 0.2")
    assert messages(text) == ["vrrp_instance VI_1: advert_int 0.2 needs vrrp_version 3; "
                              "VRRPv2 counts whole seconds"]


def test_cli_renders_vrrp_version_3(tmp_path: Path) -> None:
    from bondha.testing import example_fixture

    config = tmp_path / "swap-active-bond.conf"
    config.write_text(example_fixture().config_text("http://127.0.0.1:1"))
    done = bondha("--config", str(config), "keepalived-config", "--role", "backup",
                  "--interface", "eth1", "--src", "192.168.66.2", "--peer", "192.168.66.1",
                  "--advert-int", "0.2")
    assert done.returncode == 0, done.stderr
    assert "vrrp_version 3" in done.stdout
    assert "advert_int 0.2" in done.stdout
    refused = bondha("--config", str(config), "keepalived-config", "--role", "backup",
                     "--interface", "eth1", "--src", "192.168.66.2", "--peer", "192.168.66.1")
    assert refused.returncode == 2
    assert "--auth-pass: must be 1 to 8 characters" in refused.stderr
