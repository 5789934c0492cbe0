"""Where the password comes from, and whether the files that hold it are private.

The file-system edge of the config: reading the password files, checking their modes and
loading the CA bundle (once per process, shared with the transport). Imports neither httpx
nor tenacity.

The password is taken from the first of these that is set (most deliberate first):

1. the systemd credential ``bondha-password`` (``$CREDENTIALS_DIRECTORY/bondha-password``,
   from ``LoadCredential=`` or ``SetCredentialEncrypted=`` in the unit),
2. the ``BONDHA_PASSWORD`` environment variable,
3. the file named by ``[bondingadmin] passwd_file``,
4. ``[bondingadmin] passwd`` in the config file itself (the old script's way).

A file holding the password that group or others may read (or write) is refused by the
commands an operator runs by hand, and only logged at error priority by those that run
during an outage: a failover must never fail because of a file mode. Call
:func:`guard_secret_files` with ``refuse=False`` from any long-running or keepalived-driven
front end.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import ssl
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import ConfigError
from .parse import Files, SecretFileError
from .settings import CREDENTIAL_NAME, CREDENTIALS_DIRECTORY_ENV, PASSWORD_ENV

__all__ = [
    "CREDENTIALS_DIRECTORY_ENV",
    "CREDENTIAL_NAME",
    "FILES",
    "PASSWORD_ENV",
    "SecretFileError",
    "credential_path",
    "guard_secret_files",
    "load_ca_bundle",
    "read_secret_file",
    "secret_file_problems",
]

OPT_OUT = "[bondha] allow_readable_secrets = true"
_MAX_SECRET_BYTES = 4096  # a password file is one short line; anything bigger is the wrong file
_LOOSE_BITS = 0o066  # read or write by group or others

log = logging.getLogger("bondha")


def credential_path(environ: Mapping[str, str]) -> Path | None:
    """The systemd credential file when the unit passed one, else None."""
    directory = environ.get(CREDENTIALS_DIRECTORY_ENV)
    if not directory:
        return None
    path = Path(directory) / CREDENTIAL_NAME
    return path if os.path.lexists(path) else None


def read_secret_file(path: Path) -> str:
    """The password in ``path``: one line, trailing newline dropped.

    Opened without blocking and checked to be a regular file first, so that a FIFO or a
    device named by mistake is an error, not a hang.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SecretFileError("file not found") from None
    except PermissionError:
        raise SecretFileError("cannot read the file: permission denied") from None
    except OSError as exc:
        raise SecretFileError(_unreadable(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SecretFileError("not a regular file")
        data = os.read(fd, _MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretFileError(_unreadable(exc)) from None
    finally:
        os.close(fd)
    if len(data) > _MAX_SECRET_BYTES:
        raise SecretFileError(f"larger than {_MAX_SECRET_BYTES} bytes; not a password file")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise SecretFileError("not UTF-8 text") from None
    text = text.rstrip("\r\n")  # `echo pw > file` adds a newline that is not part of it
    if "\n" in text or "\r" in text:
        raise SecretFileError("holds more than one line; put only the password in it")
    if not text:
        raise SecretFileError("is empty")
    return text


def _unreadable(exc: OSError) -> str:
    return f"cannot read the file: {exc.strerror or type(exc).__name__}"


def _describe_loose(mode: int) -> str:
    who = [name for name, bits in (("group", 0o060), ("others", 0o006)) if mode & bits]
    how = [name for name, bits in (("readable", 0o044), ("writable", 0o022)) if mode & bits]
    return f"{' and '.join(how)} by {' and '.join(who)}"


def secret_file_problems(secret_files: Iterable[Path]) -> list[str]:
    """One line per file holding the password that is not private to its owner.

    Each names the file, its mode and the exact ``chmod`` that fixes it.
    """
    problems = []
    for path in secret_files:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue  # it was read a moment ago; a vanished file is not a mode problem
        if mode & _LOOSE_BITS:
            fixed = mode & ~0o077
            problems.append(
                f"{path}: holds the password but is {_describe_loose(mode)} "
                f"(mode {mode:04o}); fix it with: chmod {fixed:o} {shlex.quote(str(path))}"
            )
    return problems


def guard_secret_files(secret_files: Iterable[Path], *, refuse: bool,
                       allowed: bool = False) -> list[str]:
    """Check the modes of the files holding the password; returns the problems found.

    ``refuse`` True (``check``, ``plan``, ``apply``): raise :class:`ConfigError` (exit 2)
    unless ``allowed`` (the config's ``[bondha] allow_readable_secrets = true``). ``refuse``
    False (the notify hook, ``status``, a daemon): log each problem at error priority and
    go on, because a failover must not fail over a file mode.
    """
    problems = secret_file_problems(secret_files)
    if not problems:
        return problems
    if allowed:
        for problem in problems:
            log.warning("%s (allowed by %s)", problem, OPT_OUT)
    elif refuse:
        raise ConfigError(*(f"{problem} (or set {OPT_OUT})" for problem in problems))
    else:
        for problem in problems:
            log.error("%s; going on: a failover never waits for a file mode", problem)
    return problems


@functools.lru_cache(maxsize=4)
def load_ca_bundle(path: str) -> ssl.SSLContext:
    """A TLS client context trusting the CAs in ``path``, made once per process.

    Loading a bundle takes tens of milliseconds: the config's check and the transport share
    this one context instead of each loading the file.
    """
    return ssl.create_default_context(cafile=path)


class _RealFiles:
    """:class:`~bondha.config.parse.Files` on the real file system."""

    def credential(self, environ: Mapping[str, str]) -> Path | None:
        return credential_path(environ)

    def read_secret(self, path: Path) -> str:
        return read_secret_file(path)

    def ca_bundle_problem(self, path: Path) -> str | None:
        """Checked when the config is read, so that a typo shows in ``check``, not at 3 a.m."""
        if not path.is_file():
            return "no such file" if not path.exists() else "not a regular file"
        try:
            load_ca_bundle(str(path))
        except PermissionError:
            return "cannot read the file: permission denied"
        except (ssl.SSLError, OSError, ValueError):
            return "holds no PEM certificate that can be loaded"
        return None


FILES: Files = _RealFiles()
