"""Option values: text to numbers, booleans, URLs, paths; each problem said once, in the report.

Pure. A converter (``as_*``) raises :class:`Invalid` with the reason; :func:`convert_value`
turns that into one line of the report naming the option (and its value, unless the value
may hold a secret).
"""

from __future__ import annotations

import configparser
import ipaddress
import math
import re
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlsplit

from .ini import ADMIN, MAX_ID_DIGITS, Report, Value, Values
from .settings import API_VERSIONS

__all__ = ["DISABLE_FAILURE_POLICIES", "INSTANCE_NAME", "Invalid", "as_announce_count",
           "as_announce_interval", "as_announce_repeat_delay", "as_api_version", "as_attempts",
           "as_base_url", "as_boolean", "as_delay", "as_disable_failure_policy", "as_interval",
           "as_max_pages", "as_path", "as_pool_size", "as_positive_id", "as_seconds", "as_settle",
           "as_size", "as_timeout", "convert_value", "is_loopback", "optional", "required"]

class Invalid(Exception):
    """A value that does not convert; the text says why, and never repeats the value."""

    def __init__(self, why: str, *, show_value: bool = True) -> None:
        super().__init__(why)
        #: False where the value itself may hold a credential (``https://user:pw@host``).
        self.show_value = show_value


T = TypeVar("T")


def required(report: Report, values: Values, section: str, option: str) -> Value | None:
    value = values.get(section, option)
    if value is None:
        report.error(report.where(section, option), "required option is missing")
        return None
    if not value.text:
        report.error(report.where(value.section, option), "required, but empty")
        return None
    return value


def convert_value(report: Report, value: Value, convert: Callable[[str], T]) -> T | None:
    try:
        return convert(value.text)
    except Invalid as exc:
        shown = value.text if exc.show_value else None
        report.error(report.where(value.section, value.option, shown), str(exc))
        return None


def optional(
    report: Report,
    values: Values,
    option: str,
    convert: Callable[[str], T],
    default: T,
    *,
    section: str = ADMIN,
) -> T:
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
    converted = convert_value(report, value, convert)
    return default if converted is None else converted


def as_boolean(text: str) -> bool:
    try:
        return configparser.ConfigParser.BOOLEAN_STATES[text.lower()]
    except KeyError:
        raise Invalid("not a boolean; use true or false") from None


def as_seconds(text: str, *, zero_ok: bool) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise Invalid("not a number of seconds") from None
    if not math.isfinite(seconds):
        raise Invalid("must be a finite number of seconds")
    if seconds < 0 or (seconds == 0 and not zero_ok):
        raise Invalid("must be 0 seconds or more" if zero_ok else "must be more than 0 seconds")
    return seconds


def as_timeout(text: str) -> float:
    return as_seconds(text, zero_ok=False)


def as_delay(text: str) -> float:
    return as_seconds(text, zero_ok=True)


def as_attempts(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", text):
        raise Invalid("not a whole number")
    attempts = int(text)
    if attempts < 1:
        raise Invalid("must be 1 or more")
    return attempts


def as_positive_id(text: str) -> int:
    digits = text.lstrip("0")
    if not re.fullmatch(r"[0-9]+", text) or not digits:
        hint = " (comments must be on a line of their own)" if re.search("[#;]", text) else ""
        raise Invalid(f"not a positive whole number{hint}")
    if len(digits) > MAX_ID_DIGITS:
        raise Invalid("too large to be an id")
    return int(digits)


_SCHEME_TYPO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")
_NETLOC = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>[^:]*))?")
_HOSTNAME = re.compile(r"[\w.-]+")
_API_SUFFIX = re.compile(r".*(/api/v[0-9]+)", re.IGNORECASE)


def as_base_url(text: str) -> str:
    """``host`` as the old script took it (a name, https implied) or a base URL, normalised."""
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise Invalid("contains whitespace or control characters")
    if "@" in text:
        raise Invalid(
            "must not contain a user name or password; put those in user and passwd",
            show_value=False,
        )
    if "?" in text or "#" in text:
        raise Invalid("must not contain a query ('?') or fragment ('#')", show_value=False)
    if "://" not in text:
        if _SCHEME_TYPO.match(text):
            raise Invalid("not a URL; write https://name or just the server's name")
        text = "https://" + text  # the old script's form: a bare name, maybe with a port
    try:
        parts = urlsplit(text)
    except ValueError:
        hint = "; check the IPv6 address in brackets" if "[" in text else ""
        raise Invalid(f"not a valid URL{hint}") from None
    if parts.scheme not in ("http", "https"):
        raise Invalid(
            f"unsupported scheme {parts.scheme!r}; use https://, http:// or just the server's name"
        )
    host, port = _host_and_port(parts.netloc)
    path = parts.path.rstrip("/")
    api = _API_SUFFIX.fullmatch(path)
    if api:
        raise Invalid(
            f"host is the server's address only; drop {api.group(1)!r} (bondha adds the API path)"
        )
    return f"{parts.scheme}://{host}{port}{path}"


