"""Checking a keepalived.conf for the mistakes that break a bondha pair.

:func:`check_keepalived_text` finds them in a file an operator wrote by hand (pure);
:func:`check_script_file` applies keepalived's own ``script_security`` rules to the hook,
and :func:`check_keepalived_file` reads the file: only these two touch the file system.
"""

from __future__ import annotations

import enum
import os
import pwd
import stat
from pathlib import Path

import attrs

from ..errors import UsageError
from .events import MASTER_PRIORITY
from .parse import Node, parse_keepalived_text
from .render import AUTH_PASS_MAX

__all__ = ["Finding", "Level", "check_keepalived_file", "check_keepalived_text",
           "check_script_file", "check_script_user", "vrrp_link_addresses"]


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
    elif len(auth_pass) > AUTH_PASS_MAX:
        found.warn(auth.line, f"vrrp_instance {name}: auth_pass longer than {AUTH_PASS_MAX} "
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
    else:
        problems += _interpreter_problems(path)
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


def _interpreter_problems(script: Path) -> list[str]:
    """The script's ``#!`` interpreter must exist and be executable, or the hook never runs."""
    try:
        with script.open("rb") as stream:
            first = stream.readline(4096)
    except OSError as exc:
        return [f"{script}: cannot read: {exc.strerror or exc}"]
    if not first.startswith(b"#!"):
        return []
    words = first[2:].decode("utf-8", "replace").split()
    if not words:
        return [f"{script}: line 1 '#!' names no interpreter"]
    interpreter = words[0]
    if not os.path.isfile(interpreter) or not os.access(interpreter, os.X_OK):
        return [f"{script}: its interpreter {interpreter} (line 1, #!) does not exist or is "
                "not executable; keepalived could not run the hook"]
    return []


def check_script_user(user: str, config_path: str | None) -> list[str]:
    """``script_user`` must name a user of this system, who must be able to read the config."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return [f"script_user {user} names no user on this system; keepalived would not run "
                "the hook"]
    if config_path is None or entry.pw_uid == 0:
        return []
    path = Path(config_path)
    try:
        info = path.stat()
    except OSError:
        return []  # bondha read it just now; raced with a removal
    groups = set(os.getgrouplist(user, entry.pw_gid))
    blocked = _unreadable_for(path, entry.pw_uid, groups)
    if blocked is None:
        return []
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    where = "" if blocked == path else f" (the directory {blocked} bars the way)"
    return [f"script_user {user} cannot read the bondha config {path}{where}: owner {owner}, "
            f"mode {stat.S_IMODE(info.st_mode):04o}; fix it with: chown {user} {path}"]


def _unreadable_for(path: Path, uid: int, groups: set[int]) -> Path | None:
    """The file, or the directory above it, that ``uid`` cannot read or pass; None when fine."""
    def allowed(info: os.stat_result, bits: tuple[int, int, int]) -> bool:
        if info.st_uid == uid:
            return bool(info.st_mode & bits[0])
        if info.st_gid in groups:
            return bool(info.st_mode & bits[1])
        return bool(info.st_mode & bits[2])

    absolute = Path(os.path.abspath(path))
    for directory in reversed(absolute.parents):
        try:
            if not allowed(directory.stat(), (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)):
                return directory
        except OSError:
            return directory
    try:
        ok = allowed(absolute.stat(), (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH))
    except OSError:
        return absolute
    return None if ok else path


def vrrp_link_addresses(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """(line, address) of every unicast_src_ip and unicast_peer: the bonders' private link.

    Empty when the file cannot be read or parsed (check_keepalived_file reports that).
    """
    try:
        top = parse_keepalived_text(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, UsageError):
        return []
    found = []
    for instance in (n for n in top if n.keyword == "vrrp_instance"):
        src = instance.find("unicast_src_ip")
        if src is not None and src.args:
            found.append((src.line, src.args[0]))
        peers = instance.find("unicast_peer")
        children = peers.children if peers is not None and peers.children else ()
        found += [(child.line, child.keyword) for child in children]
    return found


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
    user_node = globals_.find("script_user") if globals_ else None
    user = _first(user_node)
    users_checked: set[str] = set()
    if user is not None and user_node is not None:
        users_checked.add(user)
        findings.extend(Finding(Level.ERROR, user_node.line, problem)
                        for problem in check_script_user(user, config_path))
    for instance in (n for n in top if n.keyword == "vrrp_instance"):
        notify = instance.find("notify")
        if notify is None or not notify.args:
            continue
        run_as = notify.args[1] if len(notify.args) > 1 else user
        if run_as is not None and run_as not in users_checked:
            users_checked.add(run_as)
            findings.extend(Finding(Level.ERROR, notify.line, problem)
                            for problem in check_script_user(run_as, config_path))
        findings.extend(
            Finding(Level.ERROR, notify.line, problem)
            for problem in check_script_file(notify.args[0], user_is_root=run_as in (None, "root"))
        )
    if fifo:
        findings.extend(_fifo_findings(fifo))
    return sorted(findings, key=lambda f: f.line or 0)


def _fifo_findings(fifo: str) -> list[Finding]:
    """The FIFO itself: keepalived creates a missing one with mode 0644, readable by anyone."""
    from ..securepath import fifo_problem

    try:
        info = os.lstat(fifo)
    except FileNotFoundError:
        return [Finding(Level.WARNING, None, f"notify FIFO {fifo} does not exist yet: start "
                        "bondha daemon before keepalived, so that it creates it (mode 0600); "
                        "keepalived would make it with mode 0644, and another reader steals "
                        "its lines")]
    except OSError as exc:
        return [Finding(Level.ERROR, None, f"notify FIFO {fifo}: {exc.strerror or exc}")]
    # The owner is the daemon's user, which need not be the user running check.
    problem = fifo_problem(info, uid=info.st_uid)
    return [Finding(Level.ERROR, None, f"notify FIFO {fifo}: {problem}")] if problem else []
