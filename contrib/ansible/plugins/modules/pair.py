#!/usr/bin/python
"""Ansible module bondha.ha.pair: make one HA pair's chosen bond the active one."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pair
short_description: Make one bonder pair's master or backup bond the active one
description:
  - Moves the pair's floating routing objects (connected IPs, routes, CPE NAT IPs) on the
    management server so that they are enabled on the O(active) bond and disabled on the
    other one, through C(bondha.reconcile). Every object is read first; a refusal
    (authentication, permission, unknown id) aborts before any write; the writes are ordered
    per address (disable first); the result is read back and verified.
  - In check mode it only plans (reads, no writes); C(changed) then says whether the plan has
    writes. With C(--diff) the plan's lines are shown.
version_added: "0.1.0"
author: bondha
options:
  active:
    description: The bond to make active.
    type: str
    required: true
    choices: [master, backup]
extends_documentation_fragment:
  - bondha.ha.config
attributes:
  check_mode:
    support: full
    description: Plans only; nothing is written.
  diff_mode:
    support: full
    description: The plan, one line per floating address.
"""

EXAMPLES = r"""
- name: Move pair 17 to its backup bond for maintenance
  bondha.ha.pair:
    config: /etc/bonding/swap-active-bond.conf
    active: backup

- name: Make the master bond active, from the controller, password from the vault
  bondha.ha.pair:
    active: master
    password: "{{ vault_bondha_password }}"
    api:
      host: https://bonding.example.net
      user: ha@example.net
    bond:
      master_bond_id: 1
      master_connected_ip_ids: [1]
      backup_bond_id: 3
      backup_connected_ip_ids: [4]
  delegate_to: localhost
"""

RETURN = r"""
plan:
  description: The plan (schema C(bondha.plan/1), see bondha's docs/json.md).
  returned: when the pair could be read
  type: dict
result:
  description: >-
    What was done (schema C(bondha.result/2)): C(done), C(failed), C(skipped), C(remaining),
    C(converged), C(requests).
  returned: when the pair could be read
  type: dict
exit_code:
  description: >-
    On failure, the exit code C(bondha apply) would have returned: 1 not converged,
    2 configuration error, 3 refused before any write (authentication, permission, unknown id).
  returned: failure
  type: int
meaning:
  description: What O(exit_code) means.
  returned: failure
  type: str
bondha:
  description: The bondha that ran, C(version) and C(path) (its single-file build, or package).
  returned: always
  type: dict
log:
  description: bondha's log lines of this run.
  returned: always
  type: list
  elements: str
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
    "active": {"type": "str", "required": True, "choices": ["master", "backup"]},
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
    logs = capture_logs()
    role = bondha.Role(module.params["active"])
    try:
        config = load_config(module, bondha)
        result = bondha.reconcile(config, role, dry_run=module.check_mode)
    except bondha.ApplyError as exc:
        partial = exc.result
        fail_with(module, bondha, exc, logs, changed=bool(partial.done),
                  plan=partial.plan.to_json(), result=partial.to_json())
    except bondha.BondhaError as exc:
        fail_with(module, bondha, exc, logs, changed=False)
    plan = result.plan
    outcome: dict[str, object] = {
        "changed": bool(plan),
        "plan": plan.to_json(),
        "result": result.to_json(),
        "log": logs.lines,
        "bondha": {"version": bondha.__version__, "path": bondha.__file__},
        "msg": result.render().splitlines()[-1],
    }
    if module._diff:
        outcome["diff"] = {"prepared": plan.render() + "\n"}
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
