"""The ``swap-active-bond.conf`` INI format, read unchanged, into a validated :class:`Config`.

Pure: reads a file, imports neither httpx nor tenacity.

A config that bondha accepts is one the old script would have acted on the same way;
everything doubtful is either an error (collected, all at once, in one
:class:`~bondha.errors.ConfigError`) or a warning in :attr:`Config.warnings`.
Each message is one line: ``<file>: [<section>] <option> = '<value>': <what is wrong>``.
The password's value never appears in a message, a warning or a repr.
"""

from __future__ import annotations

import configparser
import difflib
import ipaddress
import math
import os
import re
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import attrs

from .credentials import (
    CREDENTIAL_NAME,
    PASSWORD_ENV,
    SecretFileError,
    credential_path,
    read_secret_file,
)
from .errors import ConfigError
from .model import BondSide, Kind, Pair, Role, Secret

__all__ = [
    "API_VERSIONS",
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "ApiSettings",
    "Config",
    "HaSettings",
    "config_path",
    "load_api_settings",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = Path("/etc/bonding/swap-active-bond.conf")
CONFIG_ENV = "BONDHA_CONFIG"
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
    # Log, instead of refusing, a password file that group or others may read (see
    # bondha.credentials); for set-ups that must share the file with a group.
    allow_readable_secrets: bool = False
    # Prometheus textfile-collector metrics, rewritten after every reconcile (bondha.metrics).
    metrics_file: Path | None = None
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


def config_path(cli_value: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    """``--config``, else ``$BONDHA_CONFIG``, else the old script's path."""
    if cli_value:
        return Path(cli_value)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate the file at ``path``; raise ConfigError naming the problem.

    ``environ`` (default ``os.environ``) supplies ``$BONDHA_PASSWORD`` and
    ``$CREDENTIALS_DIRECTORY``, which take precedence over the file's password.
    """
    source = Path(path)
    return parse_config(_read_text(source), source=source, environ=environ)


def load_api_settings(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> ApiSettings:
    """Only ``[bondingadmin]``, validated: for ``bondha discover``, which writes ``[bond]``.

    ``[bond]`` may be absent or wrong; other sections are not looked at.
    """
    source = Path(path)
    report = _Report(str(source))
    sections = _read_ini(_read_text(source).removeprefix("\ufeff"), report.file)
    defaults = sections.pop(_DEFAULT, {})
    values = _Values(sections, defaults)
    env = os.environ if environ is None else environ
    password = (_read_password(report, values, env, source.parent)
                if values.has_section(_ADMIN) else None)
    api = _read_api(report, values, password, source.parent)
    if api is None or report.errors:
        raise ConfigError(*report.errors)
    return api


def _read_text(source: Path) -> str:
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, not a config file") from None
    except PermissionError:
        if source.is_dir():  # some platforms report a directory as "permission denied"
            raise ConfigError(f"{source}: is a directory, not a config file") from None
        raise ConfigError(f"{source}: cannot read config file: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The bad byte is not shown: it may be part of the password.
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{source}, line {line}: not UTF-8 text; save it as UTF-8") from None
    return text


def parse_config(
    text: str, source: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate INI text; ``source`` names the file in messages and anchors relative paths.

    ``environ`` as for :func:`load_config`.
    """
    report = _Report("<config>" if source is None else str(source))
    text = text.removeprefix("\ufeff")  # editors on other systems like to add a BOM
    sections = _read_ini(text, report.file)
    defaults = sections.pop(_DEFAULT, {})
    _warn_unknown(report, sections, defaults)
    values = _Values(sections, defaults)
    base_dir = source.parent if source is not None else Path()
    env = os.environ if environ is None else environ
    password = (_read_password(report, values, env, base_dir)
                if values.has_section(_ADMIN) else None)
    api = _read_api(report, values, password, base_dir)
    pair = _read_pair(report, values)
    ha = _read_ha(report, values)
    if api is None or pair is None or report.errors:
        raise ConfigError(*report.errors)
    secret_files = [] if password is None else list(password.files)
    if source is not None and values.get(_ADMIN, "passwd") is not None:
        secret_files.insert(0, source)  # it holds a password, used or not
    return Config(api=api, pair=pair, ha=ha, source=source, warnings=tuple(report.warnings),
                  secret_files=tuple(dict.fromkeys(secret_files)))


# --- the format --------------------------------------------------------------------------------

_ADMIN = "bondingadmin"
_BOND = "bond"
_HA = "bondha"
_DEFAULT = "DEFAULT"
# configparser's default section silently feeds every other section. A name no header can
# spell (a header is one line) makes [DEFAULT] an ordinary section, so that we can both honour
# it (the old script did) and warn about it.
_NO_DEFAULT_SECTION = "\n"
_SECRET_OPTIONS = frozenset({"passwd"})
_MAX_ID_DIGITS = 18  # ids fit a signed 64-bit integer; longer text is a typo, not an id


def _ids_option(role: Role, kind: Kind) -> str:
    return f"{role.value}_{kind.config_stem}_ids"


def _bond_option(role: Role) -> str:
    return f"{role.value}_bond_id"


_KNOWN: dict[str, tuple[str, ...]] = {
    _ADMIN: ("host", "user", "passwd", "passwd_file", "verify_ssl", "ca_bundle", "timeout",
             "attempts", "attempt_delay", "api_version"),
    _BOND: tuple(
        option
        for role in Role
        for option in (_bond_option(role), *(_ids_option(role, kind) for kind in Kind))
    ),
    _HA: tuple(attrs.fields_dict(HaSettings)),
}
_REQUIRED_HINT = {
    _ADMIN: "it sets host, user and passwd",
    _BOND: "it sets master_bond_id, backup_bond_id and the ids of the floating objects",
}


# --- collecting problems -----------------------------------------------------------------------


@attrs.define
class _Report:
    """Every error and warning found so far, so that one run shows them all."""

    file: str
    errors: list[str] = attrs.Factory(list)
    warnings: list[str] = attrs.Factory(list)

    def where(self, section: str, option: str | None = None, value: str | None = None) -> str:
        place = f"{self.file}: [{section}]"
        if option is not None:
            place += f" {option}"
            if value is not None and option not in _SECRET_OPTIONS:
                place += f" = {value!r}"
        return place

    def error(self, where: str, what: str) -> None:
        self.errors.append(f"{where}: {what}")

    def warn(self, where: str, what: str) -> None:
        self.warnings.append(f"{where}: {what}")


@attrs.frozen
class _Value:
    """One option's text and the section it was really read from (maybe [DEFAULT])."""

    section: str
    option: str
    text: str


@attrs.frozen
class _Values:
    """Option lookup with the old script's fallback to [DEFAULT]."""

    sections: Mapping[str, Mapping[str, str]]
    defaults: Mapping[str, str]

    def has_section(self, section: str) -> bool:
        return section in self.sections

    def get(self, section: str, option: str) -> _Value | None:
        own = self.sections.get(section, {})
        if option in own:
            return _Value(section, option, own[option])
        if option in self.defaults:
            return _Value(_DEFAULT, option, self.defaults[option])
        return None


class _Invalid(Exception):
    """A value that does not convert; the text says why, and never repeats the value."""

    def __init__(self, why: str, *, show_value: bool = True) -> None:
        super().__init__(why)
        #: False where the value itself may hold a credential (``https://user:pw@host``).
        self.show_value = show_value


# --- INI syntax --------------------------------------------------------------------------------


def _read_ini(text: str, file: str) -> dict[str, dict[str, str]]:
    """Sections as plain dicts, or a ConfigError naming the lines that are not INI."""
    parser = configparser.ConfigParser(
        interpolation=None,  # passwords may contain '%'
        strict=True,  # a repeated section or option is a mistake, not an override
        default_section=_NO_DEFAULT_SECTION,
    )
    try:
        parser.read_string(text, source=file)
    except configparser.Error as exc:
        # `from None`: configparser's own message quotes whole lines, the password's included.
        raise ConfigError(*_syntax_problems(exc, text, file)) from None
    return {name: dict(parser[name]) for name in parser.sections()}


def _syntax_problems(exc: configparser.Error, text: str, file: str) -> list[str]:
    lines = text.split("\n")  # configparser counts lines the same way
    if isinstance(exc, configparser.MissingSectionHeaderError):
        shown = _show_line(lines, exc.lineno)
        return [f"{file}, line {exc.lineno}: {shown} comes before the first [section] header"]
    if isinstance(exc, configparser.ParsingError):
        return [
            f"{file}, line {lineno}: cannot parse {_show_line(lines, lineno)}; "
            "expected 'option = value', a [section] header or a # comment"
            for lineno, _ in exc.errors
        ]
    lineno: int | None = getattr(exc, "lineno", None)
    at_line = f", line {lineno}" if lineno else ""
    if isinstance(exc, configparser.DuplicateSectionError):
        return [f"{file}{at_line}: [{exc.section}]: section appears twice"]
    if isinstance(exc, configparser.DuplicateOptionError):
        return [f"{file}{at_line}: [{exc.section}] {exc.option}: option set twice in one section"]
    return [f"{file}: not a valid INI file ({type(exc).__name__})"]


def _show_line(lines: list[str], lineno: int) -> str:
    """The line as written, unless it may be (part of) the password."""
    line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    owner = ""
    for earlier in reversed(lines[: lineno - 1]):
        # Skip blank and indented (continuation) lines to find the option this line follows.
        if earlier.strip() and not earlier[:1].isspace():
            owner = earlier
            break
    if "pass" in line.casefold() or owner.lstrip().casefold().startswith("passw"):
        return "a line (not shown: it may hold the password)"
    shown = line.strip()
    return repr(shown if len(shown) <= 60 else shown[:57] + "...")


def _warn_unknown(
    report: _Report, sections: Mapping[str, Mapping[str, str]], defaults: Mapping[str, str]
) -> None:
    """Ignored text is usually a typo: say so, and guess what was meant."""
    for section, options in sections.items():
        if section not in _KNOWN:
            hint = _did_you_mean(section, _KNOWN, template="[{}]")
            report.warn(report.where(section), f"unknown section, ignored{hint}")
            continue
        for option in options:
            if option in _KNOWN[section]:
                continue
            home = [other for other, known in _KNOWN.items() if option in known]
            hint = (
                f" (it belongs in [{home[0]}])"
                if home
                else _did_you_mean(option, _KNOWN[section], template="{}")
            )
            report.warn(report.where(section, option), f"unknown option, ignored{hint}")
    for option in defaults:
        where = report.where(_DEFAULT, option)
        users = [s for s, known in _KNOWN.items() if option in known]
        if not users:
            report.warn(where, "unknown option, ignored")
        elif option in sections.get(users[0], {}):
            report.warn(where, f"ignored: [{users[0]}] sets {option} itself")
        else:
            report.warn(
                where,
                f"[DEFAULT] applies to every section; used as [{users[0]}] {option}, "
                "better moved there",
            )


def _did_you_mean(name: str, known: Iterable[str], template: str) -> str:
    by_folded = {k.casefold(): k for k in known}
    close = difflib.get_close_matches(name.casefold(), list(by_folded), n=1)
    return f" (did you mean {template.format(by_folded[close[0]])}?)" if close else ""


# --- value conversion --------------------------------------------------------------------------

_T = TypeVar("_T")


def _required(report: _Report, values: _Values, section: str, option: str) -> _Value | None:
    value = values.get(section, option)
    if value is None:
        report.error(report.where(section, option), "required option is missing")
        return None
    if not value.text:
        report.error(report.where(value.section, option), "required, but empty")
        return None
    return value


def _convert(report: _Report, value: _Value, convert: Callable[[str], _T]) -> _T | None:
    try:
        return convert(value.text)
    except _Invalid as exc:
        shown = value.text if exc.show_value else None
        report.error(report.where(value.section, value.option, shown), str(exc))
        return None


def _optional(
    report: _Report,
    values: _Values,
    option: str,
    convert: Callable[[str], _T],
    default: _T,
    *,
    section: str = _ADMIN,
) -> _T:
    """The converted value, or the default when absent (or, after an error, as a stand-in)."""
    value = values.get(section, option)
    if value is None:
        return default
    if not value.text:
        shown = str(default).lower() if isinstance(default, bool) else f"{default:g}"
        report.error(
            report.where(value.section, option),
            f"is empty; remove the line to use the default ({shown})",
        )
        return default
    converted = _convert(report, value, convert)
    return default if converted is None else converted


def _boolean(text: str) -> bool:
    try:
        return configparser.ConfigParser.BOOLEAN_STATES[text.lower()]
    except KeyError:
        raise _Invalid("not a boolean; use true or false") from None


def _seconds(text: str, *, zero_ok: bool) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise _Invalid("not a number of seconds") from None
    if not math.isfinite(seconds):
        raise _Invalid("must be a finite number of seconds")
    if seconds < 0 or (seconds == 0 and not zero_ok):
        raise _Invalid("must be 0 seconds or more" if zero_ok else "must be more than 0 seconds")
    return seconds


def _timeout(text: str) -> float:
    return _seconds(text, zero_ok=False)


def _delay(text: str) -> float:
    return _seconds(text, zero_ok=True)


def _attempts(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", text):
        raise _Invalid("not a whole number")
    attempts = int(text)
    if attempts < 1:
        raise _Invalid("must be 1 or more")
    return attempts


def _positive_id(text: str) -> int:
    digits = text.lstrip("0")
    if not re.fullmatch(r"[0-9]+", text) or not digits:
        hint = " (comments must be on a line of their own)" if re.search("[#;]", text) else ""
        raise _Invalid(f"not a positive whole number{hint}")
    if len(digits) > _MAX_ID_DIGITS:
        raise _Invalid("too large to be an id")
    return int(digits)


# --- [bondingadmin] ----------------------------------------------------------------------------

_SCHEME_TYPO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")
_NETLOC = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>[^:]*))?")
_HOSTNAME = re.compile(r"[\w.-]+")
_API_SUFFIX = re.compile(r".*(/api/v[0-9]+)", re.IGNORECASE)


def _base_url(text: str) -> str:
    """``host`` as the old script took it (a name, https implied) or a base URL, normalised."""
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise _Invalid("contains whitespace or control characters")
    if "@" in text:
        raise _Invalid(
            "must not contain a user name or password; put those in user and passwd",
            show_value=False,
        )
    if "?" in text or "#" in text:
        raise _Invalid("must not contain a query ('?') or fragment ('#')", show_value=False)
    if "://" not in text:
        if _SCHEME_TYPO.match(text):
            raise _Invalid("not a URL; write https://name or just the server's name")
        text = "https://" + text  # the old script's form: a bare name, maybe with a port
    try:
        parts = urlsplit(text)
    except ValueError:
        hint = "; check the IPv6 address in brackets" if "[" in text else ""
        raise _Invalid(f"not a valid URL{hint}") from None
    if parts.scheme not in ("http", "https"):
        raise _Invalid(
            f"unsupported scheme {parts.scheme!r}; use https://, http:// or just the server's name"
        )
    host, port = _host_and_port(parts.netloc)
    path = parts.path.rstrip("/")
    api = _API_SUFFIX.fullmatch(path)
    if api:
        raise _Invalid(
            f"host is the server's address only; drop {api.group(1)!r} (bondha adds the API path)"
        )
    return f"{parts.scheme}://{host}{port}{path}"


def _host_and_port(netloc: str) -> tuple[str, str]:
    """The lower-cased host and ``:port`` (or ``""``), both checked."""
    match = _NETLOC.fullmatch(netloc)
    if match is None:
        raise _Invalid("an IPv6 address must be in brackets, e.g. [2001:db8::1]")
    host, port = match.group("host").lower(), match.group("port")
    if not host:
        raise _Invalid("no server name")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _Invalid(f"invalid IPv6 address {host!r}") from None
    elif not _HOSTNAME.fullmatch(host):
        raise _Invalid(f"invalid server name {host!r}")
    if port is None:
        return host, ""
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise _Invalid(f"invalid port {port!r}; expected 1 to 65535")
    return host, f":{int(port)}"


def _is_loopback(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    report: _Report, values: _Values, environ: Mapping[str, str], base_dir: Path
) -> _Password | None:
    """The first password source that is set (see bondha.credentials); the others are noted."""
    passwd = values.get(_ADMIN, "passwd")
    passwd_file = values.get(_ADMIN, "passwd_file")
    credential = credential_path(environ)
    from_env = environ.get(PASSWORD_ENV)
    if from_env == "":
        report.warn(f"{report.file}: ${PASSWORD_ENV}", "is set but empty; ignored")
    chosen: _Password | None = None
    if credential is not None:
        try:
            secret = read_secret_file(credential)
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
            secret = read_secret_file(path)
        except SecretFileError as exc:
            shown = "" if str(path) == passwd_file.text else f" ({path})"
            report.error(where, f"{exc}{shown}")
            return None
        chosen = _Password(Secret(secret), "passwd_file", (path,))
    if chosen is None:
        value = _required(report, values, _ADMIN, "passwd")
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


def _api_version(text: str) -> int:
    version = text.lower().removeprefix("v")
    if version not in {str(v) for v in API_VERSIONS}:
        raise _Invalid(f"must be {' or '.join(str(v) for v in API_VERSIONS)}")
    return int(version)


def _read_ca_bundle(report: _Report, values: _Values, base_dir: Path) -> str | None:
    """The CA file to trust, checked now so that a typo shows up in ``check``, not at 3 a.m."""
    value = values.get(_ADMIN, "ca_bundle")
    if value is None:
        return None
    where = report.where(value.section, "ca_bundle", value.text)
    if not value.text:
        report.error(where, "is empty; remove the line to trust the system's CAs")
        return None
    path = _resolve(base_dir, value.text)
    if not path.is_file():
        report.error(where, "no such file" if not path.exists() else "not a regular file")
        return None
    try:
        ssl.create_default_context(cafile=str(path))
    except PermissionError:
        report.error(where, "cannot read the file: permission denied")
        return None
    except (ssl.SSLError, OSError, ValueError):
        report.error(where, "holds no PEM certificate that can be loaded")
        return None
    return str(path)


def _read_api(
    report: _Report, values: _Values, password: _Password | None, base_dir: Path
) -> ApiSettings | None:
    if not values.has_section(_ADMIN):
        report.error(report.where(_ADMIN), f"missing section ({_REQUIRED_HINT[_ADMIN]})")
        return None
    host = _required(report, values, _ADMIN, "host")
    base_url = _convert(report, host, _base_url) if host else None
    user = _required(report, values, _ADMIN, "user")
    settings = ApiSettings(
        base_url=base_url or "",
        user=user.text if user else "",
        password=password.secret if password else Secret(""),
        verify_ssl=_optional(report, values, "verify_ssl", _boolean, _API_DEFAULTS.verify_ssl),
        timeout=_optional(report, values, "timeout", _timeout, _API_DEFAULTS.timeout),
        attempts=_optional(report, values, "attempts", _attempts, _API_DEFAULTS.attempts),
        attempt_delay=_optional(
            report, values, "attempt_delay", _delay, _API_DEFAULTS.attempt_delay
        ),
        api_version=_optional(
            report, values, "api_version", _api_version, _API_DEFAULTS.api_version
        ),
        ca_bundle=_read_ca_bundle(report, values, base_dir),
        password_source=password.source if password else _API_DEFAULTS.password_source,
    )
    verify = values.get(_ADMIN, "verify_ssl")
    if verify and not settings.verify_ssl:
        report.warn(
            report.where(verify.section, "verify_ssl", verify.text),
            "TLS certificate verification is off; whoever intercepts the connection can "
            "pose as the server and read the password (set ca_bundle to trust a "
            "self-signed server instead)",
        )
        if settings.ca_bundle:
            report.warn(report.where(_ADMIN, "ca_bundle"), "ignored while verify_ssl is off")
    if host and base_url and base_url.startswith("http:") and not _is_loopback(base_url):
        report.warn(
            report.where(host.section, "host", host.text),
            "plain http; the password crosses the network unencrypted",
        )
    return settings if host and user and password and base_url else None


# --- [bond] ------------------------------------------------------------------------------------


def _id_list(report: _Report, value: _Value | None) -> tuple[int, ...] | None:
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
            object_id = _positive_id(item)
        except _Invalid as exc:
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
    return f"{number} {kind.label}{'' if number == 1 else 's'}" if number else "none"


def _read_pair(report: _Report, values: _Values) -> Pair | None:
    if not values.has_section(_BOND):
        report.error(report.where(_BOND), f"missing section ({_REQUIRED_HINT[_BOND]})")
        return None
    bond_ids: dict[Role, int | None] = {}
    lists: dict[tuple[Role, Kind], tuple[int, ...] | None] = {}
    for role in Role:
        value = _required(report, values, _BOND, _bond_option(role))
        bond_ids[role] = _convert(report, value, _positive_id) if value else None
        for kind in Kind:
            lists[role, kind] = _id_list(report, values.get(_BOND, _ids_option(role, kind)))

    master_id, backup_id = bond_ids[Role.MASTER], bond_ids[Role.BACKUP]
    if master_id is not None and master_id == backup_id:
        report.error(
            f"{report.file}: [{_BOND}] master_bond_id, backup_bond_id",
            f"both are {master_id}; the master and the backup must be two different bonds",
        )
    for kind in Kind:
        _check_kind(report, kind, lists[Role.MASTER, kind], lists[Role.BACKUP, kind])
    if all(ids == () for ids in lists.values()):
        options = ", ".join(_ids_option(Role.MASTER, kind) for kind in Kind)
        report.error(
            f"{report.file}: [{_BOND}]",
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
    report: _Report,
    kind: Kind,
    master: tuple[int, ...] | None,
    backup: tuple[int, ...] | None,
) -> None:
    """Cross-check the master and backup lists of one kind."""
    options = f"{_ids_option(Role.MASTER, kind)}, {_ids_option(Role.BACKUP, kind)}"
    where = f"{report.file}: [{_BOND}] {options}"
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


# --- [bondha] ----------------------------------------------------------------------------------

_HA_DEFAULTS = HaSettings()


def _pool_size(text: str) -> int:
    number = _attempts(text)
    if number > 100:
        raise _Invalid("must be 100 or less; a management server is no load-test target")
    return number


def _read_ha(report: _Report, values: _Values) -> HaSettings:
    """The optional [bondha] section; absent means every default."""
    return HaSettings(
        pool_size=_optional(
            report, values, "pool_size", _pool_size, _HA_DEFAULTS.pool_size, section=_HA
        ),
        deadline=_optional(
            report, values, "deadline", _timeout, _HA_DEFAULTS.deadline, section=_HA
        ),
        on_disable_failure=_optional(
            report, values, "on_disable_failure", _disable_failure_policy,
            _HA_DEFAULTS.on_disable_failure, section=_HA,
        ),
        state_dir=_optional_path(report, values, "state_dir"),
        notify_fifo=_optional_path(report, values, "notify_fifo"),
        instances=_instances(report, values),
        reconcile_interval=_optional(
            report, values, "reconcile_interval", _interval, _HA_DEFAULTS.reconcile_interval,
            section=_HA,
        ),
        allow_readable_secrets=_optional(
            report, values, "allow_readable_secrets", _boolean,
            _HA_DEFAULTS.allow_readable_secrets, section=_HA,
        ),
        metrics_file=_metrics_file(report, values),
        announce_count=_optional(
            report, values, "announce_count", _announce_count, _HA_DEFAULTS.announce_count,
            section=_HA,
        ),
        announce_interval=_optional(
            report, values, "announce_interval", _announce_interval,
            _HA_DEFAULTS.announce_interval, section=_HA,
        ),
        announce_repeat_delay=_optional(
            report, values, "announce_repeat_delay", _announce_repeat_delay,
            _HA_DEFAULTS.announce_repeat_delay, section=_HA,
        ),
    )


def _announce_count(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,3}", text.strip()):
        raise _Invalid("not a whole number from 0 (off) to 100")
    count = int(text)
    if count > 100:
        raise _Invalid("must be 100 or less; a burst floods the customer's LAN")
    return count


def _announce_interval(text: str) -> float:
    seconds = _seconds(text, zero_ok=True)
    if seconds > 10:
        raise _Invalid("must be 10 seconds or less; the burst would outlast a neighbour cache")
    return seconds


def _announce_repeat_delay(text: str) -> float:
    seconds = _seconds(text, zero_ok=True)
    if seconds > 600:
        raise _Invalid("must be 600 seconds or less (0: no repeat)")
    return seconds


DISABLE_FAILURE_POLICIES = ("hold", "enable")


def _disable_failure_policy(text: str) -> str:
    if text.lower() not in DISABLE_FAILURE_POLICIES:
        raise _Invalid("must be hold (the safe default: never two bonds) or enable")
    return text.lower()


def _interval(text: str) -> float:
    seconds = _seconds(text, zero_ok=False)
    if seconds < 0.1:
        raise _Invalid("must be 0.1 seconds or more; a management server is no load-test target")
    return seconds


def _path(text: str) -> Path:
    if not text.startswith("/"):
        raise _Invalid("must be an absolute path (starting with /)")
    if any(not ch.isprintable() for ch in text):
        raise _Invalid("contains control characters")
    return Path(text)


def _optional_path(report: _Report, values: _Values, option: str) -> Path | None:
    value = values.get(_HA, option)
    if value is None or not value.text:
        return None  # blank: the default
    return _convert(report, value, _path)


def _metrics_file(report: _Report, values: _Values) -> Path | None:
    path = _optional_path(report, values, "metrics_file")
    if path is not None and path.suffix != ".prom":
        report.warn(report.where(_HA, "metrics_file", str(path)),
                    "does not end in .prom; node_exporter's textfile collector reads only "
                    "*.prom files")
    return path


_INSTANCE_NAME = re.compile(r"[^\s\"']+")


def _instances(report: _Report, values: _Values) -> tuple[str, ...]:
    """``instances = VI_1, VI_2``: the VRRP instances to follow; blank or absent: all."""
    value = values.get(_HA, "instances")
    if value is None or not value.text:
        return ()
    names: list[str] = []
    for number, name in enumerate((n.strip() for n in value.text.split(",")), start=1):
        if not _INSTANCE_NAME.fullmatch(name):
            what = "is empty (a stray comma?)" if not name else f"{name!r} is not an instance name"
            report.error(report.where(value.section, "instances", value.text),
                         f"item {number} {what}")
            return ()
        if name not in names:
            names.append(name)
    return tuple(names)
