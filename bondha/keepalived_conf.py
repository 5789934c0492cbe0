"""keepalived.conf for a bondha pair: render the one the docs describe, check an existing one.

:func:`render_keepalived_conf` writes what docs/operators.md teaches (and what the
end-to-end test runs): unicast VRRP between the private IPs, priority 10 on the master,
``enable_script_security`` with a dedicated ``script_user``, and either the ``notify``
hook or a ``vrrp_notify_fifo`` for ``bondha daemon``.

:func:`check_keepalived_text` finds the mistakes that break the pair in a file an
operator wrote by hand; :func:`check_script_file` applies keepalived's own
``script_security`` rules to the hook. Only the latter touches the file system.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import attrs

from .errors import UsageError
from .keepalived import DEFAULT_HOOK, DEFAULT_SCRIPT_USER, DEFAULT_TRACK_SCRIPT, MASTER_PRIORITY
from .model import Role

__all__ = [
    "DEFAULT_HOOK",
    "DEFAULT_SCRIPT_USER",
    "DEFAULT_TRACK_SCRIPT",
    "Finding",
    "KeepalivedSettings",
    "Level",
    "Node",
    "check_keepalived_file",
    "check_keepalived_text",
    "check_script_file",
    "parse_keepalived_text",
    "render_keepalived_conf",
]

_AUTH_PASS_MAX = 8  # VRRPv2 simple authentication: keepalived uses the first 8 characters
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
        elif not auth_pass or len(auth_pass) > _AUTH_PASS_MAX:
            raise UsageError(f"--auth-pass: must be 1 to {_AUTH_PASS_MAX} characters (VRRP "
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


# --- reading an existing file ------------------------------------------------------------------


@attrs.frozen
class Node:
    """One keyword line of keepalived.conf, with its block's lines when it opens one."""

    keyword: str
    args: tuple[str, ...]
    line: int
    children: tuple[Node, ...] | None = None

    def find(self, keyword: str) -> Node | None:
        return next(self.find_all(keyword), None)

    def find_all(self, keyword: str) -> Iterator[Node]:
        return (child for child in self.children or () if child.keyword == keyword)


def _tokens(text: str) -> Iterator[tuple[int, str]]:
    """(line, token) pairs; quoted strings are one token, comments (# or !) dropped."""
    for number, line in enumerate(text.splitlines(), start=1):
        for match in re.finditer(r'"([^"]*)"?|([{}])|([^\s{}"#!]+)|([#!].*)', line):
            quoted, brace, word, comment = match.groups()
            if comment is not None:
                break
            yield number, quoted if quoted is not None else (brace or word or "")


def parse_keepalived_text(text: str) -> tuple[Node, ...]:
    """The top-level nodes; unbalanced braces raise a UsageError naming the line."""
    open_blocks: list[tuple[list[Node], Node]] = []
    top: list[Node] = []
    words: list[tuple[int, str]] = []

    def here() -> list[Node]:
        return open_blocks[-1][0] if open_blocks else top

    def line_node() -> Node:
        node = Node(words[0][1], tuple(word for _, word in words[1:]), words[0][0])
        words.clear()
        return node

    for line, token in _tokens(text):
        if words and line != words[0][0]:
            here().append(line_node())
        if token == "{":  # noqa: S105 -- a brace, not a password
            open_blocks.append(([], line_node() if words else Node("", (), line)))
        elif token == "}":  # noqa: S105
            if words:
                here().append(line_node())
            if not open_blocks:
                raise UsageError(f"line {line}: '}}' closes no block")
            children, opener = open_blocks.pop()
            here().append(attrs.evolve(opener, children=tuple(children)))
        else:
            words.append((line, token))
    if words:
        here().append(line_node())
    if open_blocks:
        opener = open_blocks[-1][1]
        raise UsageError(f"line {opener.line}: block '{opener.keyword}' is never closed")
    return tuple(top)


class Level(enum.Enum):
    ERROR = "error"  # the pair does not fail over as bondha expects
    WARNING = "warning"  # works, but is unsafe or surprising


@attrs.frozen
class Finding:
    level: Level
    line: int | None
    message: str

    def render(self, source: str) -> str:
        where = f"{source}, line {self.line}" if self.line else source
        return f"{where}: {self.level.value}: {self.message}"


def _first(node: Node | None) -> str | None:
    return node.args[0] if node is not None and node.args else None


