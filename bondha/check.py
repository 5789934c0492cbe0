"""``bondha check``: the config, the account and the objects, and this bonder's keepalived.conf.

Reads and ``OPTIONS`` only, never a write. The report is a value with levels: its exit
code follows from them (3 the account cannot change an object, 2 an object has no partner
on the other bond or the keepalived.conf breaks the pair, else 0), not from the text printed.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import attrs

from .config import Config
from .errors import NotFound
from .keepalived.check import Finding, Level, check_keepalived_file, vrrp_link_addresses
from .model import Kind, ObjectRef, RoutingObject
from .reconciler import read_live
from .rights import AccessReport, check_access
from .status import pair_findings, unpaired_problems
from .text import plural

__all__ = ["CHECK_SCHEMA", "CheckReport", "KeepalivedCheck", "check", "check_keepalived"]

CHECK_SCHEMA = "bondha.check/1"
log = logging.getLogger("bondha")


@attrs.frozen
class KeepalivedCheck:
    """The findings in one keepalived.conf (``check --keepalived PATH``)."""

    path: str
    findings: tuple[Finding, ...]
    # unicast_src_ip and unicast_peer addresses (line, address): the bonders' private link
    link_addresses: tuple[tuple[int, str], ...] = ()

    @property
    def broken(self) -> bool:
        return any(f.level is Level.ERROR for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.level is Level.WARNING for f in self.findings)

    def lines(self) -> list[str]:
        """One line per finding, ``PATH, line N: LEVEL: ...``, or one saying it is fine."""
        return [f.render(self.path) for f in self.findings] or [f"keepalived {self.path}: ok"]


def check_keepalived(path: str, config: Config) -> KeepalivedCheck:
    """Check the keepalived.conf at ``path`` against the pair's config (its path, its FIFO)."""
    fifo = config.ha.notify_fifo
    findings = check_keepalived_file(path, config_path=str(config.source),
                                     fifo=None if fifo is None else str(fifo))
    return KeepalivedCheck(path, tuple(findings), tuple(vrrp_link_addresses(path)))


@attrs.frozen
class CheckReport:
    """What ``bondha check`` found; ``render`` for people, ``to_json`` for automation."""

    config: Config
    objects: int  # configured objects the account could read
    findings: tuple[str, ...]  # config warnings and what the live pair shows
    access: AccessReport
    keepalived: KeepalivedCheck | None = None
    errors: tuple[str, ...] = ()  # what in the live pair a failover would turn into an outage

    @property
    def exit_code(self) -> int:
        if not self.access.ok:
            return 3
        return 2 if self.errors or (self.keepalived is not None and self.keepalived.broken) else 0

    def render(self) -> str:
        config, access = self.config, self.access
        lines = [f"config {config.source}: ok",
                 f"password from: {config.api.password_source}",
                 f"management server {config.api.base_url}: user {config.api.user!r} can read "
                 f"all {self.objects} configured objects on bonds "
                 f"{config.pair.master.bond_id} and {config.pair.backup.bond_id}",
                 access.render()]
        lines += [f"warning: {finding}" for finding in self.findings]
        lines += [f"error: {error}" for error in self.errors]
        if not access.ok:
            lines.append(f"check FAILED: {len(access.read_only)} objects cannot be changed")
        elif self.errors:
            lines.append(f"check failed: {plural(len(self.errors), 'error')} that a failover "
                         "would turn into an outage")
        elif self.keepalived is not None and self.keepalived.broken:
            lines.append(f"check failed: {self.keepalived.path} breaks the pair")
        else:
            warned = len(self.findings) + len(access.warnings)
            warned += self.keepalived.warnings if self.keepalived is not None else 0
            lines.append("check passed" + (f" with {plural(warned, 'warning')}" if warned else ""))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"schema": CHECK_SCHEMA, "objects": self.objects, "warnings": list(self.findings),
                "errors": list(self.errors),
                "password_source": self.config.api.password_source,
                "access": self.access.to_json(),
                **({"keepalived": self.keepalived.lines()} if self.keepalived else {})}


def check(config: Config, keepalived: KeepalivedCheck | None = None) -> CheckReport:
    """Ask the server what the account may do and read every configured object."""
    try:
        access = check_access(config)  # reads and OPTIONS only
    except NotFound:
        read_live(config)  # raises a NotFound naming every wrong bond and id, if it can
        raise
    live = read_live(config)
    for ref in access.read_only:
        log.error("user %r may read but not change %s: a failover would fail there",
                  config.api.user, ref)
    unpaired = unpaired_problems(config.pair, live)
    links = _floating_link(live, keepalived) if keepalived is not None else []
    # Opted in to floating them: the operator knows; still worth a line each.
    warnings = unpaired if config.ha.float_unpaired else []
    errors = links + ([] if config.ha.float_unpaired else unpaired)
    return CheckReport(config, len(live),
                       (*config.warnings, *pair_findings(config.pair, live), *warnings),
                       access, keepalived, tuple(errors))


def _floating_link(live: dict[ObjectRef, RoutingObject], keepalived: KeepalivedCheck) -> list[str]:
    """Floating connected IPs in whose network keepalived talks VRRP to the other bonder."""
    problems = []
    for obj in sorted(live.values(), key=lambda o: o.ref):
        if obj.ref.kind is not Kind.CONNECTED_IP or obj.address is None:
            continue
        try:
            network = ipaddress.ip_interface(obj.address).network
        except ValueError:
            continue
        for line, address in keepalived.link_addresses:
            try:
                inside = ipaddress.ip_address(address) in network
            except ValueError:
                continue
            if inside:
                problems.append(
                    f"{obj.ref} ({obj.address}) is listed as floating, but keepalived talks "
                    f"VRRP over it ({keepalived.path}, line {line}: {address}); disabling it "
                    f"would cut the bonders' link: remove its id from [bond]")
                break
    return problems
