"""The server's live objects, request statistics and address timeline, behind one lock.

A change and the timeline entry it causes are one atomic step, so the dark and overlap
figures follow the exact order in which writes landed.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

import attrs

from ..model import Kind, ObjectRef
from .fixtures import Fixture, RoutingRecord
from .timeline import AddressKey, AddressReport, AddressTimeline


@attrs.frozen
class Write:
    """One API write that the server applied, in the order applied."""

    at: float  # time.monotonic() of the change
    method: str
    bond_id: int
    kind: Kind
    id: int
    body: Mapping[str, Any]

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.bond_id, self.kind, self.id)

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "kind": self.kind.value, "body": dict(self.body)}


@attrs.frozen
class Stats:
    """What clients did since the server started or :meth:`reset` was called.

    ``connections`` counts TCP connections that carried at least one API request, so
    ``requests / connections`` shows how well a client reuses connections.
    """

    requests_by_method: Mapping[str, int]
    connections: int
    writes: tuple[Write, ...]

    @property
    def requests(self) -> int:
        return sum(self.requests_by_method.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "requests_by_method": dict(self.requests_by_method),
            "connections": self.connections,
            "writes": [write.to_json() for write in self.writes],
        }


class ObjectStore:
    """Thread-safe state of one stand-in server."""

    def __init__(self, fixture: Fixture, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.bonds = fixture.bonds
        self._records = {record.id: record for record in fixture.objects}
        listings: dict[tuple[int, Kind], list[int]] = collections.defaultdict(list)
        holders: dict[AddressKey, list[int]] = collections.defaultdict(list)
        for record in sorted(fixture.objects, key=lambda record: record.id):
            listings[record.bond_id, record.kind].append(record.id)
            holders[record.address_key].append(record.id)
        self._listings = dict(listings)
        # Only an address held by two or more bonds floats; its holders never change
        # because the API does not let clients edit addresses.
        self._holders = {
            key: tuple(ids)
            for key, ids in holders.items()
            if len({self._records[i].bond_id for i in ids}) >= 2
        }
        floating = {key: self._enabled_bonds(key) for key in self._holders}
        self._timeline = AddressTimeline(floating, clock())
        self._requests: collections.Counter[str] = collections.Counter()
        self._connections = 0
        self._writes: list[Write] = []

    def _enabled_bonds(self, key: AddressKey) -> int:
        holders = (self._records[i] for i in self._holders[key])
        return len({record.bond_id for record in holders if record.enabled})

    def get(self, bond_id: int, kind: Kind, object_id: int) -> RoutingRecord | None:
        """The object, or None when unknown or held by another bond or of another kind."""
        record = self._records.get(object_id)
        if record is None or (record.bond_id, record.kind) != (bond_id, kind):
            return None
        return record

    def listing(self, bond_id: int, kind: Kind) -> list[RoutingRecord]:
        with self._lock:
            return [self._records[i] for i in self._listings.get((bond_id, kind), ())]

    def records(self) -> tuple[RoutingRecord, ...]:
        with self._lock:
            return tuple(sorted(self._records.values(), key=lambda record: record.id))

    def update(
        self,
        ref: ObjectRef,
        changes: Mapping[str, Any],
        *,
        method: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> RoutingRecord:
        """Apply ``changes`` to the object; with ``method`` it is an API write and is recorded.

        Raises KeyError for an unknown object.
        """
        with self._lock:
            record = self.get(ref.bond_id, ref.kind, ref.id)
            if record is None:
                raise KeyError(str(ref))
            updated = attrs.evolve(record, **changes)
            self._records[record.id] = updated
            now = self._clock()
            key = record.address_key
            if key in self._holders:
                self._timeline.observe(key, self._enabled_bonds(key), now)
            if method is not None:
                self._writes.append(
                    Write(now, method, ref.bond_id, ref.kind, ref.id, dict(body or {}))
                )
            return updated

    def count_request(self, method: str, *, new_connection: bool) -> None:
        with self._lock:
            self._requests[method] += 1
            self._connections += new_connection

    def stats(self) -> Stats:
        with self._lock:
            return Stats(dict(self._requests), self._connections, tuple(self._writes))

    def report(self) -> AddressReport:
        with self._lock:
            return self._timeline.report(self._clock())

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._connections = 0
            self._writes.clear()
            self._timeline.reset(self._clock())
