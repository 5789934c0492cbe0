"""The how-to's Testing section, run for real: a router on the customer's LAN pings the
floating IP through a hard failure of the master, its return, and bonding stopped.

Only facts are asserted: each ping gap ends (the router gets replies again, from the
bonder that should answer), the router's neighbour entry for the floating IP holds the
active bonder's MAC once the announcement went out, keepalived runs only while the
bonding software has the private IP up, no hook fails, the objects were never enabled on
both bonds. How long the gaps are is for bench/customer_outage.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .lanbed import FLOATING_IDS, PRIVATE_IDS, LanBed, open_lan_bed
from .testbed import CannotRun, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def lan(can_run: None) -> Iterator[LanBed]:
    try:
        with open_lan_bed(announce=True, advert_int=0.2) as booted:
            yield booted
    except CannotRun as exc:  # pragma: no cover - preflight already ran
        pytest.skip(str(exc))


def announced_by(lan: LanBed, role: str) -> None:
    """The router's entry points at ``role`` (the announcement's first round is out once
    the start hook has returned; the wait only covers the router's processing)."""
    wait_for(lambda: lan.router_neighbour() == lan.mac(role), 5,
             f"the router's neighbour entry to hold the {role}'s MAC",
             lambda: f"router has {lan.router_neighbour()}, {role} is {lan.mac(role)}")


def test_router_reaches_the_floating_ip_through_failure_return_and_bonding_stop(
        lan: LanBed) -> None:
    # Booted: keepalived was started by the private IP's hook, not by the bed.
    for role in ("master", "backup"):
        starts = lan.hook_runs(role, "start", PRIVATE_IDS[role])
        assert [r["hook"] for r in starts] == ["announce-connected-ip", "keepalived"]
        assert lan.keepalived_pid(role) is not None
    announced_by(lan, "master")

    # (a) Hard failure: the gap ends, and the router now sends to the backup's MAC.
    lan.fail_master()
    announced_by(lan, "backup")
    assert lan.bed.active_bond() == 3, lan.bed.diagnostics()

    # (b) The master boots, keepalived comes up with its private IP, preempts.
    lan.return_master()
    announced_by(lan, "master")
    assert lan.bed.active_bond() == 1, lan.bed.diagnostics()
    backup_stops = lan.hook_runs("backup", "stop", FLOATING_IDS["backup"])
    assert backup_stops, "the backup ran stop before removing the floating IP"

    # (c) systemctl stop bonding on the master: its stop hook stops keepalived, the backup
    #     takes over; bonding started again brings keepalived back and the master preempts.
    lan.stop_master_bonding()
    master_stops = lan.hook_runs("master", "stop", PRIVATE_IDS["master"])
    assert [r["hook"] for r in master_stops] == ["announce-connected-ip", "keepalived"]
    announced_by(lan, "master")
    assert lan.bed.active_bond() == 1, lan.bed.diagnostics()

    # keepalived followed the private IP's hook: boot, reboot, bonding stopped, restarted.
    systemctl = (lan.bed.workdir / "run-master" / "systemctl.log").read_text().split()[1::2]
    assert systemctl == ["stop", "start", "stop", "start", "stop", "stop", "start"]

    assert lan.failed_hooks() == []
    assert lan.bed.failed_hook_runs() == []
    assert lan.bed.stats()["address_report"]["overlap_moments"] == 0, "never on both bonds"
