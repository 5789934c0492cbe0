#!/usr/bin/python
"""Ansible module bondha.ha.status: where each floating address of a pair is live, as facts."""

from __future__ import annotations

DOCUMENTATION = r"""
module: status
short_description: Audit one bonder pair, per floating address
description:
  - Reads the pair's floating routing objects from the management server (no writes) and
    gives each floating address a verdict, the one C(bondha status) shows -
    C(ok); C(overlap) (enabled on both bonds); C(dark) (enabled on neither);
    C(wrong_bond) (live on the bond that should not be active, see O(expected_active));
    C(unpaired) (configured on one bond only, it cannot float).
  - The pair is C(healthy) when every address is C(ok). Sets the fact C(bondha_status).
  - With O(fail_unhealthy=true) an unhealthy pair fails the host, so that a fleet audit is
    one playbook run whose recap lists the bad pairs.
version_added: "0.1.0"
author: bondha
options:
  expected_active:
    description:
      - The bond that should be active. Addresses live on the other bond are then
        C(wrong_bond). Unset, either bond is fine as long as one has each address.
    type: str
    choices: [master, backup]
  fail_unhealthy:
    description: Fail the host when any address is not C(ok).
    type: bool
    default: false
extends_documentation_fragment:
  - bondha.ha.config
attributes:
  check_mode:
    support: full
    description: It only reads, in check mode as otherwise.
  diff_mode:
    support: none
  facts:
    support: full
"""

EXAMPLES = r"""
- name: Audit every pair; the recap names the unhealthy ones
  bondha.ha.status:
    config: /etc/bonding/swap-active-bond.conf
    expected_active: master
    fail_unhealthy: true

- name: Read the status, decide later
  bondha.ha.status:
    config: /etc/bonding/swap-active-bond.conf
  register: audit

- name: Show the addresses that are not ok
  ansible.builtin.debug:
    var: audit.unhealthy
"""

RETURN = r"""
healthy:
  description: Every floating address is C(ok).
  returned: when the pair could be read
  type: bool
counts:
  description: How many addresses have each verdict.
  returned: when the pair could be read
  type: dict
addresses:
  description: >-
    One entry per floating address - C(kind), C(address), the C(master) and C(backup)
    objects (C(id), C(enabled)), C(live_on) (master, backup, both, neither) and C(verdict).
  returned: when the pair could be read
  type: list
  elements: dict
unhealthy:
  description: One line per address that is not C(ok), e.g. C(route 198.51.100.0/24 dark).
  returned: when the pair could be read
  type: list
  elements: str
findings:
  description: >-
    What else is wrong or odd about the pair, as bondha check says it (an address configured
    on one bond only, an id listed twice, an address dark or on both bonds).
  returned: when the pair could be read
  type: list
  elements: str
bondha:
  description: The bondha that ran, C(version) and C(path) (its single-file build, or package).
  returned: always
  type: dict
log:
  description: bondha's log lines of this run.
  returned: always
  type: list
  elements: str
ansible_facts:
  description: C(bondha_status), the C(bondha.status/2) document with C(expected_active).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bondha.ha.plugins.module_utils.common import (
    CONFIG_ARGUMENT_SPEC,
    CONFIG_MUTUALLY_EXCLUSIVE,
    CONFIG_REQUIRED_ONE_OF,
    CONFIG_REQUIRED_TOGETHER,
    capture_logs,
    fail_with,
    import_bondha,
    load_config,
)

ARGUMENT_SPEC = {
    "expected_active": {"type": "str", "choices": ["master", "backup"]},
    "fail_unhealthy": {"type": "bool", "default": False},
    **CONFIG_ARGUMENT_SPEC,
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=CONFIG_MUTUALLY_EXCLUSIVE,
        required_one_of=CONFIG_REQUIRED_ONE_OF,
        required_together=CONFIG_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    bondha = import_bondha(module)
    # Both come with bondha (its single-file build holds attrs too): importable only now.
    import attrs

    from bondha import status as views

    logs = capture_logs()
    expected = module.params["expected_active"]
    try:
        config = load_config(module, bondha)
        live = bondha.read_live(config)
    except bondha.BondhaError as exc:
        fail_with(module, bondha, exc, logs, changed=False)
    rows = views.address_status(config.pair, live)
    if expected is not None:
        rows = tuple(attrs.evolve(row, expected=bondha.Role(expected)) for row in rows)
    document = {**views.status_to_json(config.pair, rows), "expected_active": expected}
    unhealthy = [f"{row.kind.label} {row.address or '(no address)'} {row.verdict.value}"
                 for row in rows if not row.verdict.healthy]
    outcome = {
        "changed": False,
        "healthy": document["healthy"],
        "counts": document["counts"],
        "addresses": document["addresses"],
        "unhealthy": unhealthy,
        "findings": [*views.unpaired_problems(config.pair, live),
                     *views.pair_findings(config.pair, live)],
        "log": logs.lines,
        "bondha": {"version": bondha.__version__, "path": bondha.__file__},
    }
    pair = f"pair of bonds {config.pair.master.bond_id}/{config.pair.backup.bond_id}"
    if module.params["fail_unhealthy"] and unhealthy:
        module.fail_json(msg=f"{pair}: {len(unhealthy)} of {len(rows)} addresses not ok: "
                             + "; ".join(unhealthy), **outcome)
    module.exit_json(msg=f"{pair}: " + ("healthy" if not unhealthy else
                                        f"{len(unhealthy)} of {len(rows)} addresses not ok"),
                     ansible_facts={"bondha_status": document}, **outcome)


if __name__ == "__main__":
    main()
