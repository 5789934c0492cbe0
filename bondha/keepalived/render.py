"""The keepalived.conf of one bonder of a bondha pair, as the docs describe it.

:func:`render_keepalived_conf` writes what docs/operators.md teaches (and what the
end-to-end test runs): unicast VRRP between the private IPs, priority 10 on the master,
``enable_script_security`` with a dedicated ``script_user``, and either the ``notify``
hook or a ``vrrp_notify_fifo`` for ``bondha daemon``. Pure.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

from ..errors import UsageError
from ..model import Role
from .events import MASTER_PRIORITY
from .install import DEFAULT_HOOK, DEFAULT_SCRIPT_USER, DEFAULT_TRACK_SCRIPT

__all__ = ["AUTH_PASS_MAX", "KeepalivedSettings", "render_keepalived_conf",
           "v3_filler_address"]

AUTH_PASS_MAX = 8  # VRRPv2 simple authentication: keepalived uses the first 8 characters
_SAFE_WORD = re.compile(r"[A-Za-z0-9_.:/@%+=,-]+")


def _word(what: str, text: str) -> str:
    """A value that goes into keepalived.conf unquoted: no spaces, quotes or comment marks."""
    if not _SAFE_WORD.fullmatch(text):
        raise UsageError(f"{what} {text!r}: use letters, digits and _.:/@%+=,- only")
    return text


@attrs.frozen
class KeepalivedSettings:
    """What differs between sites; everything else is the docs' fixed choice.

    Build it with :meth:`create`, which validates and explains.
    """

    role: Role
    interface: str
    src: str
    peer: str
    auth_pass: str
    priority: int
    router_id: int = 2
    instance: str = "VI_1"
    advert_int: float = 1.0
    track_script: str | None = DEFAULT_TRACK_SCRIPT
    hook: str = DEFAULT_HOOK
    config_path: str | None = None  # None: the hook's default path, no --config argument
    fifo: str | None = None  # set: keepalived writes events here for `bondha daemon`
    script_user: str = DEFAULT_SCRIPT_USER
    # 3 for a sub-second advert_int (VRRPv2 counts whole seconds); v3 has no authentication.
    vrrp_version: int = 2

    @classmethod
    def create(
        cls,
        role: Role,
        interface: str,
        src: str,
        peer: str,
        auth_pass: str,
        *,
        priority: int | None = None,
        router_id: int = 2,
        instance: str = "VI_1",
        advert_int: float = 1.0,
        track_script: str | None = DEFAULT_TRACK_SCRIPT,
        hook: str = DEFAULT_HOOK,
        config_path: str | None = None,
        fifo: str | None = None,
        script_user: str = DEFAULT_SCRIPT_USER,
        vrrp_version: int | None = None,
    ) -> KeepalivedSettings:
        """Validated settings; a :class:`~bondha.errors.UsageError` names the bad option.

        ``vrrp_version`` None: 3 when ``advert_int`` is not a whole number of seconds, else 2.
        """
        if priority is None:
            priority = MASTER_PRIORITY if role is Role.MASTER else MASTER_PRIORITY - 1
        _check_priority_option(role, priority)
        src, peer = _check_addresses(src, peer)
        if not 1 <= router_id <= 255:
            raise UsageError(f"--router-id {router_id}: must be 1 to 255")
        vrrp_version = _check_vrrp_version(advert_int, vrrp_version, auth_pass)
        if vrrp_version == 3:
            auth_pass = ""
        elif not auth_pass or len(auth_pass) > AUTH_PASS_MAX:
            raise UsageError(f"--auth-pass: must be 1 to {AUTH_PASS_MAX} characters (VRRP "
                             "simple authentication ignores the rest)")
        if auth_pass and not _SAFE_WORD.fullmatch(auth_pass):  # not shown: it is a password
            raise UsageError("--auth-pass: use letters, digits and _.:/@%+=,- only")
        for option, value in (("--interface", interface), ("--instance", instance),
                              ("--script-user", script_user)):
            _word(option, value)
        for option, path in (("--hook", hook), ("--config", config_path), ("--fifo", fifo)):
            if path is not None:
                _word(option, path)
                if not path.startswith("/"):
                    raise UsageError(f"{option} {path!r}: keepalived needs an absolute path")
        if track_script is not None and ('"' in track_script or not track_script.startswith("/")):
            raise UsageError(f"--track-script {track_script!r}: an absolute path and its "
                             "arguments, without quotes")
        return cls(role, interface, src, peer, auth_pass, priority, router_id, instance,
                   advert_int, track_script, hook, config_path, fifo, script_user,
                   vrrp_version)

    @property
    def notify_command(self) -> str:
        """The hook and, when the config is not at its default path, ``--config PATH``."""
        return self.hook + (f" --config {self.config_path}" if self.config_path else "")


_V3_MAX_ADVERT = 40.95  # VRRPv3 carries the interval in 12 bits of centiseconds


def _check_vrrp_version(advert_int: float, version: int | None, auth_pass: str) -> int:
    whole = advert_int == int(advert_int)
    if version is None:
        version = 2 if whole else 3
    if version == 2:
        if not whole or not 1 <= advert_int <= 255:
            raise UsageError(f"--advert-int {advert_int:g}: VRRPv2 takes whole seconds from 1 "
                             "to 255; for sub-second detection use --vrrp-version 3")
        return 2
    if version != 3:
        raise UsageError(f"--vrrp-version {version}: must be 2 or 3")
    if not 0.01 <= advert_int <= _V3_MAX_ADVERT or round(advert_int * 100, 6) % 1:
        raise UsageError(f"--advert-int {advert_int:g}: VRRPv3 takes 0.01 to "
                         f"{_V3_MAX_ADVERT:g} seconds in steps of 0.01")
    if auth_pass:
        raise UsageError("--auth-pass: VRRPv3 has no authentication (RFC 5798 removed it); "
                         "drop --auth-pass, and keep VRRP on the private link only")
    return 3


def v3_filler_address(router_id: int) -> str:
    """The virtual address VRRPv3 adverts carry: the same on both bonders, one per router id."""
    return f"169.254.66.{router_id}"


def _check_priority_option(role: Role, priority: int) -> None:
    if role is Role.MASTER and priority != MASTER_PRIORITY:
        raise UsageError(f"--priority {priority}: the master bonder's priority must be "
                         f"{MASTER_PRIORITY}; bondha reads priority {MASTER_PRIORITY} "
                         "as 'the master bond'")
    if role is Role.BACKUP and not 1 <= priority < MASTER_PRIORITY:
        raise UsageError(f"--priority {priority}: the backup bonder's priority must be "
                         f"1 to {MASTER_PRIORITY - 1}")


def _check_addresses(src: str, peer: str) -> tuple[str, str]:
    addresses = []
    for option, text in (("--src", src), ("--peer", peer)):
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            raise UsageError(f"{option} {text!r}: not an IP address") from None
    if addresses[0] == addresses[1]:
        raise UsageError(f"--src and --peer are both {src}; the peer is the other bonder")
    if addresses[0].version != addresses[1].version:
        raise UsageError("--src and --peer must both be IPv4 or both IPv6")
    return str(addresses[0]), str(addresses[1])


def render_keepalived_conf(settings: KeepalivedSettings) -> str:
    """The keepalived.conf of one bonder, comments included."""
    s = settings
    other = "backup" if s.role is Role.MASTER else "master"
    lines = [
        f"# keepalived.conf of the {s.role.value} bonder of a bondha pair "
        "(rendered by `bondha keepalived-config`).",
        f"# The {other} bonder's differs in state, priority, unicast_src_ip and unicast_peer.",
        "global_defs {",
        "    # keepalived runs no script that anyone but root could change, and runs them",
        f"    # as {s.script_user}, the user that may read the bondha config (the password).",
        "    enable_script_security",
        f"    script_user {s.script_user}",
    ]
    if s.vrrp_version == 3:
        lines += [
            f"    # VRRPv3 (RFC 5798): adverts every {s.advert_int:g} s, a dead master noticed",
            "    # after about 3 of them; both bonders must speak the same version.",
            "    vrrp_version 3",
        ]
    if s.fifo:
        lines += [
            "    # keepalived writes each transition here; `bondha daemon` reads it, retries",
            "    # until the management server agrees, and sees events in order.",
            f"    vrrp_notify_fifo {s.fifo}",
        ]
    lines += ["}", ""]
    if s.track_script:
        lines += [
            "# The bonding service must answer, else this bonder goes to FAULT and the peer",
            "# takes over.",
            "vrrp_script chk_node {",
            f'    script "{s.track_script}"',
            "    interval 5",
            "    fall 2",
            "}",
            "",
        ]
    lines += [
        f"vrrp_instance {s.instance} {{",
        f"    interface {s.interface}",
        f"    state {s.role.value.upper()}",
        f"    # {MASTER_PRIORITY} marks the master bonder for bondha; the backup has 1 to "
        f"{MASTER_PRIORITY - 1}.",
        f"    priority {s.priority}",
        f"    virtual_router_id {s.router_id}",
        f"    advert_int {s.advert_int:g}",
        f"    unicast_src_ip {s.src}",
        "    unicast_peer {",
        f"        {s.peer}",
        "    }",
    ]
    if s.vrrp_version == 3:
        lines += [
            "    # keepalived's VRRPv3 needs a virtual address in its adverts; bondha moves no",
            "    # address through keepalived, so this link-local one only fills the advert",
            "    # (on lo, scope host: nothing on the network ever sees it).",
            "    virtual_ipaddress {",
            f"        {v3_filler_address(s.router_id)}/32 dev lo scope host",
            "    }",
        ]
    if s.vrrp_version == 2:
        lines += [
            "    authentication {",
            "        auth_type PASS",
            f"        auth_pass {s.auth_pass}",
            "    }",
        ]
    if s.track_script:
        lines += ["    track_script {", "        chk_node", "    }"]
    if not s.fifo:
        lines += [
            "    # Runs with TYPE NAME STATE PRIORITY appended; MASTER makes this bonder's",
            "    # bond active on the management server.",
            f'    notify "{s.notify_command}"',
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"
