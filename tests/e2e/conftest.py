"""The e2e test bed as a pytest fixture: skip with the reason, or fail where CI requires it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .testbed import CannotRun, TestBed, open_bed, preflight

REQUIRE_ENV = "BONDHA_REQUIRE_E2E"  # set by .ci/run: "cannot run here" is a failure there


@pytest.fixture(scope="session")
def can_run() -> None:
    try:
        preflight()
    except CannotRun as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but the e2e tests cannot run: {exc}")
        pytest.skip(f"e2e: {exc}")


@pytest.fixture
def bed(can_run: None) -> Iterator[TestBed]:
    with open_bed() as running:
        yield running
