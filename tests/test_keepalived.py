"""keepalived's notify arguments -> the role to make active (the how-to's convention)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bondha.errors import UsageError
from bondha.keepalived.events import Event, State, parse_notify_args, role_for
from bondha.model import Role


@pytest.mark.parametrize(("args", "role"), [
    (["INSTANCE", "VI_1", "MASTER", "10"], Role.MASTER),
    (["INSTANCE", "VI_1", "MASTER", "9"], Role.BACKUP),
    (["INSTANCE", "VI_1", "MASTER", "1"], Role.BACKUP),
    (["VI_1", "1", "MASTER", "10"], Role.MASTER),  # the how-to's manual test call
    (["GROUP", "G1", "master", "10"], Role.MASTER),
    (["INSTANCE", "VI_1", "BACKUP", "10"], None),
    (["INSTANCE", "VI_1", "FAULT", "9"], None),
    (["INSTANCE", "VI_1", "STOP", "10"], None),
])
def test_role_follows_state_and_priority(args: list[str], role: Role | None) -> None:
    assert role_for(parse_notify_args(args)) is role


def test_event_keeps_every_argument() -> None:
    assert parse_notify_args(["INSTANCE", "VI_1", "MASTER", "10"]) == Event(
        "INSTANCE", "VI_1", State.MASTER, 10)


@pytest.mark.parametrize(("args", "culprit"), [
    ([], "4 arguments"),
    (["INSTANCE", "VI_1", "MASTER"], "got 3"),
    (["INSTANCE", "VI_1", "MASTER", "10", "extra"], "got 5"),
    (["INSTANCE", "VI_1", "PRIMARY", "10"], "STATE 'PRIMARY'"),
    (["INSTANCE", "VI_1", "MASTER", "ten"], "PRIORITY 'ten'"),
    (["INSTANCE", "VI_1", "MASTER", "-1"], "PRIORITY '-1'"),
    (["INSTANCE", "VI_1", "MASTER", "256"], "PRIORITY '256'"),
    (["", "VI_1", "MASTER", "10"], "TYPE and NAME"),
])
def test_odd_arguments_are_one_clear_error(args: list[str], culprit: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_notify_args(args)
    assert culprit in str(info.value)
    assert "\n" not in str(info.value)


@given(st.lists(st.text(max_size=12), max_size=6))
def test_any_arguments_give_an_event_or_a_usage_error(args: list[str]) -> None:
    try:
        event = parse_notify_args(args)
    except UsageError:
        return
    assert len(args) == 4
    assert role_for(event) in (None, Role.MASTER, Role.BACKUP)
    assert (role_for(event) is None) == (event.state is not State.MASTER)
