"""Shared fixtures: a running stand-in management server and configs that point at it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from bondha.config import Config, load_config
from bondha.testing import Fixture, StandInServer, example_fixture

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "hooks" / "swap-active-bond"

# Tests must not write to the machine's syslog.
os.environ["BONDHA_SYSLOG"] = "0"
# Nor take the password from the developer's environment or a systemd unit's credentials.
os.environ.pop("BONDHA_PASSWORD", None)
os.environ.pop("CREDENTIALS_DIRECTORY", None)


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test is one node with its own state directory (never the machine's /run/bondha)."""
    path = tmp_path / "state"
    monkeypatch.setenv("BONDHA_STATE_DIR", str(path))
    return path


@pytest.fixture
def fixture() -> Fixture:
    return example_fixture()


@pytest.fixture
def server(fixture: Fixture) -> Iterator[StandInServer]:
    with StandInServer(fixture) as running:
        yield running


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-file build (scripts/build-zipapp), made once for every test that runs it."""
    out = tmp_path_factory.mktemp("dist") / "bondha.pyz"
    build = subprocess.run([str(ROOT / "scripts" / "build-zipapp"), str(out)],
                           capture_output=True, text=True, timeout=300, check=False,
                           env={**os.environ, "PYTHON": sys.executable})
    assert build.returncode == 0, build.stderr
    return out


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def config_path(server: StandInServer, fixture: Fixture, tmp_path: Path) -> Path:
    return write_config(tmp_path / "swap-active-bond.conf",
                        fixture.config_text(server.url, attempt_delay=0.01, timeout=5))


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path)


def run(*args: str, config: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command line (``bondha ...`` or the hook) as a separate process."""
    full_env = {**os.environ, "BONDHA_SYSLOG": "0", **(env or {})}
    if config is not None:
        full_env["BONDHA_CONFIG"] = str(config)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=full_env, timeout=60, check=False)


def bondha(*args: str, config: Path | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run("-m", "bondha", *args, config=config, env=env)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Poll until ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
