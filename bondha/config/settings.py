"""What a validated configuration is: the server, the pair, and bondha's own settings.

Plain values (attrs, frozen); reading and checking them is :mod:`bondha.config.parse`'s job.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from ..model import Pair, Secret

__all__ = ["API_VERSIONS", "CONFIG_ENV", "CREDENTIALS_DIRECTORY_ENV", "CREDENTIAL_NAME",
           "DEFAULT_CONFIG_PATH", "PASSWORD_ENV", "ApiSettings", "Config", "HaSettings"]

DEFAULT_CONFIG_PATH = Path("/etc/bonding/swap-active-bond.conf")
CONFIG_ENV = "BONDHA_CONFIG"
# Where the password may come from besides the file (bondha.config.secrets).
PASSWORD_ENV = "BONDHA_PASSWORD"  # noqa: S105 -- a variable's name
CREDENTIALS_DIRECTORY_ENV = "CREDENTIALS_DIRECTORY"
CREDENTIAL_NAME = "bondha-password"
API_VERSIONS = (3, 4)  # the management API versions bondha can speak (same paths, see api_version)


@attrs.frozen
class ApiSettings:
    """How to reach and authenticate to the management server."""

    base_url: str  # e.g. "https://bonding.example.net" or "http://127.0.0.1:8080", no trailing /
    user: str
    password: Secret
    verify_ssl: bool = True
    timeout: float = 10.0
    attempts: int = 3
    attempt_delay: float = 5.0
    api_version: int = 3
    ca_bundle: str | None = None  # PEM file of the CAs to trust instead of the system's
    # Where the password came from: passwd, passwd_file, BONDHA_PASSWORD or credential.
    password_source: str = "passwd"  # noqa: S105 -- the option's name, not a password

    @property
    def api_root(self) -> str:
        """The URL every resource path hangs off, with a trailing slash."""
        return f"{self.base_url}/api/v{self.api_version}/"


@attrs.frozen
class HaSettings:
    """How bondha itself behaves: the optional ``[bondha]`` section, unknown to the old script."""

    pool_size: int = 16  # connections to the management server at most, and writes in flight
    deadline: float = 30.0  # seconds one reconcile may take, retries included
    # When the disable on the inactive bond fails for good: "hold" the enable (the address goes
    # dark) or "enable" anyway (both bonds claim it until the disable succeeds).
    on_disable_failure: str = "hold"
    state_dir: Path | None = None  # lock and event record; None: $BONDHA_STATE_DIR or /run/bondha
    notify_fifo: Path | None = None  # keepalived's notify_fifo, read by `bondha daemon`
    instances: tuple[str, ...] = ()  # VRRP instances the daemon follows; () means all
    reconcile_interval: float = 30.0  # seconds between the daemon's checks while MASTER
    # Seconds a hook's MASTER run keeps checking after it verified, so that a peer's writes
    # still in flight when it was superseded are seen and repaired (docs/reliability.md).
    settle: float = 2.0
    # Log, instead of refusing, a password file that group or others may read (see
    # bondha.credentials); for set-ups that must share the file with a group.
    allow_readable_secrets: bool = False
    # Prometheus textfile-collector metrics, rewritten after every reconcile (bondha.metrics).
    metrics_file: Path | None = None
    # The most bytes read of one answer of the server (a paginated list: all its pages), and
    # the most pages of one list: a broken or hostile server must not fill the memory.
    max_body: int = 8 * 1024 * 1024
    max_pages: int = 1000
    # Let plan/apply/notify disable and enable an object whose address has no copy on the
    # other bond. Off: such an object is left as it is, since disabling it can only make its
    # address dark (a typo in [bond], or the bonders' private link listed as floating).
    float_unpaired: bool = False
    # Announcing a moved connected IP (bondha.node.announce, docs/operators.md): rounds per
    # burst (0: off), seconds between them, seconds until the burst is sent once more (0: never).
    announce_count: int = 5
    announce_interval: float = 0.2
    announce_repeat_delay: float = 5.0

@attrs.frozen
class Config:
    """A validated configuration: the server, the pair, and what was worth a warning."""

    api: ApiSettings
    pair: Pair
    ha: HaSettings = HaSettings()
    source: Path | None = None
    warnings: tuple[str, ...] = ()
    secret_files: tuple[Path, ...] = ()  # files holding the password, whose modes are checked

