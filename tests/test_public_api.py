"""The public surface is explicit: what __all__ lists exists, is sorted, and is all there is."""

from __future__ import annotations

import importlib

import pytest

import bondha

PUBLIC_MODULES = [
    "bondha", "bondha.testing", "bondha.plan", "bondha.model", "bondha.result", "bondha.config",
    "bondha.config.settings", "bondha.config.parse", "bondha.config.load", "bondha.config.secrets",
    "bondha.config.rewrite", "bondha.reconciler", "bondha.live", "bondha.writes",
    "bondha.concurrency", "bondha.retry", "bondha.transport", "bondha.client", "bondha.responses",
    "bondha.status", "bondha.discover", "bondha.survey", "bondha.check", "bondha.rights",
    "bondha.files", "bondha.keepalived.events", "bondha.keepalived.install",
    "bondha.keepalived.render", "bondha.keepalived.parse", "bondha.keepalived.check",
    "bondha.node.statedir", "bondha.node.transition", "bondha.node.daemon",
    "bondha.node.journal", "bondha.node.publish", "bondha.node.history", "bondha.node.metrics",
    "bondha.node.announce", "bondha.testing.bonding",
    "bondha.cli", "bondha.cli.parser", "bondha.cli.commands", "bondha.cli.output",
    "bondha.apply", "bondha.dependencies", "bondha.printable", "bondha.securepath",
]


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
