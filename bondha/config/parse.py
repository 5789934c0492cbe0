"""The meaning of ``swap-active-bond.conf``: its text into a validated :class:`Config`.

Pure: the few things that need the file system (the systemd credential, a password file,
the CA bundle) are asked of a :class:`Files` that the caller hands in; the real one is
:data:`bondha.config.secrets.FILES`, used by :func:`bondha.config.load_config`.

A config that bondha accepts is one the old script would have acted on the same way;
everything doubtful is either an error (collected, all at once, in one
:class:`~bondha.errors.ConfigError`) or a warning in :attr:`Config.warnings`.
The password's value never appears in a message, a warning or a repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import attrs

from ..errors import ConfigError
from ..model import BondSide, Kind, Pair, Role, Secret
from ..text import plural
from .ini import (
    ADMIN,
    BOND,
    DEFAULT,
    HA,
    REQUIRED_HINT,
    Report,
    Value,
    Values,
    bond_option,
    ids_option,
    read_ini,
    warn_unknown,
)
from .settings import CREDENTIAL_NAME, PASSWORD_ENV, ApiSettings, Config, HaSettings
from .values import (
    INSTANCE_NAME,
    Invalid,
    as_announce_count,
    as_announce_interval,
    as_announce_repeat_delay,
    as_api_version,
    as_attempts,
    as_base_url,
    as_boolean,
    as_delay,
    as_disable_failure_policy,
    as_interval,
    as_max_pages,
    as_path,
    as_pool_size,
    as_positive_id,
    as_settle,
    as_size,
    as_timeout,
    convert_value,
    is_loopback,
    optional,
    required,
)

__all__ = ["Files", "SecretFileError", "parse", "parse_api", "parse_bond_ids"]


class SecretFileError(Exception):
    """Why a secret file cannot be used; the text never contains the file's content."""


class Files(Protocol):
    """What parsing needs from the file system, and nothing more."""

    def credential(self, environ: Mapping[str, str]) -> Path | None:
        """The systemd credential file when the unit passed one, else None."""

    def read_secret(self, path: Path) -> str:
        """The password held in ``path``; raises :class:`SecretFileError` saying why not."""

    def ca_bundle_problem(self, path: Path) -> str | None:
        """Why ``path`` cannot serve as the CA bundle, or None when it can."""


def parse(text: str, source: Path | None, environ: Mapping[str, str], files: Files) -> Config:
    """Validate INI text; ``source`` names the file in messages and anchors relative paths."""
    report = Report("<config>" if source is None else str(source))
    text = text.removeprefix("\ufeff")  # editors on other systems like to add a BOM
    sections = read_ini(text, report.file)
    defaults = sections.pop(DEFAULT, {})
    warn_unknown(report, sections, defaults)
    values = Values(sections, defaults)
    base_dir = source.parent if source is not None else Path()
    password = (_read_password(report, values, environ, base_dir, files)
                if values.has_section(ADMIN) else None)
    api = _read_api(report, values, password, base_dir, files)
    pair = _read_pair(report, values)
    ha = _read_ha(report, values)
    if api is None or pair is None or report.errors:
        raise ConfigError(*report.errors)
    secret_files = [] if password is None else list(password.files)
    if source is not None and values.get(ADMIN, "passwd") is not None:
        secret_files.insert(0, source)  # it holds a password, used or not
    return Config(api=api, pair=pair, ha=ha, source=source, warnings=tuple(report.warnings),
                  secret_files=tuple(dict.fromkeys(secret_files)))


def parse_api(text: str, source: Path, environ: Mapping[str, str], files: Files) -> ApiSettings:
    """Only ``[bondingadmin]``, validated; ``[bond]`` may be absent or wrong."""
    report = Report(str(source))
    sections = read_ini(text.removeprefix("\ufeff"), report.file)
    defaults = sections.pop(DEFAULT, {})
    values = Values(sections, defaults)
    password = (_read_password(report, values, environ, source.parent, files)
                if values.has_section(ADMIN) else None)
    api = _read_api(report, values, password, source.parent, files)
    if api is None or report.errors:
        raise ConfigError(*report.errors)
    return api


