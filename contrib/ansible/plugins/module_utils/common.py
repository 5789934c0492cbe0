"""Shared by the bondha.ha modules: find the bondha library, build its Config, map its errors.

Only bondha's top-level public API (``bondha.__all__``) and ``bondha.status`` are used, so
the modules keep working whatever the library's internal layout.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

# Where the bonder role installs the single-file build (importable as a zip archive), and
# where the Debian package keeps bondha and its libraries.
DEFAULT_BONDHA_PATHS = ("/usr/local/lib/bondha/bondha.pyz", "/usr/lib/bondha")

# bondha's exit codes (bondha --help), so that a failed task says what the CLI would.
EXIT_MEANINGS = {
    1: "could not converge: API failure after retries, or verification mismatch",
    2: "usage or configuration error (nothing was read or written)",
    3: "refused before any write: authentication, permission, unknown id",
}

_KINDS = ("connected_ip", "route", "cpe_nat_ip")

CONFIG_ARGUMENT_SPEC: dict[str, Any] = {
    "config": {"type": "path"},
    "password": {"type": "str", "no_log": True},
    "api": {
        "type": "dict",
        "options": {
            "host": {"type": "str", "required": True},
            "user": {"type": "str", "required": True},
            "passwd_file": {"type": "path"},
            "verify_ssl": {"type": "bool"},
            "ca_bundle": {"type": "path"},
            "timeout": {"type": "float"},
            "attempts": {"type": "int"},
            "attempt_delay": {"type": "float"},
            "api_version": {"type": "int", "choices": [3, 4]},
        },
    },
    "bond": {
        "type": "dict",
        "options": {
            "master_bond_id": {"type": "int", "required": True},
            "backup_bond_id": {"type": "int", "required": True},
            **{f"{role}_{kind}_ids": {"type": "list", "elements": "int", "default": []}
               for role in ("master", "backup") for kind in _KINDS},
        },
    },
    "settings": {"type": "dict", "default": {}},
    "bondha_path": {"type": "path"},
}
CONFIG_MUTUALLY_EXCLUSIVE = [("config", "api"), ("config", "bond")]
CONFIG_REQUIRED_ONE_OF: list[tuple[str, ...]] = []  # neither: bondha's default path
DEFAULT_CONFIG = "/etc/bonding/swap-active-bond.conf"
CONFIG_REQUIRED_TOGETHER = [("api", "bond")]


def import_bondha(module: Any) -> Any:
    """The bondha package: from ``bondha_path`` if given, else installed, else the role's path.

    A given path goes first on ``sys.path``, so that the build the role rolled out is the one
    used even where another bondha is installed.
    """
    path = module.params.get("bondha_path")
    if path is not None:
        if not os.path.exists(path):
            module.fail_json(msg=f"bondha_path {path}: no such file", exit_code=2)
        sys.path.insert(0, path)
    try:
        import bondha
    except ImportError:
        found = next((p for p in DEFAULT_BONDHA_PATHS if os.path.exists(p)), None)
        if found is None or path is not None:
            module.fail_json(msg="cannot import bondha: install it on this host (the bonder "
                                 "role does), or set bondha_path to its single-file build",
                             exit_code=2)
        sys.path.insert(0, found)
        import bondha
    return bondha


class LogLines(logging.Handler):
    """bondha's log records, kept for the task's result instead of the module's stderr."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname.lower()}: {record.getMessage()}")


def capture_logs() -> LogLines:
    handler = LogLines()
    logger = logging.getLogger("bondha")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def _ini_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"{name}: must be one line")
    return text


def config_text(params: dict[str, Any]) -> str:
    """The swap-active-bond.conf that the module parameters describe (no password in it)."""
    sections = [("bondingadmin", "api", params["api"]), ("bond", "bond", params["bond"]),
                ("bondha", "settings", params.get("settings") or {})]
    lines = []
    for section, parameter, values in sections:
        if section == "bondha" and not values:
            continue
        lines.append(f"[{section}]")
        for name, value in values.items():
            if value is None or value == []:
                continue
            if "\n" in str(name) or "=" in str(name) or "]" in str(name):
                raise ValueError(f"{parameter}: {name!r} is not an option name")
            lines.append(f"{name} = {_ini_value(f'{parameter}.{name}', value)}")
    return "\n".join(lines) + "\n"


def load_config(module: Any, bondha: Any) -> Any:
    """bondha's Config from ``config`` (a file on this host) or from the parameters.

    ``password`` goes in as ``$BONDHA_PASSWORD``, which bondha prefers to the file's.
    """
    params = module.params
    environ = dict(os.environ)
    if params.get("password") is not None:
        environ["BONDHA_PASSWORD"] = params["password"]
    if params.get("api") is None:
        path = params.get("config") or os.environ.get("BONDHA_CONFIG") or DEFAULT_CONFIG
        config = bondha.load_config(path, environ=environ)
    else:
        try:
            text = config_text(params)
        except ValueError as exc:
            module.fail_json(msg=str(exc), exit_code=2)
        config = bondha.parse_config(text, environ=environ)
    for warning in config.warnings:
        module.warn(warning)
    for path in config.secret_files:
        try:
            loose = os.stat(path).st_mode & 0o077
        except OSError:
            continue
        if loose:
            module.warn(f"{path} holds the password and group or others may read it: "
                        "chmod 0400 it")
    return config


def fail_with(module: Any, bondha: Any, exc: Exception, logs: LogLines,
              **extra: Any) -> None:
    """Fail the task with bondha's one-line message and its exit code's meaning."""
    code = getattr(exc, "exit_code", 1)
    details: dict[str, Any] = {"exit_code": code, "meaning": EXIT_MEANINGS.get(code, ""),
                               "error": type(exc).__name__, "log": logs.lines,
                               "bondha": {"version": bondha.__version__, "path": bondha.__file__},
                               **extra}
    if isinstance(exc, bondha.ConfigError):
        details["problems"] = list(exc.problems)
    if isinstance(exc, bondha.ApiError):
        details["status"] = exc.status
        details["refused"] = isinstance(exc, bondha.RefusedError)
    module.fail_json(msg=f"{exc} (exit code {code}: {details['meaning']})", **details)
