"""A real HA pair: keepalived in two namespaces fails over, bondha moves the objects.

The scenarios of docs/operators.md, run for real: the keepalived.conf is what
``bondha keepalived-config`` prints, the hook runs as a non-root script_user under
enable_script_security. Timing figures are reported by bench/keepalived_failover.py; here only
facts are asserted (who is active, no overlap, no write without a transition).
"""

from __future__ import annotations

import signal
import time

import pytest

from .testbed import BONDS, TestBed, measure, wait_for

pytestmark = pytest.mark.e2e

HOOK_TIMEOUT = 30  # keepalived takes ~4 s to notice a dead master; the hook a second


def hook_runs(bed: TestBed, state: str, priority: int) -> int:
    """How many hook runs for ``state``/``priority`` have ended, successfully or not."""
    return sum(1 for e in bed.events()
               if e.what == "exit" and e.args[2:] == (state, str(priority)))


def wait_hook(bed: TestBed, state: str, priority: int, count: int) -> None:
    wait_for(lambda: hook_runs(bed, state, priority) >= count, HOOK_TIMEOUT,
             f"hook run #{count} for {state} {priority}", bed.diagnostics)
    failed = bed.failed_hook_runs()
    assert not failed, f"hook failed: {failed}\n{bed.diagnostics()}"


def test_notify_hook_fails_over_and_back(bed: TestBed) -> None:
    confs = bed.start_notify_pair()
    config = bed.workdir / "swap-active-bond-master.conf"
    # 1. Start: the master bonder is master, its hook finds nothing to do.
    wait_hook(bed, "MASTER", 10, 1)
    wait_for(lambda: bed.transitions("backup", "BACKUP") >= 1, HOOK_TIMEOUT, "backup's BACKUP",
             bed.diagnostics)
    assert bed.active_bond() == BONDS["master"]
    start = bed.stats()
    assert start["writes"] == [], "a start on the active bond must write nothing"

    # 2. Hardware failure of the master: the backup takes over, the objects follow.
    bed.kill("keepalived-master")
    wait_hook(bed, "MASTER", 9, 1)
    assert bed.active_bond() == BONDS["backup"], bed.diagnostics()
    failover_event = next(e for e in bed.events() if e.args[2:] == ("MASTER", "9"))
    failover = measure(bed, failover_event.at, 0, start["address_report"])
    assert failover.writes == 6  # 3 disables on the master bond, 3 enables on the backup
    assert failover.overlap_moments == 0
    assert failover.last_write_after > 0

    # 3. The master comes back, preempts, and takes the objects back.
    after_failover = bed.stats()
    bed.start_keepalived("master", confs["master"])
    wait_hook(bed, "MASTER", 10, 2)
    wait_hook(bed, "BACKUP", 9, 1)
    assert bed.active_bond() == BONDS["master"], bed.diagnostics()
    back = bed.stats()
    assert len(back["writes"]) == 12
    assert back["address_report"]["overlap_moments"] == 0, "never enabled on both bonds"
    assert after_failover["address_report"]["overlap_moments"] == 0

    # 5. script_security: keepalived ran the hook as the script user and raised no warning,
    #    and bondha's own check agrees with the files as installed.
    for role in ("master", "backup"):
        log = bed.log(f"keepalived-{role}")
        assert "SECURITY VIOLATION" not in log, log
        assert "Unsafe permissions" not in log, log
    checked = bed.bondha_as_script_user("master", "--config", str(config), "check",
                                        "--keepalived", str(confs["master"]))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "error" not in checked.stdout, checked.stdout
    assert "check passed" in checked.stdout


def test_unsafe_hook_is_refused_by_keepalived(bed: TestBed) -> None:
    """What the docs warn about: a root hook others may change never runs, and check says so."""
    config = bed.start_server()
    hook = bed.install_hook()
    hook.chmod(0o777)
    conf = bed.render_keepalived("master", config, hook=hook, script_user="root")
    checked = bed.bondha_as_script_user("master", "--config", str(config), "check",
                                        "--keepalived", str(conf))
    assert "writable by group or others" in checked.stdout, checked.stdout
    assert checked.returncode == 2
    bed.start_keepalived("master", conf)
    wait_for(lambda: bed.transitions("master") >= 1, HOOK_TIMEOUT, "master's MASTER",
             bed.diagnostics)
    assert f"Unsafe permissions found for script '{hook}' - disabling" in bed.log(
        "keepalived-master")
    assert bed.events() == [], "keepalived ran a hook that anyone could have changed"


def test_daemon_converges_when_the_server_is_back_without_a_new_transition(
        bed: TestBed) -> None:
    config = bed.start_server()
    for role in ("master", "backup"):
        own = bed.role_config(role, config, fifo=True)
        bed.start_daemon(role, own)
        conf = bed.render_keepalived(role, own, fifo=bed.fifo(role))
        assert f"vrrp_notify_fifo {bed.fifo(role)}" in conf.read_text()
        checked = bed.bondha_as_script_user(role, "--config", str(own), "check",
                                            "--keepalived", str(conf))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        bed.start_keepalived(role, conf)
    wait_for(lambda: bed.transitions("master") >= 1, HOOK_TIMEOUT, "master's MASTER",
             bed.diagnostics)
    assert bed.active_bond() == BONDS["master"]

    # 4. The management server is unreachable while the master fails.
    bed.set_server_link(up=False)
    bed.kill("keepalived-master")
    wait_for(lambda: bed.transitions("backup") >= 1, HOOK_TIMEOUT, "backup's MASTER",
             bed.diagnostics)
    time.sleep(3)  # the daemon tries, and fails, while the server is away
    assert bed.active_bond() == BONDS["master"], "nothing could be written: server away"
    assert "no answer from" in bed.log("daemon-backup") or "cannot reach" in bed.log(
        "daemon-backup"), bed.log("daemon-backup")
    bed.set_server_link(up=True)
    wait_for(lambda: bed.active_bond() == BONDS["backup"], 60,
             "the daemon to converge once the server is back", bed.diagnostics)
    assert bed.transitions("backup") == 1, "converged without a new keepalived transition"
    assert bed.stats()["address_report"]["overlap_moments"] == 0

    # 3. With the server reachable, the master's return moves the objects back.
    bed.start_keepalived("master", bed.workdir / "keepalived-master.conf")
    wait_for(lambda: bed.active_bond() == BONDS["master"], HOOK_TIMEOUT,
             "the objects to move back", bed.diagnostics)
    assert bed.stats()["address_report"]["overlap_moments"] == 0
    for role in ("master", "backup"):
        process = bed.processes[f"daemon-{role}"]
        assert process.poll() is None, bed.log(f"daemon-{role}")
        bed.kill(f"daemon-{role}", signal.SIGTERM)
        assert process.returncode == 0, bed.log(f"daemon-{role}")
