"""The Ansible collection (contrib/ansible) run by ansible-playbook against a stand-in server.

One server holds a fleet of 50 pairs (100 bonds); the inventory has each pair as a host
on the local connection, half with their config as module parameters, half with a config
file. The shipped playbooks are the ones the docs show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bondha.model import Role
from bondha.testing import StandInServer
from tests.ansible_fleet import (
    PLAYBOOKS,
    FleetPair,
    bond_section,
    fleet,
    fleet_fixture,
    needs_move,
    run_playbook,
    write_inventory,
)

# Whole ansible-playbook runs on a shared 2-core machine: more than the default timeout.
pytestmark = pytest.mark.timeout(600)

PAIRS = fleet(50)
WRONG = 25  # this pair's password is wrong: it must fail alone, with the exit-3 meaning
FIXTURE = fleet_fixture(PAIRS)
PAIR_PLAYBOOK = PLAYBOOKS / "pair.yml"
AUDIT_PLAYBOOK = PLAYBOOKS / "audit.yml"


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer(FIXTURE) as running:
        yield running


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ansible")


@pytest.fixture(scope="module")
def inventory(server: StandInServer, work: Path) -> Path:
    return write_inventory(work, FIXTURE, PAIRS, server.url, wrong_password=frozenset({WRONG}))


def by_name(number: int) -> FleetPair:
    return PAIRS[number - 1]


def converged(server: StandInServer, pair: FleetPair) -> bool:
    active = pair.bond(pair.desired)
    mine = [r for r in server.objects() if r.bond_id in (pair.master_bond, pair.backup_bond)]
    return bool(mine) and all(r.enabled == (r.bond_id == active) for r in mine)


def bonds_written(server: StandInServer) -> set[int]:
    return {write.bond_id for write in server.stats().writes}


def test_fleet_check_apply_rerun(server: StandInServer, work: Path, inventory: Path) -> None:
    """One test, three runs in order: the fleet's state carries from one to the next."""
    wrong = by_name(WRONG).name
    to_move = {p.name for p in PAIRS if needs_move(FIXTURE, p) and p.number != WRONG}
    assert len(FIXTURE.bonds) == 100
    assert 10 < len(to_move) < 49  # the fleet mixes pairs to move and pairs already right
    assert needs_move(FIXTURE, by_name(WRONG))  # so its failure is not a no-op passing

    # Check mode: reads only, and `changed` exactly where the plan has writes.
    server.reset_stats()
    check = run_playbook(work, PAIR_PLAYBOOK, inventory, "--check", "--diff")
    stats = server.stats()
    assert stats.writes == ()
    assert set(stats.requests_by_method) == {"GET"}
    assert len(check.recap) == 50, check.stdout[-2000:]
    assert check.changed() == to_move
    assert check.failed() == {wrong}
    moved = sorted(to_move)[0]
    assert check.results[moved]["result"]["dry_run"] is True
    plan = check.results[moved]["plan"]
    assert plan["schema"] == "bondha.plan/1"
    assert plan["changes"]
    # --diff prints the plan's lines: one per floating address to move.
    assert f"Plan: make bond {plan['active_bond_id']} ({plan['active']}) active:" in check.stdout
    assert not any(converged(server, by_name(int(name[4:]))) for name in to_move)

    # Applied: every pair but the wrong-password one converges; that one is refused alone.
    server.reset_stats()
    apply = run_playbook(work, PAIR_PLAYBOOK, inventory)
    assert apply.returncode == 2  # ansible-playbook: a host failed
    assert apply.failed() == {wrong}
    assert apply.changed() == to_move
    refused = apply.results[wrong]
    assert refused["exit_code"] == 3
    assert refused["refused"] is True
    assert refused["status"] == 401
    assert "refused before any write" in refused["meaning"]
    assert "refused user" in refused["msg"]
    assert "not the password" not in json.dumps(refused)
    assert by_name(WRONG).master_bond not in bonds_written(server)
    assert by_name(WRONG).backup_bond not in bonds_written(server)
    for pair in PAIRS:
        if pair.number != WRONG:
            assert converged(server, pair), pair.name
            result = apply.results[pair.name]["result"]
            assert result["schema"] == "bondha.result/2"
            assert result["converged"] is True
    assert not converged(server, by_name(WRONG))

    # Again: nothing to do anywhere, and nothing written.
    server.reset_stats()
    again = run_playbook(work, PAIR_PLAYBOOK, inventory)
    assert again.changed() == set()
    assert again.failed() == {wrong}
    assert server.stats().writes == ()


def test_audit_names_each_verdict(tmp_path: Path) -> None:
    """One pair per kind of trouble; the audit fails exactly those, naming the verdict."""
    pairs = fleet(4)
    fixture = fleet_fixture(pairs)
    with StandInServer(fixture) as server:
        # pair01: one address dark; pair02: one on both bonds; pair03: all on the bond
        # that should not be active (it is to move to its backup); pair04: healthy.
        p1, p2, p3, _ = pairs
        first = [r for r in fixture.objects if r.bond_id in (p1.master_bond, p1.backup_bond)]
        server.set_enabled(first[0].bond_id, first[0].kind, first[0].id, False)
        second = [r for r in fixture.objects if r.bond_id == p2.backup_bond]
        server.set_enabled(second[1].bond_id, second[1].kind, second[1].id, True)
        assert p3.desired is Role.BACKUP
        assert p3.start == "master"
        inventory = write_inventory(tmp_path, fixture, pairs, server.url)
        server.reset_stats()
        audit = run_playbook(tmp_path, AUDIT_PLAYBOOK, inventory)
        assert server.stats().writes == ()
    assert audit.failed() == {"pair01", "pair02", "pair03"}
    assert audit.results["pair01"]["counts"]["dark"] == 1
    assert audit.results["pair02"]["counts"]["overlap"] == 1
    assert audit.results["pair03"]["counts"]["wrong_bond"] == 3
    assert "dark" in audit.results["pair01"]["msg"]
    assert audit.results["pair04"]["healthy"] is True


def test_settings_bondha_refuses_fail_and_unknown_ones_are_warned(tmp_path: Path) -> None:
    """pair01's [bondha] deadline is wrong: exit code 2's meaning, bondha's line naming the
    option, nothing asked of the server. pair02 sets an option bondha does not know: a
    warning, not silence."""
    pairs = fleet(2)
    fixture = fleet_fixture(pairs)
    with StandInServer(fixture) as server:
        inventory = write_inventory(tmp_path, fixture, pairs, server.url)
        hosts = json.loads(inventory.read_text())
        odd, even = hosts["pairs"]["hosts"]["pair01"], hosts["pairs"]["hosts"]["pair02"]
        odd["bondha_settings"] = {"deadline": "soon"}
        even["bondha_settings"] = {"colour": "red"}
        even["bondha_api"] = odd["bondha_api"]  # settings go with parameters, not a file
        even["bondha_bond"] = bond_section(fixture, pairs[1])
        even["bondha_password"] = odd["bondha_password"]
        del even["bondha_config"]
        inventory.write_text(json.dumps(hosts))
        run = run_playbook(tmp_path, PAIR_PLAYBOOK, inventory)
        bad_bonds = {pairs[0].master_bond, pairs[0].backup_bond}
        assert not bad_bonds & {w.bond_id for w in server.stats().writes}
    assert run.failed() == {"pair01"}
    result = run.results["pair01"]
    assert result["exit_code"] == 2
    assert "configuration error" in result["meaning"]
    assert any("deadline" in problem and "soon" in problem for problem in result["problems"])
    output = run.stdout + run.stderr
    assert "colour" in output
    assert "unknown option" in output
