"""The ``swap-active-bond.conf`` INI format, read unchanged, into a validated :class:`Config`.

Pure: reads a file, imports neither httpx nor tenacity.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

import attrs

from .model import Pair, Secret

DEFAULT_CONFIG_PATH = Path("/etc/bonding/swap-active-bond.conf")
CONFIG_ENV = "BONDHA_CONFIG"


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

    @property
    def api_root(self) -> str:
        """The URL every resource path hangs off, with a trailing slash."""
        return f"{self.base_url}/api/v{self.api_version}/"


@attrs.frozen
class Config:
    """A validated configuration: the server, the pair, and what was worth a warning."""

    api: ApiSettings
    pair: Pair
    source: Optional[Path] = None
    warnings: tuple[str, ...] = ()


def config_path(cli_value: Optional[str], environ: Mapping[str, str] = os.environ) -> Path:
    """``--config``, else ``$BONDHA_CONFIG``, else the old script's path."""
    if cli_value:
        return Path(cli_value)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH


def load_config(path: Path) -> Config:
    """Read and validate the file at ``path``; raise ConfigError naming the problem."""
    raise NotImplementedError


def parse_config(text: str, source: Optional[Path] = None) -> Config:
    """Validate INI text; ``source`` only names the file in messages."""
    raise NotImplementedError
