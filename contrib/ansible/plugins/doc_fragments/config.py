"""The options every bondha.ha module takes to find the pair's configuration."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  config:
    description:
      - Path of the pair's C(swap-active-bond.conf) on the host the module runs on (the
        bonder, or the controller when delegated), as C(bondha --config) takes it.
      - When neither O(config) nor O(api) is given, C($BONDHA_CONFIG), else
        C(/etc/bonding/swap-active-bond.conf), as for the C(bondha) command.
      - Mutually exclusive with O(api) and O(bond).
    type: path
  password:
    description:
      - The API password, for example from an Ansible Vault variable. It is handed to bondha
        as C($BONDHA_PASSWORD), which bondha prefers to the file's C(passwd) and
        C(passwd_file). Never logged.
    type: str
  api:
    description:
      - The C([bondingadmin]) section, when there is no config file. Unset suboptions keep
        bondha's defaults.
    type: dict
    suboptions:
      host:
        description: The management server (name or URL).
        type: str
        required: true
      user:
        description: The API account (email address).
        type: str
        required: true
      passwd_file:
        description: A file on the host holding the password (mode 0400).
        type: path
      verify_ssl:
        description: Verify the server's TLS certificate.
        type: bool
      ca_bundle:
        description: PEM file of the CAs to trust instead of the system's.
        type: path
      timeout:
        description: Seconds to wait for each request.
        type: float
      attempts:
        description: Requests to make until one succeeds.
        type: int
      attempt_delay:
        description: Seconds between attempts.
        type: float
      api_version:
        description: The management API version.
        type: int
        choices: [3, 4]
  bond:
    description:
      - The C([bond]) section, when there is no config file.
    type: dict
    suboptions:
      master_bond_id:
        description: The master bond's id.
        type: int
        required: true
      backup_bond_id:
        description: The backup bond's id.
        type: int
        required: true
      master_connected_ip_ids:
        description: Floating connected IPs of the master bond.
        type: list
        elements: int
        default: []
      master_route_ids:
        description: Floating routes of the master bond.
        type: list
        elements: int
        default: []
      master_cpe_nat_ip_ids:
        description: Floating CPE NAT IPs of the master bond.
        type: list
        elements: int
        default: []
      backup_connected_ip_ids:
        description: Floating connected IPs of the backup bond.
        type: list
        elements: int
        default: []
      backup_route_ids:
        description: Floating routes of the backup bond.
        type: list
        elements: int
        default: []
      backup_cpe_nat_ip_ids:
        description: Floating CPE NAT IPs of the backup bond.
        type: list
        elements: int
        default: []
  settings:
    description:
      - The C([bondha]) section (for example C(deadline), C(pool_size),
        C(on_disable_failure)) when there is no config file. Unknown names are warned about.
    type: dict
    default: {}
  bondha_path:
    description:
      - The bondha single-file build (or a directory holding the C(bondha) package) to import
        bondha from. By default an importable bondha is used, else
        C(/usr/local/lib/bondha/bondha.pyz), where the P(bondha.ha.bonder#role) role puts it,
        else C(/usr/lib/bondha), where the Debian package puts it.
    type: path
requirements:
  - bondha (installed, or its single-file build on the host)
notes:
  - Runs on the bonder, or on the controller with C(delegate_to) (then the config file, the
    password file and bondha must be on the controller).
"""
