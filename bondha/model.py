"""Immutable value types shared by every layer.

Pure: no I/O, no httpx, no tenacity. Everything here is hashable, ordered
deterministically and safe to print (the only secret, the password, is a
:class:`Secret` whose ``repr`` and ``str`` hide it).
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Iterator

import attrs

__all__ = ["BondSide", "Kind", "ObjectRef", "Pair", "Role", "RoutingObject", "Secret",
           "normalize_address"]


class Kind(enum.Enum):
    """The three kinds of floating routing object; the value is the URL segment."""

    CONNECTED_IP = "connected_ips"
    ROUTE = "routes"
    CPE_NAT_IP = "cpe_nat_ips"

    @property
    def address_field(self) -> str:
        """The field holding the address that pairs an object with its copy on the other bond."""
        return "network" if self is Kind.ROUTE else "ip"

    # The properties below run once per write and per line of a big failover's output:
    # a lookup by ``_value_`` (a plain attribute, a string whose hash is cached), not a dict
    # built per call nor the ``value`` descriptor.
    @property
    def config_stem(self) -> str:
        """The middle of the config option name: ``master_<stem>_ids``."""
        return _CONFIG_STEMS[self._value_]

    @property
    def label(self) -> str:
        """A short human name for logs and tables."""
        return _LABELS[self._value_]

    def __lt__(self, other: object) -> bool:
        # Kinds sort in the config's order, so plans and tables have one stable order.
        if not isinstance(other, Kind):
            return NotImplemented
        return _KIND_RANKS[self._value_] < _KIND_RANKS[other._value_]

    # Members are singletons compared by identity: the identity hash (in C) fits, where
    # Enum's hashes the name in Python, once per ObjectRef hash.
    __hash__ = object.__hash__


_CONFIG_STEMS = {"connected_ips": "connected_ip", "routes": "route", "cpe_nat_ips": "cpe_nat_ip"}
_LABELS = {"connected_ips": "connected IP", "routes": "route", "cpe_nat_ips": "CPE NAT IP"}
_KIND_RANKS = {kind.value: rank for rank, kind in enumerate(Kind)}


class Role(enum.Enum):
    """Which bond of the pair is (to be) active."""

    MASTER = "master"
    BACKUP = "backup"

    @property
    def other(self) -> Role:
        return Role.BACKUP if self is Role.MASTER else Role.MASTER


@attrs.frozen(repr=False)
class Secret:
    """A string that never shows itself in logs, reprs or tracebacks."""

    value: str = attrs.field(eq=False)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


# cache_hash: a big failover hashes each ref dozens of times (reads, plans, the write
# graph, the results), each time hashing its Kind too.
@attrs.frozen(order=True, cache_hash=True)
class ObjectRef:
    """Names one routing object on one bond: enough to build its URL."""

    bond_id: int
    kind: Kind
    id: int

    def __str__(self) -> str:
        return f"{self.kind.label} {self.id} on bond {self.bond_id}"


def normalize_address(raw: str) -> str:
    """Canonical text of an address so that ``2001:DB8::1/64`` pairs with ``2001:db8::1/64``.

    Text the ipaddress module cannot read is kept (stripped): the server owns the format.
    """
    return _normalized(raw)


# An IPv4 address in the form ipaddress writes it (no leading zeros), with an optional prefix
# length: canonical already, but for the /32 ipaddress adds to a bare address.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}(/(?:3[0-2]|[12]?[0-9]))?")


@functools.lru_cache(maxsize=8192)  # each address comes back in every read and write
def _normalized(raw: str) -> str:
    text = raw.strip()
    # The usual text, without ipaddress's parse (a CLI run meets every address once).
    canonical = _CANONICAL_IPV4.fullmatch(text)
    if canonical is not None:
        return text if canonical.group(1) else f"{text}/32"
    try:
        return str(ipaddress.ip_interface(text))
    except ValueError:
        return text


def _optional_address(raw: str | None) -> str | None:
    # RoutingObject.address's converter, run for every object read and every write's
    # answer: one Python call, not attrs' optional() wrapper around normalize_address.
    return None if raw is None else _normalized(raw)


@attrs.frozen
class RoutingObject:
    """The live state of one routing object, as read from the server.

    ``gateway`` is a route's next hop as the server reports it (None for other kinds, or
    when not reported): it must lie in the network of one of the bond's connected IPs.
    """

    ref: ObjectRef
    enabled: bool
    address: str | None = attrs.field(default=None, converter=_optional_address)
    gateway: str | None = None


@attrs.frozen
class BondSide:
    """The configured floating objects of one bond."""

    bond_id: int
    connected_ip_ids: tuple[int, ...] = ()
    route_ids: tuple[int, ...] = ()
    cpe_nat_ip_ids: tuple[int, ...] = ()

    def ids(self, kind: Kind) -> tuple[int, ...]:
        return {
            Kind.CONNECTED_IP: self.connected_ip_ids,
            Kind.ROUTE: self.route_ids,
            Kind.CPE_NAT_IP: self.cpe_nat_ip_ids,
        }[kind]

    def refs(self) -> Iterator[ObjectRef]:
        """Every configured object of this bond, kinds in config order."""
        for kind in Kind:
            for object_id in self.ids(kind):
                yield ObjectRef(self.bond_id, kind, object_id)


@attrs.frozen
class Pair:
    """The HA pair as configured: which objects float between which two bonds."""

    master: BondSide
    backup: BondSide

    def side(self, role: Role) -> BondSide:
        return self.master if role is Role.MASTER else self.backup

    def refs(self) -> tuple[ObjectRef, ...]:
        """Every configured object, master bond first."""
        return (*self.master.refs(), *self.backup.refs())
