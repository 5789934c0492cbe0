"""Races between the two bonders: two nodes (two state dirs, two accounts) against one server.

The server delays the writes of the superseded node's account, so that its writes already
on the wire land after the other node has verified: the final state must still follow
the last events, with no address on the wrong bond or on both.
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import attrs
import pytest

from bondha.config import Config, load_config
from bondha.keepalived.events import parse_notify_args
from bondha.node.forkorder import Fork, Proc, order, parse_stat, this_process
from bondha.node.statedir import StateDir
from bondha.node.transition import handback_role, notify, settle_checks
from bondha.result import Result
from bondha.testing import Fault, Fixture, StandInServer, User, example_fixture
from tests.conftest import write_config

BACKUP_USER = "backup-bonder@example.net"
DELAY = 0.4  # seconds the server holds each write of the backup bonder's account


# -- fork order, on its own -------------------------------------------------------------------

def _fork(*lineage: tuple[int, int | None], pid_max: int = 32768, boot: str = "b") -> Fork:
    return Fork(tuple(Proc(pid, start) for pid, start in lineage), pid_max, boot)


KEEPALIVED = (900, 50)  # the VRRP process: the parent of every notify hook


@pytest.mark.parametrize(("older", "newer"), [
    ((1000, 70), (1001, 70)),  # one clock tick: the PID tells
    ((1000, 70), (1001, 74)),  # later tick
    ((1001, 70), (1000, 74)),  # a later tick wins over a lower PID (wrapped meanwhile)
    ((32760, 70), (305, 70)),  # one tick, and the PIDs wrapped at pid_max back to 300
])
def test_siblings_are_ordered_by_start_time_then_pid_modulo_pid_max(
        older: tuple[int, int], newer: tuple[int, int]) -> None:
    first, second = _fork(older, KEEPALIVED), _fork(newer, KEEPALIVED)
    assert order(first, second) == -1
    assert order(second, first) == 1


def test_a_wrapper_shell_is_ordered_at_the_common_ancestor() -> None:
    # sh (forked first) -> python started late; sh (forked second) -> python started early
    first = _fork((2005, 80), (2000, 70), KEEPALIVED)
    second = _fork((2003, 72), (2001, 70), KEEPALIVED)
    assert order(first, second) == -1


@pytest.mark.parametrize("other", [
    _fork((1000, 70), KEEPALIVED),             # the same process (the daemon, threads)
    _fork((1001, 70), KEEPALIVED, boot="c"),   # another boot
    _fork((1001, 70)),                         # no common ancestor seen
    _fork((1001, 71), (1000, 70), KEEPALIVED),  # a child of the first one
])
def test_no_order_where_the_forks_do_not_tell(other: Fork) -> None:
    assert order(_fork((1000, 70), KEEPALIVED), other) is None


def test_an_unreadable_ancestor_is_matched_by_pid() -> None:
    assert order(_fork((1000, 70), (900, None)), _fork((1001, 70), (900, 50))) == -1


def test_stat_line_with_parentheses_in_the_name() -> None:
    line = "4242 (we(ird) name) S 900 4242 4242 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 61234 0"
    assert parse_stat(line) == (4242, 900, 61234)


def test_this_process_knows_its_parent() -> None:
    fork = this_process()
    assert fork is not None
    assert [p.pid for p in fork.lineage[:2]] == [os.getpid(), os.getppid()]
    assert Fork.from_json(fork.to_json()) == fork


def test_an_event_emitted_earlier_but_recorded_later_never_becomes_the_newest(
        state_dir: Path) -> None:
    state = StateDir(state_dir).ensure()
    backup = state.take_ticket("INSTANCE VI_1 BACKUP 9", _fork((1001, 70), KEEPALIVED))
    master = state.take_ticket("INSTANCE VI_1 MASTER 9", _fork((1000, 70), KEEPALIVED))
    assert (backup.seq, master.seq, master.emitted_before) == (1, 2, 1)
    assert state.current() == backup
    assert not state.is_current(master)
    after = state.take_ticket("INSTANCE VI_1 MASTER 9", _fork((1002, 71), KEEPALIVED))
    assert (after.seq, after.previous, state.current()) == (3, backup.event, after)


def test_handback_only_for_backup_right_after_master(state_dir: Path) -> None:
    state = StateDir(state_dir).ensure()
    roles = [handback_role(state.take_ticket(text)) for text in (
        "INSTANCE VI_1 BACKUP 9", "INSTANCE VI_1 MASTER 9", "INSTANCE VI_1 BACKUP 9",
        "INSTANCE VI_1 BACKUP 9", "INSTANCE VI_1 MASTER 10", "INSTANCE VI_1 FAULT 10")]
    assert [r and r.value for r in roles] == [None, None, "master", None, None, None]


def test_settle_checks_grow_and_end_at_the_window() -> None:
    assert settle_checks(0) == ()
    assert settle_checks(2) == (0.25, 0.75, 1.75, 2)
    assert settle_checks(0.1) == (0.1,)


# -- two nodes ----------------------------------------------------------------------------------

@pytest.fixture
def pair_fixture() -> Fixture:
    fixture = example_fixture()
    return attrs.evolve(fixture, users=(*fixture.users, User(BACKUP_USER, "other horse")))


@pytest.fixture
def standin(pair_fixture: Fixture) -> Iterator[StandInServer]:
    with StandInServer(pair_fixture) as running:
        yield running


@attrs.frozen
class Node:
    """One bonder: its config (own account, own state dir) and the events keepalived sends."""

    config: Config
    results: list[Result | None] = attrs.field(factory=list)
    threads: list[threading.Thread] = attrs.field(factory=list)

    @property
    def state(self) -> StateDir:
        assert self.config.ha.state_dir is not None
        return StateDir(self.config.ha.state_dir)

    def event(self, text: str, *, wait: bool = True) -> None:
        """Run the hook for ``text`` ("MASTER 9") in a thread, once it is recorded."""
        event = parse_notify_args(["INSTANCE", "VI_1", *text.split()])
        seen = self.last_seq()
        thread = threading.Thread(target=lambda: self.results.append(notify(self.config, event)))
        thread.start()
        self.threads.append(thread)
        if wait:
            _wait(lambda: self.last_seq() > seen, f"{text} to be recorded")

    def last_seq(self) -> int:
        current = self.state.current()
        return current.seq if current else 0

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive()


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.005)


def _node(tmp_path: Path, name: str, fixture: Fixture, server: StandInServer, user: str | None,
          password: str | None, settle: float) -> Node:
    text = fixture.config_text(server.url, user=user, password=password, attempt_delay=0.01,
                               timeout=5)
    text += f"[bondha]\nstate_dir = {tmp_path / name}\nsettle = {settle}\n"
    return Node(load_config(write_config(tmp_path / f"{name}.conf", text)))


@pytest.fixture
def nodes(tmp_path: Path, pair_fixture: Fixture, standin: StandInServer,
          monkeypatch: pytest.MonkeyPatch) -> tuple[Node, Node]:
    """(the master bonder, the backup bonder), each with its own state dir and account."""
    monkeypatch.delenv("BONDHA_STATE_DIR")  # each node's config names its own
    settle = 2 * DELAY + 0.5
    return (_node(tmp_path, "master", pair_fixture, standin, None, None, settle),
            _node(tmp_path, "backup", pair_fixture, standin, BACKUP_USER, "other horse", settle))


def placement(server: StandInServer) -> dict[str, set[int]]:
    """Every floating address of the pair and the bonds it is enabled on."""
    bonds: dict[str, set[int]] = collections.defaultdict(set)
    for record in server.objects():
        if record.bond_id in (1, 3) and "private" not in record.comment:
            bonds[record.address].update({record.bond_id} if record.enabled else set())
    return dict(bonds)


def _settled(server: StandInServer) -> dict[str, set[int]]:
    time.sleep(DELAY + 0.3)  # writes the server still holds land now
    return placement(server)


ON_MASTER = {"203.0.113.1/30": {1}, "198.51.100.0/24": {1}, "203.0.113.9/32": {1}}


def test_slow_master_run_on_backup_overtaken_while_master_turns_master(
        standin: StandInServer, nodes: tuple[Node, Node]) -> None:
    """The issue's first race: the backup bonder's MASTER run has writes in flight when its
    BACKUP comes and the master bonder turns MASTER; those writes land last."""
    master, backup = nodes
    standin.inject(Fault(method="PATCH", user=BACKUP_USER, delay=DELAY))
    backup.event("MASTER 9")
    _wait(lambda: standin.stats().requests_by_method.get("PATCH", 0) >= 1, "a write in flight")
    backup.event("BACKUP 9")
    master.event("MASTER 10")
    master.join()
    backup.join()
    assert _settled(standin) == ON_MASTER
    assert standin.address_report().overlap_moments == 0


def test_flapping_backup_bonder_then_master_turns_master(
        standin: StandInServer, nodes: tuple[Node, Node]) -> None:
    """The issue's second race, shortened: alternating events on the backup bonder, each
    MASTER run's writes held by the server, then MASTER on the master bonder."""
    master, backup = nodes
    standin.inject(Fault(method="PATCH", user=BACKUP_USER, delay=DELAY))
    for number in range(10):
        backup.event("MASTER 9" if number % 2 == 0 else "BACKUP 9")
        time.sleep(0.03)
    master.event("MASTER 10")
    master.join()
    backup.join()
    assert _settled(standin) == ON_MASTER
    assert standin.address_report().overlap_moments == 0


