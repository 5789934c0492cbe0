"""``/_standin/``: steer a stand-in running in another process (or network namespace).

No authentication, no latency, no faults, and not counted in the statistics.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable

from ..model import Kind, ObjectRef
from .faults import Fault, FaultInjector
from .messages import Request, Response, detail, json_response
from .store import ObjectStore

PREFIX = "/_standin/"
_OBJECT = re.compile(
    r"objects/(?P<bond>[0-9]+)/(?P<kind>{})/(?P<id>[0-9]+)".format(
        "|".join(kind.value for kind in Kind)
    )
)


def _json_body(request: Request) -> Any:
    return json.loads(request.body or b"{}")


class Control:
    """The control endpoints of one server; a bad body is a 400 naming the problem."""

    def __init__(self, store: ObjectStore, faults: FaultInjector) -> None:
        self._store = store
        self._faults = faults
        self._endpoints: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "stats"): self._stats,
            ("POST", "reset"): self._reset,
            ("POST", "faults"): self._add_fault,
            ("DELETE", "faults"): self._clear_faults,
            ("GET", "objects"): self._objects,
        }

    def handle(self, request: Request) -> Response:
        name = request.path[len(PREFIX) :].rstrip("/")
        endpoint = self._endpoints.get((request.method, name))
        match = _OBJECT.fullmatch(name)
        if endpoint is None and match is not None and request.method == "POST":
            endpoint = functools.partial(self._set_enabled, match=match)
        if endpoint is None:
            return detail(404, "Not found.")
        try:
            return endpoint(request)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return detail(400, f"{type(exc).__name__}: {exc}")

    def _stats(self, _request: Request) -> Response:
        report = self._store.report().to_json()
        return json_response(200, {**self._store.stats().to_json(), "address_report": report})

    def _reset(self, _request: Request) -> Response:
        self._store.reset()
        return json_response(200, {})

    def _add_fault(self, request: Request) -> Response:
        fault = Fault.from_json(_json_body(request))
        self._faults.add(fault)
        return json_response(201, fault.to_json())

    def _clear_faults(self, _request: Request) -> Response:
        self._faults.clear()
        return json_response(200, {})

    def _objects(self, _request: Request) -> Response:
        return json_response(200, [record.to_json() for record in self._store.records()])

    def _set_enabled(self, request: Request, match: re.Match[str]) -> Response:
        """Like an operator's click in the web UI: on the timeline, not an API write."""
        enabled = _json_body(request).get("enabled")
        if not isinstance(enabled, bool):
            return json_response(400, {"enabled": ["Must be a valid boolean."]})
        ref = ObjectRef(int(match["bond"]), Kind(match["kind"]), int(match["id"]))
        if self._store.get(ref.bond_id, ref.kind, ref.id) is None:
            return detail(404, "Not found.")
        return json_response(200, self._store.update(ref, {"enabled": enabled}).to_json())
