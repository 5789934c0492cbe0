"""The public surface is explicit: what __all__ lists exists, is sorted, and is all there is."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import bondha

PUBLIC_MODULES = ["bondha", "bondha.testing", "bondha.plan", "bondha.model", "bondha.config",
                  "bondha.reconciler", "bondha.retry", "bondha.client", "bondha.status",
                  "bondha.keepalived", "bondha.statedir", "bondha.transition", "bondha.daemon",
                  "bondha.access", "bondha.credentials",
                  "bondha.node.announce", "bondha.testing.bonding"]


def isort_style(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    bare = name.strip("_")
    rank = 0 if bare.isupper() else 1 if bare[:1].isupper() else 2
    return rank, name


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported, key=isort_style)
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []


def test_top_level_exports_every_public_name_it_defines() -> None:
    public = {n for n in dir(bondha) if not n.startswith("_")
              and getattr(getattr(bondha, n), "__module__", "").startswith("bondha")}
    assert public == set(bondha.__all__) - {"__version__"}


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        bondha.no_such_thing  # noqa: B018


@pytest.mark.parametrize("module", ["bondha.model", "bondha.config", "bondha.plan",
                                    "bondha.status", "bondha.keepalived", "bondha.discover",
                                    "bondha.inifile", "bondha.terminal"])
def test_pure_modules_import_no_http_or_retry_library(module: str) -> None:
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('httpx', 'tenacity') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