def test_peer_stopped_mid_run_is_repaired_by_the_settle_window(
        standin: StandInServer, nodes: tuple[Node, Node]) -> None:
    """STOP hands nothing back (the peer may be down): the master bonder's settle window
    sees the backup bonder's late writes land and repairs them."""
    master, backup = nodes
    standin.inject(Fault(method="PATCH", user=BACKUP_USER, delay=DELAY))
    backup.event("MASTER 9")
    _wait(lambda: standin.stats().requests_by_method.get("PATCH", 0) >= 1, "a write in flight")
    backup.event("STOP 9")
    master.event("MASTER 10")
    master.join()
    backup.join()
    assert _settled(standin) == ON_MASTER
    result = master.results[0]
    assert result is not None
    assert result.converged
    assert result.done  # repaired in the window


def test_startup_master_recorded_after_a_later_backup_changes_nothing(
        standin: StandInServer, nodes: tuple[Node, Node], tmp_path: Path) -> None:
    """keepalived forks MASTER, then BACKUP 31 ms later; the MASTER hook is slow to start
    and records second. The fork order, not the recording order, decides."""
    _, backup = nodes
    assert backup.config.source is not None
    env = {**os.environ, "BONDHA_CONFIG": str(backup.config.source), "BONDHA_SYSLOG": "0"}
    hook = [sys.executable, "-m", "bondha", "notify", "INSTANCE", "VI_1"]
    slow = subprocess.Popen(["sh", "-c", 'sleep 0.6; exec "$0" "$@"', *hook, "MASTER", "9"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.031)
    quick = subprocess.run([*hook, "BACKUP", "9"], env=env, capture_output=True, text=True,
                           timeout=60, check=False)
    _, err = slow.communicate(timeout=60)
    assert (quick.returncode, slow.returncode) == (0, 0), quick.stderr + err
    assert "was emitted by keepalived before event 1" in err
    assert placement(standin) == ON_MASTER
    assert standin.stats().requests_by_method.get("PATCH", 0) == 0


def test_a_settle_read_that_fails_leaves_the_run_converged(
        server: StandInServer, config: Config) -> None:
    """The run verified; a read of its settle window that fails is no sign of a change."""
    cfg = attrs.evolve(config, ha=attrs.evolve(config.ha, settle=0.3, deadline=1.0))
    # Two reads of the pair (preflight, verification) of 6 lists each pass; then none does.
    server.inject(Fault(method="GET", skip=12, status=503, body="<html>busy</html>"))
    # The CLI's tests may have set the bondha logger not to propagate: listen on it directly.
    seen, logger = _Lines(), logging.getLogger("bondha")
    level = logger.level
    logger.addHandler(seen)
    logger.setLevel(logging.WARNING)  # nor may a `-q` run have left it at ERROR
    try:
        result = notify(cfg, parse_notify_args(["INSTANCE", "VI_1", "MASTER", "9"]))
    finally:
        logger.removeHandler(seen)
        logger.setLevel(level)
    assert result is not None
    assert result.converged
    assert any("could not read the pair" in line for line in seen.lines)
    assert server.stats().requests_by_method["GET"] > 12  # the window did try


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
