"""Loading the config file: the I/O edge around the pure :mod:`bondha.config.parse`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from ..model import Role
from .parse import parse, parse_api, parse_bond_ids
from .secrets import FILES, guard_secret_files
from .settings import CONFIG_ENV, DEFAULT_CONFIG_PATH, ApiSettings, Config

__all__ = ["checked", "config_path", "load_api_settings", "load_bond_ids", "load_config",
           "parse_config"]

log = logging.getLogger("bondha")


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
    return parse_api(_read_text(source), source, os.environ if environ is None else environ,
                     FILES)


def load_bond_ids(path: str | os.PathLike[str], flags: Mapping[Role, str]) -> dict[Role, int]:
    """The ``[bond]`` ids of the roles in ``flags``, for ``discover`` run without them."""
    source = Path(path)
    return parse_bond_ids(_read_text(source), source, flags)


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
        raise ConfigError(f"{source}: cannot read config file: permission denied "
                          f"({_who_may_read(source)})") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The bad byte is not shown: it may be part of the password.
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{source}, line {line}: not UTF-8 text; save it as UTF-8") from None
    return text


def _who_may_read(source: Path) -> str:
    """Who is asking, and whose file it is: what the operator needs to fix the permissions."""
    import grp
    import pwd
    import stat

    def user(uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    def group(gid: int) -> str:
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)

    me = f"bondha runs as user {user(os.geteuid())}"
    try:
        info = source.stat()
    except OSError:
        return f"{me}; a directory above the file does not let that user in"
    return (f"{me}; the file belongs to {user(info.st_uid)}:{group(info.st_gid)}, mode "
            f"{stat.S_IMODE(info.st_mode):04o}")


def parse_config(
    text: str, source: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate INI text; ``source`` names the file in messages and anchors relative paths.

    ``environ`` as for :func:`load_config`; password files and the CA bundle are read from
    the real file system (for a pure parse, see :func:`bondha.config.parse.parse`).
    """
    return parse(text, source, os.environ if environ is None else environ, FILES)


def checked(config: Config, *, refuse_loose_secrets: bool,
            warnings_reported: bool = False) -> Config:
    """``config`` after its warnings were logged and its password files' modes checked.

    What every front end does with a config it just loaded (the CLI, the daemon on start
    and on reload): a command run by hand refuses a password file others can read, one run
    during an outage only logs it (see :func:`~bondha.config.secrets.guard_secret_files`).
    """
    for warning in config.warnings:
        # reported: the command (check) prints them in its result too (bondha.log)
        log.warning("%s", warning, extra={"reported": warnings_reported})
    guard_secret_files(config.secret_files, refuse=refuse_loose_secrets,
                       allowed=config.ha.allow_readable_secrets)
    return config