def _host_and_port(netloc: str) -> tuple[str, str]:
    """The lower-cased host and ``:port`` (or ``""``), both checked."""
    match = _NETLOC.fullmatch(netloc)
    if match is None:
        raise Invalid("an IPv6 address must be in brackets, e.g. [2001:db8::1]")
    host, port = match.group("host").lower(), match.group("port")
    if not host:
        raise Invalid("no server name")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise Invalid(f"invalid IPv6 address {host!r}") from None
    elif not _HOSTNAME.fullmatch(host):
        raise Invalid(f"invalid server name {host!r}")
    if port is None:
        return host, ""
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise Invalid(f"invalid port {port!r}; expected 1 to 65535")
    return host, f":{int(port)}"


def is_loopback(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def as_api_version(text: str) -> int:
    version = text.lower().removeprefix("v")
    if version not in {str(v) for v in API_VERSIONS}:
        raise Invalid(f"must be {' or '.join(str(v) for v in API_VERSIONS)}")
    return int(version)


def as_pool_size(text: str) -> int:
    number = as_attempts(text)
    if number > 100:
        raise Invalid("must be 100 or less; a management server is no load-test target")
    return number


_SIZE = re.compile(r"([0-9]{1,10})\s*(k|kib|m|mib)?", re.IGNORECASE)


def as_size(text: str) -> int:
    """Bytes, or KiB/MiB with a suffix: ``8M``, ``8 MiB``, ``512k``, ``65536``."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise Invalid("not a size (e.g. 8M, 512k or a number of bytes)")
    unit = {"": 1, "k": 1024, "m": 1024 * 1024}[(match.group(2) or "")[:1].lower()]
    size = int(match.group(1)) * unit
    if not 64 * 1024 <= size <= 1024 ** 3:
        raise Invalid("must be from 64k to 1024M")
    return size


def as_max_pages(text: str) -> int:
    number = as_attempts(text)
    if number > 1_000_000:
        raise Invalid("must be 1000000 or less")
    return number


DISABLE_FAILURE_POLICIES = ("hold", "enable")


def as_disable_failure_policy(text: str) -> str:
    if text.lower() not in DISABLE_FAILURE_POLICIES:
        raise Invalid("must be hold (the safe default: never two bonds) or enable")
    return text.lower()


def as_settle(text: str) -> float:
    seconds = as_seconds(text, zero_ok=True)
    if seconds > 300:
        raise Invalid("must be 300 seconds or less; checking longer is the daemon's job "
                      "(reconcile_interval)")
    return seconds


def as_interval(text: str) -> float:
    seconds = as_seconds(text, zero_ok=False)
    if seconds < 0.1:
        raise Invalid("must be 0.1 seconds or more; a management server is no load-test target")
    return seconds


def as_announce_count(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,3}", text.strip()):
        raise Invalid("not a whole number from 0 (off) to 100")
    count = int(text)
    if count > 100:
        raise Invalid("must be 100 or less; a burst floods the customer's LAN")
    return count


def as_announce_interval(text: str) -> float:
    seconds = as_seconds(text, zero_ok=True)
    if seconds > 10:
        raise Invalid("must be 10 seconds or less; the burst would outlast a neighbour cache")
    return seconds


def as_announce_repeat_delay(text: str) -> float:
    seconds = as_seconds(text, zero_ok=True)
    if seconds > 600:
        raise Invalid("must be 600 seconds or less (0: no repeat)")
    return seconds


def as_path(text: str) -> Path:
    if not text.startswith("/"):
        raise Invalid("must be an absolute path (starting with /)")
    if any(not ch.isprintable() for ch in text):
        raise Invalid("contains control characters")
    return Path(text)


INSTANCE_NAME = re.compile(r"[^\s\"']+")