def parse_bond_ids(text: str, source: Path, flags: Mapping[Role, str]) -> dict[Role, int]:
    """``[bond] master_bond_id`` and ``backup_bond_id`` only (``discover`` without its flags).

    ``flags`` names the command-line option that would have given each id, for the message.
    """
    report = Report(str(source))
    sections = read_ini(text.removeprefix("\ufeff"), report.file)
    values = Values(sections, sections.pop(DEFAULT, {}))
    ids: dict[Role, int] = {}
    for role, flag in flags.items():
        value = values.get(BOND, bond_option(role))
        if value is None or not value.text:
            report.error(report.where(BOND, bond_option(role)),
                         f"not set, and no {flag} given; pass {flag}, or set it in [bond]")
            continue
        bond_id = convert_value(report, value, as_positive_id)
        if bond_id is not None:
            ids[role] = bond_id
    if report.errors:
        raise ConfigError(*report.errors)
    return ids


# Only to read the defaults from their one definition, the ApiSettings class.
_API_DEFAULTS = ApiSettings(base_url="", user="", password=Secret(""))


@attrs.frozen
class _Password:
    """The password in use, which source gave it, and the files that hold it."""

    secret: Secret
    source: str
    files: tuple[Path, ...] = ()


def _resolve(base_dir: Path, text: str) -> Path:
    """A path option: relative paths are relative to the config file's directory."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else base_dir / path


def _read_password(
    report: Report, values: Values, environ: Mapping[str, str], base_dir: Path, files: Files
) -> _Password | None:
    """The first password source that is set (see bondha.config.secrets); the others are noted."""
    passwd = values.get(ADMIN, "passwd")
    passwd_file = values.get(ADMIN, "passwd_file")
    credential = files.credential(environ)
    from_env = environ.get(PASSWORD_ENV)
    if from_env == "":
        report.warn(f"{report.file}: ${PASSWORD_ENV}", "is set but empty; ignored")
    chosen: _Password | None = None
    if credential is not None:
        try:
            secret = files.read_secret(credential)
        except SecretFileError as exc:
            report.error(f"{credential}: systemd credential {CREDENTIAL_NAME}", str(exc))
            return None
        chosen = _Password(Secret(secret), "credential")
    elif from_env:
        chosen = _Password(Secret(from_env), PASSWORD_ENV)
    elif passwd_file is not None:
        where = report.where(passwd_file.section, "passwd_file", passwd_file.text)
        if not passwd_file.text:
            report.error(where, "is empty; name the file that holds the password")
            return None
        path = _resolve(base_dir, passwd_file.text)
        try:
            secret = files.read_secret(path)
        except SecretFileError as exc:
            shown = "" if str(path) == passwd_file.text else f" ({path})"
            report.error(where, f"{exc}{shown}")
            return None
        chosen = _Password(Secret(secret), "passwd_file", (path,))
    if chosen is None:
        value = required(report, values, ADMIN, "passwd")
        if value is None and passwd is None:
            report.errors[-1] += (
                f"; or set passwd_file, ${PASSWORD_ENV} or the systemd credential "
                f"{CREDENTIAL_NAME}"
            )
        return None if value is None else _Password(Secret(value.text), "passwd")
    # The sources that lost: say so, so that a clear-text copy does not linger unnoticed.
    winner = "$" + chosen.source if chosen.source == PASSWORD_ENV else chosen.source
    if chosen.source == "credential":
        winner = f"the systemd credential {CREDENTIAL_NAME}"
    for loser in (passwd_file if chosen.source != "passwd_file" else None, passwd):
        if loser is not None and loser.text:
            hint = "; remove it from the file" if loser.option == "passwd" else ""
            report.warn(report.where(loser.section, loser.option), f"not used: the password "
                        f"comes from {winner}{hint}")
    return chosen


def _read_ca_bundle(report: Report, values: Values, base_dir: Path,
                    files: Files) -> str | None:
    """The CA file to trust, checked now so that a typo shows up in ``check``, not at 3 a.m."""
    value = values.get(ADMIN, "ca_bundle")
    if value is None:
        return None
    where = report.where(value.section, "ca_bundle", value.text)
    if not value.text:
        report.error(where, "is empty; remove the line to trust the system's CAs")
        return None
    path = _resolve(base_dir, value.text)
    problem = files.ca_bundle_problem(path)
    if problem is not None:
        report.error(where, problem)
        return None
    return str(path)


def _read_api(
    report: Report, values: Values, password: _Password | None, base_dir: Path, files: Files
) -> ApiSettings | None:
    if not values.has_section(ADMIN):
        report.error(report.where(ADMIN), f"missing section ({REQUIRED_HINT[ADMIN]})")
        return None
    host = required(report, values, ADMIN, "host")
    base_url = convert_value(report, host, as_base_url) if host else None
    user = required(report, values, ADMIN, "user")
    settings = ApiSettings(
        base_url=base_url or "",
        user=user.text if user else "",
        password=password.secret if password else Secret(""),
        verify_ssl=optional(report, values, "verify_ssl", as_boolean, _API_DEFAULTS.verify_ssl),
        timeout=optional(report, values, "timeout", as_timeout, _API_DEFAULTS.timeout),
        attempts=optional(report, values, "attempts", as_attempts, _API_DEFAULTS.attempts),
        attempt_delay=optional(
            report, values, "attempt_delay", as_delay, _API_DEFAULTS.attempt_delay
        ),
        api_version=optional(
            report, values, "api_version", as_api_version, _API_DEFAULTS.api_version
        ),
        ca_bundle=_read_ca_bundle(report, values, base_dir, files),
        password_source=password.source if password else _API_DEFAULTS.password_source,
    )
    verify = values.get(ADMIN, "verify_ssl")
    if verify and not settings.verify_ssl:
        report.warn(
            report.where(verify.section, "verify_ssl", verify.text),
            "TLS certificate verification is off; whoever intercepts the connection can "
            "pose as the server and read the password (set ca_bundle to trust a "
            "self-signed server instead)",
        )
        if settings.ca_bundle:
            report.warn(report.where(ADMIN, "ca_bundle"), "ignored while verify_ssl is off")
    if host and base_url and base_url.startswith("http:") and not is_loopback(base_url):
        report.warn(
            report.where(host.section, "host", host.text),
            "plain http; the password crosses the network unencrypted",
        )
    return settings if host and user and password and base_url else None


def _id_list(report: Report, value: Value | None) -> tuple[int, ...] | None:
    """The ids of one option (blank or absent: none), or None after reporting bad items."""
    if value is None or not value.text:
        return ()
    where = report.where(value.section, value.option, value.text)
    ids: list[int] = []
    ok = True
    for number, item in enumerate((item.strip() for item in value.text.split(",")), start=1):
        if not item:
            report.error(where, f"item {number} is empty (a stray comma?)")
            ok = False
            continue
        try:
            object_id = as_positive_id(item)
        except Invalid as exc:
            report.error(where, f"item {number} {item!r}: {exc}")
            ok = False
            continue
        if object_id in ids:
            report.error(where, f"item {number}: id {object_id} is listed twice")
            ok = False
            continue
        ids.append(object_id)
    return tuple(ids) if ok else None


def _count(number: int, kind: Kind) -> str:
    return plural(number, kind.label) if number else "none"


def _read_pair(report: Report, values: Values) -> Pair | None:
    if not values.has_section(BOND):
        report.error(report.where(BOND), f"missing section ({REQUIRED_HINT[BOND]})")
        return None
    bond_ids: dict[Role, int | None] = {}
    lists: dict[tuple[Role, Kind], tuple[int, ...] | None] = {}
    for role in Role:
        value = required(report, values, BOND, bond_option(role))
        bond_ids[role] = convert_value(report, value, as_positive_id) if value else None
        for kind in Kind:
            lists[role, kind] = _id_list(report, values.get(BOND, ids_option(role, kind)))

    master_id, backup_id = bond_ids[Role.MASTER], bond_ids[Role.BACKUP]
    if master_id is not None and master_id == backup_id:
        report.error(
            f"{report.file}: [{BOND}] master_bond_id, backup_bond_id",
            f"both are {master_id}; the master and the backup must be two different bonds",
        )
    for kind in Kind:
        _check_kind(report, kind, lists[Role.MASTER, kind], lists[Role.BACKUP, kind])
    if all(ids == () for ids in lists.values()):
        options = ", ".join(ids_option(Role.MASTER, kind) for kind in Kind)
        report.error(
            f"{report.file}: [{BOND}]",
            f"no floating object configured; set at least one of {options} "
            "and the matching backup_* option",
        )

    if master_id is None or backup_id is None:
        return None
    sides = {}
    for role, bond_id in ((Role.MASTER, master_id), (Role.BACKUP, backup_id)):
        ids = {kind: lists[role, kind] or () for kind in Kind}
        sides[role] = BondSide(
            bond_id=bond_id,
            connected_ip_ids=ids[Kind.CONNECTED_IP],
            route_ids=ids[Kind.ROUTE],
            cpe_nat_ip_ids=ids[Kind.CPE_NAT_IP],
        )
    return Pair(master=sides[Role.MASTER], backup=sides[Role.BACKUP])


def _check_kind(
    report: Report,
    kind: Kind,
    master: tuple[int, ...] | None,
    backup: tuple[int, ...] | None,
) -> None:
    """Cross-check the master and backup lists of one kind."""
    options = f"{ids_option(Role.MASTER, kind)}, {ids_option(Role.BACKUP, kind)}"
    where = f"{report.file}: [{BOND}] {options}"
    if master is None or backup is None:
        return  # already reported; a count would only add noise
    for object_id in sorted(set(master) & set(backup)):
        report.error(
            where,
            f"{kind.label} {object_id} is listed for both bonds; ids are unique on the server, "
            "so one of them is wrong",
        )
    if len(master) != len(backup):
        report.warn(
            where,
            f"master has {_count(len(master), kind)}, backup has {_count(len(backup), kind)}; "
            "accepted as the old script did, but check that no id is missing",
        )


_HA_DEFAULTS = HaSettings()


def _read_ha(report: Report, values: Values) -> HaSettings:
    """The optional [bondha] section; absent means every default."""
    return HaSettings(
        pool_size=optional(
            report, values, "pool_size", as_pool_size, _HA_DEFAULTS.pool_size, section=HA
        ),
        deadline=optional(
            report, values, "deadline", as_timeout, _HA_DEFAULTS.deadline, section=HA
        ),
        on_disable_failure=optional(
            report, values, "on_disable_failure", as_disable_failure_policy,
            _HA_DEFAULTS.on_disable_failure, section=HA,
        ),
        state_dir=_optional_path(report, values, "state_dir"),
        notify_fifo=_optional_path(report, values, "notify_fifo"),
        instances=_instances(report, values),
        reconcile_interval=optional(
            report, values, "reconcile_interval", as_interval, _HA_DEFAULTS.reconcile_interval,
            section=HA,
        ),
        settle=optional(report, values, "settle", as_settle, _HA_DEFAULTS.settle, section=HA),
        allow_readable_secrets=optional(
            report, values, "allow_readable_secrets", as_boolean,
            _HA_DEFAULTS.allow_readable_secrets, section=HA,
        ),
        metrics_file=_metrics_file(report, values),
        max_body=optional(
            report, values, "max_body", as_size, _HA_DEFAULTS.max_body, section=HA
        ),
        max_pages=optional(
            report, values, "max_pages", as_max_pages, _HA_DEFAULTS.max_pages, section=HA
        ),
        float_unpaired=optional(
            report, values, "float_unpaired", as_boolean, _HA_DEFAULTS.float_unpaired,
            section=HA,
        ),
        announce_count=optional(
            report, values, "announce_count", as_announce_count, _HA_DEFAULTS.announce_count,
            section=HA,
        ),
        announce_interval=optional(
            report, values, "announce_interval", as_announce_interval,
            _HA_DEFAULTS.announce_interval, section=HA,
        ),
        announce_repeat_delay=optional(
            report, values, "announce_repeat_delay", as_announce_repeat_delay,
            _HA_DEFAULTS.announce_repeat_delay, section=HA,
        ),
    )


def _optional_path(report: Report, values: Values, option: str) -> Path | None:
    value = values.get(HA, option)
    if value is None or not value.text:
        return None  # blank: the default
    return convert_value(report, value, as_path)


def _metrics_file(report: Report, values: Values) -> Path | None:
    path = _optional_path(report, values, "metrics_file")
    if path is not None and path.suffix != ".prom":
        report.warn(report.where(HA, "metrics_file", str(path)),
                    "does not end in .prom; node_exporter's textfile collector reads only "
                    "*.prom files")
    return path


def _instances(report: Report, values: Values) -> tuple[str, ...]:
    """``instances = VI_1, VI_2``: the VRRP instances to follow; blank or absent: all."""
    value = values.get(HA, "instances")
    if value is None or not value.text:
        return ()
    names: list[str] = []
    for number, name in enumerate((n.strip() for n in value.text.split(",")), start=1):
        if not INSTANCE_NAME.fullmatch(name):
            what = "is empty (a stray comma?)" if not name else f"{name!r} is not an instance name"
            report.error(report.where(value.section, "instances", value.text),
                         f"item {number} {what}")
            return ()
        if name not in names:
            names.append(name)
    return tuple(names)
