"""The INI syntax of ``swap-active-bond.conf``: sections, options, and the report of problems.

Pure. Every error and warning is collected in a :class:`Report`, so that one run shows them
all; each is one line, ``<file>: [<section>] <option> = '<value>': <what is wrong>``, and
never shows the password.
"""

from __future__ import annotations

import configparser
import difflib
from collections.abc import Iterable, Mapping

import attrs

from ..errors import ConfigError
from ..model import Kind, Role
from .settings import HaSettings

__all__ = ["ADMIN", "BOND", "DEFAULT", "HA", "KNOWN", "MAX_ID_DIGITS", "REQUIRED_HINT",
           "SECRET_OPTIONS", "Report", "Value", "Values", "bond_option", "ids_option",
           "read_ini", "warn_unknown"]

# --- the format --------------------------------------------------------------------------------

ADMIN = "bondingadmin"
BOND = "bond"
HA = "bondha"
DEFAULT = "DEFAULT"
# configparser's default section silently feeds every other section. A name no header can
# spell (a header is one line) makes [DEFAULT] an ordinary section, so that we can both honour
# it (the old script did) and warn about it.
_NO_DEFAULT_SECTION = "\n"
SECRET_OPTIONS = frozenset({"passwd"})
MAX_ID_DIGITS = 18  # ids fit a signed 64-bit integer; longer text is a typo, not an id


def ids_option(role: Role, kind: Kind) -> str:
    return f"{role.value}_{kind.config_stem}_ids"


def bond_option(role: Role) -> str:
    return f"{role.value}_bond_id"


KNOWN: dict[str, tuple[str, ...]] = {
    ADMIN: ("host", "user", "passwd", "passwd_file", "verify_ssl", "ca_bundle", "timeout",
             "attempts", "attempt_delay", "api_version"),
    BOND: tuple(
        option
        for role in Role
        for option in (bond_option(role), *(ids_option(role, kind) for kind in Kind))
    ),
    HA: tuple(attrs.fields_dict(HaSettings)),
}
REQUIRED_HINT = {
    ADMIN: "it sets host, user and passwd",
    BOND: "it sets master_bond_id, backup_bond_id and the ids of the floating objects",
}



@attrs.define
class Report:
    """Every error and warning found so far, so that one run shows them all."""

    file: str
    errors: list[str] = attrs.Factory(list)
    warnings: list[str] = attrs.Factory(list)

    def where(self, section: str, option: str | None = None, value: str | None = None) -> str:
        place = f"{self.file}: [{section}]"
        if option is not None:
            place += f" {option}"
            if value is not None and option not in SECRET_OPTIONS:
                place += f" = {value!r}"
        return place

    def error(self, where: str, what: str) -> None:
        self.errors.append(f"{where}: {what}")

    def warn(self, where: str, what: str) -> None:
        self.warnings.append(f"{where}: {what}")


@attrs.frozen
class Value:
    """One option's text and the section it was really read from (maybe [DEFAULT])."""

    section: str
    option: str
    text: str


@attrs.frozen
class Values:
    """Option lookup with the old script's fallback to [DEFAULT]."""

    sections: Mapping[str, Mapping[str, str]]
    defaults: Mapping[str, str]

    def has_section(self, section: str) -> bool:
        return section in self.sections

    def get(self, section: str, option: str) -> Value | None:
        own = self.sections.get(section, {})
        if option in own:
            return Value(section, option, own[option])
        if option in self.defaults:
            return Value(DEFAULT, option, self.defaults[option])
        return None


def read_ini(text: str, file: str) -> dict[str, dict[str, str]]:
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


def warn_unknown(
    report: Report, sections: Mapping[str, Mapping[str, str]], defaults: Mapping[str, str]
) -> None:
    """Ignored text is usually a typo: say so, and guess what was meant.

    A near miss of a known name is an error, not a warning: ``master_routes_ids`` leaves the
    routes of one bond unconfigured, and a failover would then make their addresses dark.
    """
    for section, options in sections.items():
        if section not in KNOWN:
            hint = _did_you_mean(section, KNOWN, template="[{}]")
            if hint:
                report.error(report.where(section), f"unknown section{hint}; {_NEAR_MISS}")
            else:
                report.warn(report.where(section), "unknown section, ignored")
            continue
        for option in options:
            if option not in KNOWN[section]:
                _unknown_option(report, section, option)
    for option in defaults:
        where = report.where(DEFAULT, option)
        users = [s for s, known in KNOWN.items() if option in known]
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


_NEAR_MISS = "fix the name (a misspelt name would be ignored)"


def _unknown_option(report: Report, section: str, option: str) -> None:
    home = [other for other, known in KNOWN.items() if option in known]
    if home:
        report.warn(report.where(section, option),
                    f"unknown option, ignored (it belongs in [{home[0]}])")
        return
    hint = _did_you_mean(option, KNOWN[section], template="{}")
    if hint:
        report.error(report.where(section, option), f"unknown option{hint}; {_NEAR_MISS}")
    else:
        report.warn(report.where(section, option), "unknown option, ignored")


def _did_you_mean(name: str, known: Iterable[str], template: str) -> str:
    by_folded = {k.casefold(): k for k in known}
    close = difflib.get_close_matches(name.casefold(), list(by_folded), n=1)
    return f" (did you mean {template.format(by_folded[close[0]])}?)" if close else ""