def check_keepalived_text(
    text: str, *, config_path: str | None = None, fifo: str | None = None
) -> list[Finding]:
    """The mistakes that break a bondha pair, in file order where a line is known.

    ``config_path``: the bondha config being checked, to compare with the hook's
    ``--config``; ``fifo``: bondha's ``notify_fifo``, when the daemon is meant to be used.
    """
    try:
        top = parse_keepalived_text(text)
    except UsageError as exc:
        return [Finding(Level.ERROR, None, f"cannot parse: {exc}")]
    found = _Findings()
    error, warn = found.error, found.warn
    for node in top:
        if node.keyword in ("include", "includet"):
            warn(node.line, f"{node.keyword} is not followed; check the included files too")
    globals_ = next((n for n in top if n.keyword == "global_defs"), Node("global_defs", (), 0, ()))
    fifos = {(_first(globals_.find(k)), globals_.find(k))
             for k in ("notify_fifo", "vrrp_notify_fifo") if globals_.find(k)}
    fifo_paths = {path for path, _ in fifos if path}
    if globals_.find("enable_script_security") is None:
        warn(globals_.line, "no enable_script_security: keepalived would run a hook "
             "that a non-root user can change, as root")
    user = _first(globals_.find("script_user"))
    if user in (None, "root"):
        warn(globals_.line, "no script_user (or root): the hook runs as root; set "
             "script_user to the user that may read the bondha config")
    if fifo and fifo not in fifo_paths:
        error(globals_.line, f"bondha's notify_fifo is {fifo} but keepalived writes "
              f"{'no FIFO' if not fifo_paths else ', '.join(sorted(fifo_paths))}")
    instances = [n for n in top if n.keyword == "vrrp_instance"]
    if not instances:
        error(None, "no vrrp_instance: keepalived never tells bondha anything")
    notified = [n for n in instances if n.find("notify") is not None]
    if len(notified) + (1 if fifo_paths else 0) > 1 or (len(instances) > 1 and fifo_paths):
        warn(None, "more than one vrrp_instance reports to bondha; each MASTER transition "
             "moves the floating objects")
    version = _first(globals_.find("vrrp_version")) or "2"
    for instance in instances:
        _check_instance(instance, found, notified=bool(fifo_paths), config_path=config_path,
                        version=_first(instance.find("version")) or version)
    return sorted(found.items, key=lambda f: f.line or 0)


@attrs.define
class _Findings:
    items: list[Finding] = attrs.Factory(list)

    def error(self, line: int | None, message: str) -> None:
        self.items.append(Finding(Level.ERROR, line or None, message))

    def warn(self, line: int | None, message: str) -> None:
        self.items.append(Finding(Level.WARNING, line or None, message))


def _check_instance(instance: Node, found: _Findings, *, notified: bool,
                    config_path: str | None, version: str = "2") -> None:
    name = _first(instance) or "?"
    for keyword in ("interface", "virtual_router_id"):
        if _first(instance.find(keyword)) is None:
            found.error(instance.line, f"vrrp_instance {name}: no {keyword}")
    nopreempt = instance.find("nopreempt")
    if nopreempt is not None:
        found.warn(nopreempt.line, f"vrrp_instance {name}: nopreempt keeps the backup active "
                   "after the master recovers; the how-to expects the master to take over again")
    advert = instance.find("advert_int")
    text = _first(advert)
    if advert is not None and version != "3" and text and not text.isdigit():
        found.error(advert.line, f"vrrp_instance {name}: advert_int {text} needs vrrp_version 3; "
                    "VRRPv2 counts whole seconds")
    auth = instance.find("authentication")
    auth_pass = _first(auth.find("auth_pass")) if auth else None
    if version == "3":
        if instance.find("virtual_ipaddress") is None:
            found.error(instance.line, f"vrrp_instance {name}: VRRPv3 without "
                        "virtual_ipaddress; keepalived refuses to run the instance")
    elif auth is None or auth_pass is None:
        found.warn(auth.line if auth else instance.line, f"vrrp_instance {name}: no "
                   "authentication; any host on the link can claim to be master")
    elif len(auth_pass) > _AUTH_PASS_MAX:
        found.warn(auth.line, f"vrrp_instance {name}: auth_pass longer than {_AUTH_PASS_MAX} "
                   "characters; only the first 8 count, make both bonders agree on those")
    _check_priority(instance, name, found)
    _check_unicast(instance, name, found)
    _check_notify(instance, name, found, notified=notified, config_path=config_path)


def _check_priority(instance: Node, name: str, found: _Findings) -> None:
    state_node, priority_node = instance.find("state"), instance.find("priority")
    state, text = _first(state_node), _first(priority_node)
    line = priority_node.line if priority_node else instance.line
    ranges = (f"set {MASTER_PRIORITY} on the master bonder, 1 to {MASTER_PRIORITY - 1} "
              "on the backup")
    if state not in ("MASTER", "BACKUP"):
        found.warn(state_node.line if state_node else instance.line, f"vrrp_instance {name}: "
                   f"state {state or 'missing'}; use MASTER on the master bonder and BACKUP "
                   "on the backup")
    if text is None or not text.isdigit():
        shown = "missing (keepalived uses 100)" if text is None else repr(text)
        found.error(line, f"vrrp_instance {name}: priority {shown}; {ranges}")
        return
    priority = int(text)
    if state == "MASTER" and priority != MASTER_PRIORITY:
        found.error(line, f"vrrp_instance {name}: state MASTER but priority {priority}; the "
                    f"master bonder's priority must be {MASTER_PRIORITY}, or bondha activates "
                    "the backup bond when it becomes master")
    elif state == "BACKUP" and priority == MASTER_PRIORITY:
        found.error(line, f"vrrp_instance {name}: state BACKUP but priority {MASTER_PRIORITY}; "
                    f"bondha reads priority {MASTER_PRIORITY} as the master bonder, give the "
                    f"backup 1 to {MASTER_PRIORITY - 1}")
    elif priority > MASTER_PRIORITY or priority < 1:
        found.error(line, f"vrrp_instance {name}: priority {priority}; {ranges}")


