"""``bondha check``: the config, the account and the objects, and this bonder's keepalived.conf.

Reads and ``OPTIONS`` only, never a write. The report is a value with levels: its exit
code follows from them (3 the account cannot change an object, 2 the keepalived.conf
breaks the pair, else 0), not from the text printed.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from .config import Config
from .keepalived.check import Finding, Level, check_keepalived_file
from .reconciler import read_live
from .rights import AccessReport, check_access
from .status import pair_findings
from .text import plural

__all__ = ["CHECK_SCHEMA", "CheckReport", "KeepalivedCheck", "check", "check_keepalived"]

CHECK_SCHEMA = "bondha.check/1"
log = logging.getLogger("bondha")


@attrs.frozen
class KeepalivedCheck:
    """The findings in one keepalived.conf (``check --keepalived PATH``)."""

    path: str
    findings: tuple[Finding, ...]

    @property
    def broken(self) -> bool:
        return any(f.level is Level.ERROR for f in self.findings)

    def lines(self) -> list[str]:
        """One line per finding, ``PATH, line N: LEVEL: ...``, or one saying it is fine."""
        return [f.render(self.path) for f in self.findings] or [f"keepalived {self.path}: ok"]


def check_keepalived(path: str, config: Config) -> KeepalivedCheck:
    """Check the keepalived.conf at ``path`` against the pair's config (its path, its FIFO)."""
    fifo = config.ha.notify_fifo
    findings = check_keepalived_file(path, config_path=str(config.source),
                                     fifo=None if fifo is None else str(fifo))
    return KeepalivedCheck(path, tuple(findings))


@attrs.frozen
class CheckReport:
    """What ``bondha check`` found; ``render`` for people, ``to_json`` for automation."""

    config: Config
    objects: int  # configured objects the account could read
    findings: tuple[str, ...]  # config warnings and what the live pair shows
    access: AccessReport
    keepalived: KeepalivedCheck | None = None

    @property
    def exit_code(self) -> int:
        if not self.access.ok:
            return 3
        return 2 if self.keepalived is not None and self.keepalived.broken else 0

    def render(self) -> str:
        config, access = self.config, self.access
        lines = [f"config {config.source}: ok",
                 f"password from: {config.api.password_source}",
                 f"management server {config.api.base_url}: user {config.api.user!r} can read "
                 f"all {self.objects} configured objects on bonds "
                 f"{config.pair.master.bond_id} and {config.pair.backup.bond_id}",
                 access.render()]
        lines += [f"warning: {finding}" for finding in self.findings]
        if not access.ok:
            lines.append(f"check FAILED: {len(access.read_only)} objects cannot be changed")
        elif self.keepalived is not None and self.keepalived.broken:
            lines.append(f"check failed: {self.keepalived.path} breaks the pair")
        else:
            warned = len(self.findings) + len(access.warnings)
            lines.append("check passed" + (f" with {plural(warned, 'warning')}" if warned else ""))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"schema": CHECK_SCHEMA, "objects": self.objects, "warnings": list(self.findings),
                "password_source": self.config.api.password_source,
                "access": self.access.to_json(),
                **({"keepalived": self.keepalived.lines()} if self.keepalived else {})}


def check(config: Config, keepalived: KeepalivedCheck | None = None) -> CheckReport:
    """Ask the server what the account may do and read every configured object."""
    access = check_access(config)  # reads and OPTIONS only
    live = read_live(config)
    for ref in access.read_only:
        log.error("user %r may read but not change %s: a failover would fail there",
                  config.api.user, ref)
    return CheckReport(config, len(live), (*config.warnings, *pair_findings(config.pair, live)),
                       access, keepalived)
