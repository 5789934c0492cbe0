"""bondha status: verdicts, the 80-column table, colour, the JSON schema and --watch."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from bondha.cli.terminal import use_colour, watch
from bondha.errors import TransportError
from bondha.keepalived.events import State
from bondha.model import BondSide, ObjectRef, Pair, Role, RoutingObject
from bondha.status import (
    NodeState,
    Verdict,
    address_status,
    render_status,
    status_to_json,
)
from bondha.testing import StandInServer
from tests.conftest import bondha

PAIR = Pair(BondSide(1, connected_ip_ids=(1, 2), route_ids=(7,), cpe_nat_ip_ids=(10,)),
            BondSide(3, connected_ip_ids=(4, 5), route_ids=(8,), cpe_nat_ip_ids=(11,)))
LONG = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128"


def live(on: dict[int, bool]) -> dict[ObjectRef, RoutingObject]:
    addresses = {1: "203.0.113.1/30", 4: "203.0.113.1/30", 2: LONG, 5: LONG,
                 7: "198.51.100.0/24", 8: "198.51.100.0/24", 10: "203.0.113.9/32",
                 11: "203.0.113.9/32"}
    objs = [RoutingObject(ref, on[ref.id], addresses[ref.id]) for ref in PAIR.refs()]
    return {o.ref: o for o in objs}


MASTER_ACTIVE = {1: True, 2: True, 7: True, 10: True, 4: False, 5: False, 8: False, 11: False}


@pytest.mark.parametrize(("state", "priority", "expected"), [
    (State.MASTER, 10, Role.MASTER), (State.MASTER, 9, Role.BACKUP),
    (State.BACKUP, 10, Role.BACKUP), (State.BACKUP, 9, Role.MASTER),
    (State.FAULT, 10, Role.BACKUP), (State.STOP, 5, Role.MASTER),
])
def test_node_state_names_the_bond_that_should_be_active(state: State, priority: int,
                                                        expected: Role) -> None:
    assert NodeState(state, priority).expected_active is expected


def test_verdicts() -> None:
    on = {**MASTER_ACTIVE, 8: True, 10: False}  # route overlaps, CPE NAT IP dark
    rows = address_status(PAIR, live(on))
    assert [r.verdict for r in rows] == [Verdict.OK, Verdict.OK, Verdict.OVERLAP, Verdict.DARK]
    node = NodeState(State.MASTER, 9)  # this is the backup bonder, and it is MASTER
    rows = address_status(PAIR, live(on), node)
    assert [r.verdict for r in rows] == [Verdict.WRONG_BOND, Verdict.WRONG_BOND,
                                         Verdict.OVERLAP, Verdict.DARK]
    lone = Pair(BondSide(1, route_ids=(7,)), BondSide(3))
    assert [r.verdict for r in address_status(lone, live(MASTER_ACTIVE))] == [Verdict.UNPAIRED]


def test_table_fits_80_columns_and_keeps_long_addresses_whole() -> None:
    rows = address_status(PAIR, live(MASTER_ACTIVE), NodeState(State.BACKUP, 10))
    text = render_status(PAIR, rows, node=NodeState(State.BACKUP, 10))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert LONG in text
    assert "bond 3 (backup) should be active" in " ".join(text.split())
    assert text.count("WRONG BOND") == 4
    assert text.splitlines()[-1] == "4 addresses, 4 UNHEALTHY: 4 wrong bond"
    assert "\x1b[" not in text


def test_colour_only_when_asked_and_adds_no_width() -> None:
    rows = address_status(PAIR, live({**MASTER_ACTIVE, 8: True}))
    plain = render_status(PAIR, rows)
    coloured = render_status(PAIR, rows, colour=True)
    assert "\x1b[1;31mOVERLAP" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_use_colour_honours_terminal_no_color_and_dumb() -> None:
    assert use_colour(Tty(), {}) is True
    assert use_colour(io.StringIO(), {}) is False
    assert use_colour(Tty(), {"NO_COLOR": "1"}) is False
    assert use_colour(Tty(), {"TERM": "dumb"}) is False


def test_json_schema_2() -> None:
    node = NodeState(State.MASTER, 10)
    rows = address_status(PAIR, live({**MASTER_ACTIVE, 11: True}), node)
    data = status_to_json(PAIR, rows, node)
    assert data["schema"] == "bondha.status/2"
    # age_seconds (issue 13: how old a recorded state is) is null for the command line's.
    assert data["keepalived"] == {"state": "MASTER", "priority": 10, "source": "command line",
                                  "expected_active": "master", "age_seconds": None}
    assert data["healthy"] is False
    assert data["counts"] == {"overlap": 1, "dark": 0, "wrong_bond": 0, "unpaired": 0, "ok": 3}
    assert data["addresses"][3] == {
        "kind": "cpe_nat_ips", "address": "203.0.113.9/32", "master": [{"id": 10, "enabled": True}],
        "backup": [{"id": 11, "enabled": True}], "live_on": "both", "verdict": "overlap"}
    json.dumps(data)


def test_watch_refreshes_counts_and_survives_a_failed_read() -> None:
    out = io.StringIO()
    answers: list[str | Exception] = ["first", TransportError("no answer"), "third"]
    slept: list[float] = []

    def render() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert watch(render, 2, out, count=3, sleep=slept.append) == 0
    text = out.getvalue()
    assert [line for line in text.splitlines() if not line.startswith("every")] == [
        "first", "", "cannot read the pair: no answer", "", "third"]
    assert slept == [2, 2]


def test_watch_stops_on_ctrl_c_with_exit_0() -> None:
    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    assert watch(lambda: "table", 1, io.StringIO(), sleep=interrupted) == 0


def test_status_command_watch_json_lines(server: StandInServer, config_path: Path) -> None:
    out = bondha("--json", "status", "--watch", "1", "--count", "2",
                 "--keepalived-state", "backup", "--priority", "9", config=config_path)
    assert out.returncode == 0, out.stderr
    documents = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(documents) == 2
    assert documents[0]["keepalived"]["expected_active"] == "master"
    assert documents[0]["healthy"] is True


@pytest.mark.parametrize("args", [
    ("--priority", "10"), ("--keepalived-state", "MASTER"), ("--watch", "0"),
    ("--keepalived-state", "PRIMARY", "--priority", "10"),
])
def test_status_bad_options_exit_2(server: StandInServer, config_path: Path,
                                   args: tuple[str, ...]) -> None:
    out = bondha("status", *args, config=config_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