def _check_unicast(instance: Node, name: str, found: _Findings) -> None:
    peers = instance.find("unicast_peer")
    src_node = instance.find("unicast_src_ip")
    src = _first(src_node)
    addresses = [child.keyword for child in (peers.children or ())] if peers else []
    if not addresses:
        found.error(peers.line if peers else instance.line, f"vrrp_instance {name}: no "
                    "unicast_peer; the bonders must talk unicast between their private IPs")
    if src is None:
        found.warn(instance.line, f"vrrp_instance {name}: no unicast_src_ip; keepalived "
                   "picks the interface's first address")
    elif src in addresses and src_node is not None:
        found.error(src_node.line, f"vrrp_instance {name}: unicast_peer {src} is this "
                    "bonder's own unicast_src_ip; the peer is the other bonder")


def _check_notify(instance: Node, name: str, found: _Findings, *, notified: bool,
                  config_path: str | None) -> None:
    for keyword in ("notify_master", "notify_backup", "notify_fault"):
        node = instance.find(keyword)
        if node is not None and "swap-active-bond" in " ".join(node.args):
            found.error(node.line, f"vrrp_instance {name}: {keyword} runs the hook without "
                        "the TYPE NAME STATE PRIORITY arguments; use notify")
    notify = instance.find("notify")
    if notify is None:
        if not notified:
            found.error(instance.line, f"vrrp_instance {name}: no notify and no "
                        "vrrp_notify_fifo; bondha is never told about a transition")
        return
    words = " ".join(notify.args[:1]).split()
    if not words:
        found.error(notify.line, f"vrrp_instance {name}: notify names no script")
        return
    if not words[0].startswith("/"):
        found.error(notify.line, f"vrrp_instance {name}: notify {words[0]!r} is not an "
                    "absolute path; keepalived does not search PATH")
    if words[0].endswith("swap-active-bond.py"):
        found.warn(notify.line, f"vrrp_instance {name}: notify runs the old "
                   "swap-active-bond.py; point it at bondha's hook")
    given = words[words.index("--config") + 1] if "--config" in words[:-1] else None
    if config_path is not None and given is not None and given != config_path:
        found.warn(notify.line, f"vrrp_instance {name}: the hook reads {given}, not the "
                   f"checked config {config_path}")


def check_script_file(command: str, *, user_is_root: bool) -> list[str]:
    """keepalived's script_security rules for the script of ``command``, as problems.

    A script run as root must not be changeable by anyone else: it and every directory
    above it owned by root and not writable by group or others (a sticky directory such
    as /tmp is accepted, as keepalived does). Any script must exist and be executable.
    """
    words = command.split()
    if not words:
        return ["notify names no script"]
    path = Path(words[0])
    problems = []
    try:
        info = path.stat()
    except OSError as exc:
        return [f"{path}: {exc.strerror or exc}"]
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
        problems.append(f"{path}: not an executable file")
    resolved = Path(os.path.realpath(path))
    for part in (resolved, *resolved.parents):
        try:
            mode = part.stat()
        except OSError as exc:  # pragma: no cover - raced with a removal
            problems.append(f"{part}: {exc.strerror or exc}")
            continue
        sticky_dir = stat.S_ISDIR(mode.st_mode) and mode.st_mode & stat.S_ISVTX
        writable = mode.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir
        if mode.st_uid != 0 or writable:
            owner = "not owned by root" if mode.st_uid != 0 else "writable by group or others"
            problems.append(f"{part}: {owner}; keepalived's enable_script_security refuses "
                            f"{'this script' if user_is_root else 'it when run as root'}")
    return problems


def check_keepalived_file(
    path: str | os.PathLike[str], *, config_path: str | None = None, fifo: str | None = None
) -> list[Finding]:
    """:func:`check_keepalived_text` on a file, plus the script_security rules of its hooks."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return [Finding(Level.ERROR, None, f"cannot read: {reason or exc}")]
    findings = check_keepalived_text(text, config_path=config_path, fifo=fifo)
    try:
        top = parse_keepalived_text(text)
    except UsageError:
        return findings  # already reported
    globals_ = next((n for n in top if n.keyword == "global_defs"), None)
    user = _first(globals_.find("script_user")) if globals_ else None
    for instance in (n for n in top if n.keyword == "vrrp_instance"):
        notify = instance.find("notify")
        if notify is None or not notify.args:
            continue
        run_as = notify.args[1] if len(notify.args) > 1 else user
        findings.extend(
            Finding(Level.ERROR, notify.line, problem)
            for problem in check_script_file(notify.args[0], user_is_root=run_as in (None, "root"))
        )
    return sorted(findings, key=lambda f: f.line or 0)
