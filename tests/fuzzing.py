"""Hypothesis settings for the fuzz tests: bounded in the normal suite, longer on request.

``BONDHA_FUZZ_SCALE=N`` multiplies every example budget by N (e.g. 50 for a long run
before a release); the default keeps the fuzz tests to a few seconds each.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("BONDHA_FUZZ_SCALE", "1") or "1"))


def fuzz(examples: int) -> settings:
    """``examples`` in the normal suite; each must finish well within the deadline."""
    return settings(
        max_examples=examples * SCALE,
        deadline=timedelta(seconds=10),  # far above normal; catches a hang without a timeout
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large],
        database=None,  # the suite's result must not depend on earlier runs
    )
