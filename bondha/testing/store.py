"""The server's live objects, request statistics and address timeline, behind one lock.

A change and the timeline entry it causes are one atomic step, so the dark and overlap
figures follow the exact order in which writes landed.

Routes depend on connected IPs: a route's gateway must lie in the network of an enabled
connected IP of its bond, or the bonder cannot load it. An API write that leaves an enabled
route without one is a *dependency violation*: counted in the statistics, and refused with a
400 when the store is strict (``strict_dependencies``), as a validating server would.
"""

from __future__ import annotations

import collections
import ipaddress
import threading
import time
from collections.abc import Iterable, Mapping
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
class Violation:
    """An API write that left enabled routes without a connected IP holding their gateway.

    ``refused`` True: a strict store answered 400 and changed nothing.
    """

    at: float
    bond_id: int
    kind: Kind
    id: int
    routes: tuple[int, ...]  # the routes (ids) that lost the way to their gateway
    refused: bool
    message: str

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.bond_id, self.kind, self.id)

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "kind": self.kind.value, "routes": list(self.routes)}


class DependencyViolation(Exception):
    """Raised by a strict store instead of making a write that breaks a route's gateway."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(violation.message)
        self.violation = violation


@attrs.frozen
class Stats:
    """What clients did since the server started or :meth:`reset` was called.

    ``connections`` counts TCP connections that carried at least one API request, so
    ``requests / connections`` shows how well a client reuses connections; ``most_open`` is
    the most of them open at once (with a server that closes every connection, that, not
    the count, shows whether a client stayed within its pool). ``violations`` are the
    writes that broke (or, refused, would have broken) a route's gateway.
    """

    requests_by_method: Mapping[str, int]
    connections: int
    writes: tuple[Write, ...]
    violations: tuple[Violation, ...] = ()
    most_open: int = 0

    @property
    def requests(self) -> int:
        return sum(self.requests_by_method.values())

    @property
    def dependency_violations(self) -> int:
        """Writes accepted although they left an enabled route without its gateway."""
        return sum(not v.refused for v in self.violations)

    @property
    def dependency_refusals(self) -> int:
        """Writes a strict store refused (400) because they would have done so."""
        return sum(v.refused for v in self.violations)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "requests_by_method": dict(self.requests_by_method),
            "connections": self.connections,
            "most_open": self.most_open,
            "writes": [write.to_json() for write in self.writes],
            "dependency_violations": self.dependency_violations,
            "dependency_refusals": self.dependency_refusals,
            "violations": [violation.to_json() for violation in self.violations],
        }


def _holders(records: Iterable[RoutingRecord]) -> dict[int, frozenset[int]]:
    """Each route's id mapped to the connected IPs (ids) of its bond whose network holds its
    gateway; a route without a readable gateway maps to nothing and is never broken."""
    networks: dict[int, list[tuple[Any, int]]] = collections.defaultdict(list)
    routes: list[RoutingRecord] = []
    for record in records:
        if record.kind is Kind.CONNECTED_IP:
            try:
                network = ipaddress.ip_interface(record.address).network
            except ValueError:
                continue
            networks[record.bond_id].append((network, record.id))
        elif record.kind is Kind.ROUTE and record.gateway:
            routes.append(record)
    holders: dict[int, frozenset[int]] = {}
    for route in routes:
        try:
            gateway = ipaddress.ip_address(route.gateway or "")
        except ValueError:
            continue
        holders[route.id] = frozenset(
            conn_id for network, conn_id in networks[route.bond_id] if gateway in network
        )
    return holders


class ObjectStore:
    """Thread-safe state of one stand-in server."""

    def __init__(
        self,
        fixture: Fixture,
        clock: Callable[[], float] = time.monotonic,
        *,
        strict_dependencies: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.strict_dependencies = strict_dependencies
        self.bonds = fixture.bonds
        self._records = {record.id: record for record in fixture.objects}
        # Addresses and gateways cannot be written: who holds whose gateway never changes.
        self._gateway_holders = _holders(fixture.objects)
        self._routes_via: dict[int, list[int]] = collections.defaultdict(list)
        for route_id, conn_ids in sorted(self._gateway_holders.items()):
            for conn_id in conn_ids:
                self._routes_via[conn_id].append(route_id)
        self._violations: list[Violation] = []
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
        self._open = 0  # connections accepted and not yet ended
        self._most_open = 0
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

        Raises KeyError for an unknown object, and :class:`DependencyViolation` (nothing
        changed) for an API write that would break a route's gateway in a strict store.
        """
        with self._lock:
            record = self.get(ref.bond_id, ref.kind, ref.id)
            if record is None:
                raise KeyError(str(ref))
            updated = attrs.evolve(record, **changes)
            now = self._clock()
            if method is not None:
                self._check_dependencies(record, updated, now)
            self._records[record.id] = updated
            key = record.address_key
            if key in self._holders:
                self._timeline.observe(key, self._enabled_bonds(key), now)
            if method is not None:
                self._writes.append(
                    Write(now, method, ref.bond_id, ref.kind, ref.id, dict(body or {}))
                )
            return updated

    def _broken(self, route_id: int, changed: RoutingRecord) -> bool:
        """Whether the route is enabled without an enabled holder, were ``changed`` written."""
        def current(object_id: int) -> RoutingRecord:
            return changed if object_id == changed.id else self._records[object_id]

        holders = self._gateway_holders.get(route_id)
        if holders is None or not current(route_id).enabled:
            return False
        return not any(current(conn_id).enabled for conn_id in holders)

    def _check_dependencies(self, before: RoutingRecord, after: RoutingRecord, now: float) -> None:
        """Record (or, strict, refuse) a write that breaks a route's gateway. Lock held."""
        if before.kind is Kind.ROUTE:
            affected = [before.id]
        elif before.kind is Kind.CONNECTED_IP:
            affected = self._routes_via.get(before.id, [])
        else:
            return
        broken = tuple(r for r in affected
                       if self._broken(r, after) and not self._broken(r, before))
        if not broken:
            return
        if before.kind is Kind.ROUTE:
            message = (f"Gateway {before.gateway} is not in the network of an enabled "
                       f"connected IP of bond {before.bond_id}.")
        else:
            names = ", ".join(f"{self._records[r].address} (route {r})" for r in broken)
            message = (f"Routes of bond {before.bond_id} have their gateway in this connected "
                       f"IP's network: {names}. Disable them first.")
        violation = Violation(now, before.bond_id, before.kind, before.id, broken,
                              self.strict_dependencies, message)
        self._violations.append(violation)
        if self.strict_dependencies:
            raise DependencyViolation(violation)

    def count_request(self, method: str, *, new_connection: bool) -> None:
        with self._lock:
            self._requests[method] += 1
            self._connections += new_connection

    def connection_opened(self) -> None:
        """A connection was accepted: open from now on, as the client sees it."""
        with self._lock:
            self._open += 1
            self._most_open = max(self._most_open, self._open)

    def connection_ending(self) -> None:
        """A connection gets its last answer, or ends, or turned out to carry the control
        API (not a client's): no longer open. Called before that answer is written, so a
        client's next connect is never counted first."""
        with self._lock:
            self._open -= 1

    def stats(self) -> Stats:
        with self._lock:
            return Stats(dict(self._requests), self._connections, tuple(self._writes),
                         tuple(self._violations), self._most_open)

    def report(self) -> AddressReport:
        with self._lock:
            return self._timeline.report(self._clock())

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._connections = 0
            self._most_open = self._open
            self._writes.clear()
            self._violations.clear()
            self._timeline.reset(self._clock())
