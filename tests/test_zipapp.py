"""The single-file build: scripts/build-zipapp, then the demo, check and the hook from that file.

The file runs under ``python -I -S``: no site-packages, no current directory, so every
import must come from inside it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bondha.model import Kind
from bondha.testing import StandInServer

OLDEST_PYTHON = "3.9"


def run_file(*args: str, config: Path | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # The test's own state directory (conftest): never the machine's /run/bondha.
    env = {"PATH": os.environ.get("PATH", ""), "BONDHA_SYSLOG": "0",
           "BONDHA_STATE_DIR": os.environ["BONDHA_STATE_DIR"]}
    if config is not None:
        env["BONDHA_CONFIG"] = str(config)
    return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60, check=False)


def test_holds_every_dependency_the_oldest_python_needs(pyz: Path) -> None:
    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
        metadata = {name.split("-")[0]: archive.read(name).decode()
                    for name in names if name.endswith(".dist-info/METADATA")}
    assert not [n for n in names if n.endswith((".so", ".pyd")) or "__pycache__" in n]
    assert "bondha/testing/server.py" in names  # the demo needs the stand-in server
    # Bytecode of the building Python beside each module: not compiled again on every run.
    with zipfile.ZipFile(pyz) as archive:
        assert archive.read("bondha/cli/__init__.pyc")[:4] == importlib.util.MAGIC_NUMBER
    assert not [n for n in names if n.endswith(".py") and n + "c" not in names
                and n != "__main__.py"]
    present = {canonicalize_name(dist) for dist in metadata}
    environment = {"python_version": OLDEST_PYTHON, "python_full_version": f"{OLDEST_PYTHON}.0",
                   "extra": ""}
    for dist, text in metadata.items():
        for line in text.splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.split(":", 1)[1].strip())
            if requirement.marker is None or requirement.marker.evaluate(environment):
                assert canonicalize_name(requirement.name) in present, (dist, str(requirement))


def test_demo_from_the_file(pyz: Path, tmp_path: Path) -> None:
    out = run_file(sys.executable, "-I", "-S", str(pyz), "demo", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "overlap moments: 0" in out.stdout


def test_check_from_the_file(pyz: Path, server: StandInServer, config_path: Path,
                             tmp_path: Path) -> None:
    out = run_file(sys.executable, "-I", "-S", str(pyz), "check", config=config_path,
                   cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "check passed" in out.stdout


@pytest.mark.parametrize("name", ["swap-active-bond.py", "swap-active-bond"])
def test_the_file_at_the_old_scripts_path_is_the_hook(pyz: Path, server: StandInServer,
                                                      config_path: Path, tmp_path: Path,
                                                      name: str) -> None:
    hook = tmp_path / name
    shutil.copy(pyz, hook)
    hook.chmod(0o755)
    out = run_file(str(hook), "INSTANCE", "VI_1", "MASTER", "9", config=config_path, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert server.get_object(3, Kind.ROUTE, 8)["enabled"] is True
    assert server.get_object(1, Kind.ROUTE, 7)["enabled"] is False
    odd = run_file(str(hook), "VI_1", "MASTER", config=config_path, cwd=tmp_path)
    assert odd.returncode == 2
    assert "notify takes 4 arguments" in odd.stderr
    # keepalived-config writes `notify "HOOK --config PATH"` for a config off the default
    # path, and keepalived appends the event: the options before it are bondha's.
    back = run_file(str(hook), "--config", str(config_path), "INSTANCE", "VI_1", "MASTER", "10",
                    cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert server.get_object(1, Kind.ROUTE, 7)["enabled"] is True
