"""A hostile world (issue 12): a hostile server, another local user, a broken disk, odd
arguments. Each command runs as its own process under a memory limit and a wall-clock
limit (a hang guard, not a timing assertion): what is asserted is the exit code and what
the process said."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bondha.config import load_config
from bondha.node.daemon import Daemon
from bondha.node.statedir import StateDir
from bondha.testing import Fixture, StandInServer
from bondha.testing.hostile import HostileServer
from tests.conftest import wait_for, write_config
from tests.helpers import active_bonds

MEMORY = 1 << 30  # bytes of address space each process may map
WALL = 60.0  # seconds before a process counts as hung
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def bounded(*args: str, config: Path | None = None, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    """``bondha ARGS`` in a process that may map at most MEMORY bytes and run WALL seconds."""
    full_env = {**os.environ, "BONDHA_SYSLOG": "0", **(env or {})}
    if config is not None:
        full_env["BONDHA_CONFIG"] = str(config)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    try:
        return subprocess.run([sys.executable, "-m", "bondha", *args], capture_output=True,
                              text=True, errors="surrogateescape", env=full_env,
                              timeout=WALL, check=False, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bondha {' '.join(args)} still running after {WALL:g}s")


def hostile_config(path: Path, fixture: Fixture, url: str, **ha: object) -> Path:
    text = fixture.config_text(url, timeout=1, attempts=2, attempt_delay=0.05)
    options = {"deadline": 2, **ha}
    text += "[bondha]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
    return write_config(path, text)


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[HostileServer]:
    with HostileServer(request.param, trickle_delay=0.5) as server:
        yield server


# -- a hostile server -----------------------------------------------------------------------

@pytest.mark.parametrize(("hostile", "code", "said"), [
    ("chunked", 1, "the answer is larger than 8388608 bytes ([bondha] max_body)"),
    ("huge", 1, "the answer is larger than 8388608 bytes ([bondha] max_body)"),
    ("trickle", 1, "in time"),
    ("pages", 1, "more than 50 pages ([bondha] max_pages)"),
    ("control", 3, r"denied \e[2J\e]0;owned\x07\x9b31m bondha: ERROR: forged line"),
], indirect=["hostile"])
def test_a_hostile_server_gets_a_bounded_clean_error(hostile: HostileServer, fixture: Fixture,
                                                     tmp_path: Path, code: int,
                                                     said: str) -> None:
    config = hostile_config(tmp_path / "c.conf", fixture, hostile.url, max_pages=50)
    out = bounded("apply", "--active", "backup", config=config)
    assert out.returncode == code, out.stderr
    assert said in out.stderr
    assert not RAW_CONTROLS.search(out.stdout + out.stderr)
    assert "internal error" not in out.stderr


@pytest.mark.parametrize("hostile", ["control-names"], indirect=True)
def test_addresses_with_control_characters_are_shown_escaped(hostile: HostileServer,
                                                             fixture: Fixture,
                                                             tmp_path: Path) -> None:
    config = hostile_config(tmp_path / "c.conf", fixture, hostile.url)
    out = bounded("status", config=config)
    assert r"10.0.0.1\e[2J\e]0;owned\x07\x9b31m\nbondha: ERROR: forged line" in out.stdout
    assert not RAW_CONTROLS.search(out.stdout + out.stderr)


@pytest.mark.parametrize("hostile", ["trickle"], indirect=True)
def test_a_run_stuck_on_a_trickling_read_yields_to_a_newer_event(
        hostile: HostileServer, fixture: Fixture, tmp_path: Path) -> None:
    """The lost failover: the first run held apply.lock on a trickling read, so the newer
    MASTER event waited for the lock, then failed without a write."""
    config = hostile_config(tmp_path / "c.conf", fixture, hostile.url, deadline=4)
    first: list[subprocess.CompletedProcess[str]] = []
    thread = threading.Thread(target=lambda: first.append(
        bounded("notify", "INSTANCE", "VI_1", "MASTER", "10", config=config)))
    thread.start()
    wait_for(lambda: hostile.requests > 0, "the first run to be reading")
    second = bounded("notify", "INSTANCE", "VI_1", "MASTER", "9", config=config)
    thread.join()
    assert first[0].returncode == 0, first[0].stderr
    assert "superseded by event 2" in first[0].stderr
    # The newer run had the lock: it failed on the server (trickling for it too), not on it.
    assert "holds the lock" not in second.stderr
    assert "in time" in second.stderr or "deadline" in second.stderr


# -- odd arguments, odd files -----------------------------------------------------------------

def test_a_notify_name_with_quotes_and_controls_round_trips(config_path: Path,
                                                            server: StandInServer) -> None:
    name = "it's \"VI 1\"\x1b[2J\nbondha: ERROR: forged"
    out = bounded("notify", "INSTANCE", name, "BACKUP", "9", config=config_path)
    assert out.returncode == 0, out.stderr
    assert not RAW_CONTROLS.search(out.stderr)
    view = bounded("status", "--local", config=config_path)
    assert view.returncode == 0, view.stderr
    assert r"\e[2J\nbondha: ERROR: forged" in view.stdout
    assert not RAW_CONTROLS.search(view.stdout + view.stderr)
    local = json.loads(bounded("--json", "status", "--local", config=config_path).stdout)
    assert local["keepalived"]["state"] == "BACKUP"


def test_a_huge_notify_name_is_refused(config_path: Path, state_dir: Path) -> None:
    out = bounded("notify", "INSTANCE", "N" * 130_000, "MASTER", "10", config=config_path)
    assert out.returncode == 2
    assert "is not a keepalived name (130000 characters; at most 256" in out.stderr
    assert len(out.stderr) < 1000
    assert not (state_dir / "journal.jsonl").exists()


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "200 MB"])
def test_a_config_that_is_no_config_file_is_exit_2(tmp_path: Path, kind: str) -> None:
    path = Path(kind)
    if kind == "fifo":
        path = tmp_path / "fifo.conf"
        os.mkfifo(path)
    elif kind == "200 MB":
        path = tmp_path / "big.conf"
        with path.open("wb") as stream:
            stream.truncate(200 * 1000 * 1000)
    out = bounded("--config", str(path), "notify", "INSTANCE", "VI_1", "MASTER", "10")
    assert out.returncode == 2, out.stderr
    assert str(path) in out.stderr
    assert "not a regular file" in out.stderr or "larger than a config file" in out.stderr


@pytest.mark.parametrize("content", ["", "{\"seq\": 1e400, \"event\": \"INSTANCE VI_1 MASTER 10\"}",
                                     "{\"seq\": 99999999999999999999999, \"event\": \"x\"}"])
def test_a_corrupt_event_record_is_set_aside_and_the_failover_goes_on(
        server: StandInServer, config_path: Path, state_dir: Path, content: str) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / "event").write_text(content)
    out = bounded("notify", "INSTANCE", "VI_1", "MASTER", "9", config=config_path)
    assert out.returncode == 0, out.stderr
    assert "set aside as event.corrupt-" in out.stderr
    assert active_bonds(server) == {3}
    assert [p.read_text() for p in state_dir.glob("event.corrupt-*")] == [content]
    assert StateDir(state_dir).current() is not None


def test_a_preflight_that_fails_records_its_requests(fixture: Fixture, tmp_path: Path,
                                                     state_dir: Path) -> None:
    with HostileServer("control") as server:
        config = hostile_config(tmp_path / "c.conf", fixture, server.url)
        out = bounded("notify", "INSTANCE", "VI_1", "MASTER", "10", config=config)
    assert out.returncode == 3
    records = [json.loads(line) for line in (state_dir / "journal.jsonl").read_text().splitlines()]
    assert records[-1]["result"] == "refused"
    assert records[-1]["requests"] >= 1


# -- a full disk ------------------------------------------------------------------------------

@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tiny tmpfs needs root (CI runs as root)")
    mount = tmp_path / "full"
    mount.mkdir(mode=0o700)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        (mount / "state").mkdir(mode=0o700)
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:  # fill it to the last block
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
        yield mount / "state"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_does_not_block_the_failover(server: StandInServer, config_path: Path,
                                                 full_disk: Path) -> None:
    out = bounded("notify", "INSTANCE", "VI_1", "MASTER", "9", config=config_path,
                  env={"BONDHA_STATE_DIR": str(full_disk)})
    assert out.returncode == 0, out.stderr
    assert active_bonds(server) == {3}
    assert "ERROR" in out.stderr
    assert "the failover goes on" in out.stderr


# -- the daemon's FIFO --------------------------------------------------------------------------

def test_fifo_framing_drops_an_overlong_line_and_keeps_the_next() -> None:
    from bondha.node.daemon import _LineFramer

    framer = _LineFramer(Path("fifo"))
    lines: list[bytes] = []
    for _ in range(160):  # 10 MB without a newline
        lines += framer.feed(b"x" * 65536)
    lines += framer.feed(b"tail\nINSTANCE \"VI_1\" MASTER 10\n")
    assert lines == [b'INSTANCE "VI_1" MASTER 10']
    # Garbage without a newline of its own, then keepalived's line: the line is kept.
    for _ in range(160):
        lines += framer.feed(b"y" * 65536)
    lines += framer.feed(b'yyINSTANCE "VI_1" MASTER 9\nINSTANCE "VI_1" BACKUP 9\n')
    assert lines[1:] == [b'INSTANCE "VI_1" MASTER 9', b'INSTANCE "VI_1" BACKUP 9']


@pytest.fixture
def fifo_daemon(server: StandInServer, fixture: Fixture, tmp_path: Path) -> Iterator[Daemon]:
    fifo = tmp_path / "notify.fifo"
    text = fixture.config_text(server.url, attempt_delay=0.01, timeout=1)
    text += f"[bondha]\ndeadline = 2\nreconcile_interval = 30\nnotify_fifo = {fifo}\n"
    daemon = Daemon(lambda: load_config(write_config(tmp_path / "d.conf", text)))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    wait_for(lambda: _held_open(fifo), "the daemon to open its FIFO")
    yield daemon
    daemon.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


def _held_open(path: Path) -> bool:
    """True when this process (the daemon's thread) holds the FIFO at ``path`` open."""
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                return True
        except OSError:
            continue
    return False


def _open_for_writing(path: Path) -> int | None:
    try:  # as keepalived would; fails (ENXIO) while no one reads this FIFO
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            raise
        return None


def test_daemon_sees_an_event_after_10_mb_of_garbage(server: StandInServer,
                                                    fifo_daemon: Daemon) -> None:
    writer = os.open(fifo_daemon.fifo, os.O_WRONLY)
    try:
        # Another writer's garbage without a newline, then keepalived's line.
        os.write(writer, b"x" * (10 * 1024 * 1024 + 1000) + b"INSTANCE \"VI_1\" MASTER 9\n")
        wait_for(lambda: active_bonds(server) == {3}, "the backup bond active")
    finally:
        os.close(writer)


def test_daemon_reads_a_fifo_recreated_before_any_writer(server: StandInServer,
                                                          fifo_daemon: Daemon) -> None:
    fifo = fifo_daemon.fifo
    fifo.unlink()  # while the daemon holds the old one open, no writer yet
    os.mkfifo(fifo, 0o600)
    os.chmod(fifo, 0o600)
    writers: list[int] = []

    def opened() -> bool:
        fd = _open_for_writing(fifo)
        if fd is not None:
            writers.append(fd)
        return bool(writers)

    wait_for(opened, "the daemon to open the new FIFO")
    try:
        os.write(writers[0], b'INSTANCE "VI_1" MASTER 9\n')
        wait_for(lambda: active_bonds(server) == {3}, "the backup bond active")
    finally:
        os.close(writers[0])


# -- another local user -------------------------------------------------------------------------

ATTACKER = "bondha-test-other"


@pytest.fixture(scope="module")
def other_user() -> Iterator[int]:
    """A throwaway second account (removed afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user (CI runs as root)")
    if shutil.which("useradd") is None:
        pytest.skip("no useradd on this machine")
    subprocess.run(["userdel", ATTACKER], capture_output=True, check=False)
    made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                           ATTACKER], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.decode().strip()}")
    import pwd
    try:
        yield pwd.getpwnam(ATTACKER).pw_uid
    finally:
        subprocess.run(["userdel", ATTACKER], capture_output=True, check=False)


def test_a_state_dir_under_a_parent_another_user_owns_is_refused(
        other_user: int, config_path: Path, tmp_path: Path) -> None:
    parent = tmp_path / "theirs"
    parent.mkdir(mode=0o755)
    os.chown(parent, other_user, other_user)
    state = parent / "state"
    state.mkdir(mode=0o700)  # ours, but they may rename it away and put their own there
    out = bounded("notify", "INSTANCE", "VI_1", "MASTER", "10", config=config_path,
                  env={"BONDHA_STATE_DIR": str(state)})
    assert out.returncode == 2
    assert f"{parent} (a parent) is owned by uid {other_user}" in out.stderr


def test_a_symlink_another_user_planted_in_a_sticky_dir_is_refused(
        other_user: int, config_path: Path, tmp_path: Path) -> None:
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    theirs = tmp_path / "their-state"
    theirs.mkdir(mode=0o700)
    link = sticky / "bondha"
    link.symlink_to(theirs)
    os.chown(link, other_user, other_user, follow_symlinks=False)
    out = bounded("notify", "INSTANCE", "VI_1", "MASTER", "10", config=config_path,
                  env={"BONDHA_STATE_DIR": str(link)})
    assert out.returncode == 2
    assert "is a symbolic link owned by uid" in out.stderr


def test_a_state_dir_swapped_under_a_running_process_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "state"
    state = StateDir(path).ensure()
    ticket = state.take_ticket("INSTANCE VI_1 MASTER 10")
    path.rename(tmp_path / "moved")
    path.mkdir(mode=0o700)  # the forger's copy, with a newer event
    (path / "event").write_text(json.dumps({"seq": 99, "event": "INSTANCE VI_1 MASTER 9"}))
    assert state.current() == ticket
    state.guard(ticket)()  # not superseded by the forged record


@pytest.mark.parametrize("how", ["owned by the other user", "mode 0644"])
def test_a_fifo_others_own_or_may_read_is_refused(other_user: int, config_path: Path,
                                                  tmp_path: Path, how: str) -> None:
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo, 0o600)
    if how == "mode 0644":
        fifo.chmod(0o644)  # as keepalived creates it
    else:
        os.chown(fifo, other_user, other_user)
    out = bounded("daemon", "--fifo", str(fifo), config=config_path)
    assert out.returncode == 2
    assert ("not by the daemon's user" if how != "mode 0644" else "mode 0644") in out.stderr


def test_the_metrics_file_mode_is_set_on_the_descriptor(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another user who may write in the metrics directory swaps the temporary file for a
    link to a private file as soon as it exists: a chmod by name would make that file 0644."""
    import tempfile

    from bondha.node.metrics import write_textfile

    victim = tmp_path / "private"
    victim.write_text("secret")
    victim.chmod(0o600)
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_swapped(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        os.unlink(name)  # the attacker wins the race at its earliest moment
        os.symlink(victim, name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_swapped)
    write_textfile(tmp_path / "bondha.prom", "bondha_up 1\n")
    assert victim.stat().st_mode & 0o777 == 0o600
    assert victim.read_text() == "secret"
