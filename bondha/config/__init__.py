"""The ``swap-active-bond.conf`` INI format, read unchanged, into a validated :class:`Config`.

A config that bondha accepts is one the old script would have acted on the same way;
everything doubtful is either an error (collected, all at once, in one
:class:`~bondha.errors.ConfigError`) or a warning in :attr:`Config.warnings`.
Each message is one line: ``<file>: [<section>] <option> = '<value>': <what is wrong>``.
The password's value never appears in a message, a warning or a repr.

The rooms: :mod:`.settings` (the values), :mod:`.ini` (the syntax and the report of
problems), :mod:`.values` (option converters) and :mod:`.parse` (the meaning) are pure;
:mod:`.secrets` (password files, CA bundle) and :mod:`.load` (the file) are the I/O edge;
:mod:`.rewrite` writes ``[bond]`` back in place for ``bondha discover``.
"""

from __future__ import annotations

from .load import config_path, load_api_settings, load_config, parse_config
from .settings import (
    API_VERSIONS,
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    ApiSettings,
    Config,
    HaSettings,
)

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
