"""The commands' JSON output: exactly what ``json.dumps(indent=2)`` writes, for any document."""

from __future__ import annotations

import enum
import json
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bondha.cli.output import dumps
from bondha.model import Role, RoutingObject
from bondha.plan import make_plan
from bondha.result import Failure, Result
from bondha.testing import pair_fixture


class Colour(str, enum.Enum):
    RED = "red"


class Count(enum.IntEnum):
    ONE = 1


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(),  # NaN and infinities included
    st.text(),  # controls, quotes, backslashes, non-ASCII, surrogates
    st.sampled_from([Colour.RED, Count.ONE, 2**80, -0.0, 1e300, "\u2028", "\x1b[2J"]))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=40)


@given(documents)
def test_any_json_document_is_written_as_json_dumps_writes_it(data: Any) -> None:
    assert dumps(data) == json.dumps(data, indent=2)


@pytest.mark.parametrize("data", [
    {1: "int key", None: "none key", 2.5: "float key", False: "bool key"},
    OrderedDict([("b", 1), ("a", [OrderedDict(z=None)])]),
    {"nested": {"deep": [[[], {}], [{"x": ()}]]}},
])
def test_unusual_keys_and_containers_as_json_dumps(data: Any) -> None:
    assert dumps(data) == json.dumps(data, indent=2)


def test_what_json_refuses_is_refused_alike() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        dumps({"a": [{1, 2}]})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps({"a": loop})


def test_a_big_failover_result_is_written_as_json_dumps_writes_it() -> None:
    fixture = pair_fixture(50)
    live = {r.ref: RoutingObject(r.ref, r.enabled, r.address, r.gateway)
            for r in fixture.objects}
    plan = make_plan(fixture.pair(), Role.BACKUP, live)
    changes = plan.changes
    result = Result(plan, done=changes[2:], failed=(Failure(changes[0], "refused \"x\"\n"),),
                    skipped=changes[1:2], requests=302, seconds=1.23456)
    for document in (result.to_json(), plan.to_json()):
        assert dumps(document) == json.dumps(document, indent=2)
