"""Which routing objects of a bond need which: the facts the order of writes must respect.

Pure: no I/O. A route's ``gateway`` must lie in the network of one of its bond's connected
IPs: the bonder can load the route only through such a connected IP, and a validating server
refuses the write that would break it. CPE NAT IPs need a connected IP of their bond too, but
the API documents no field that says which one, so the planner orders them against every
connected IP of the bond, as the old script did.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Union

from .model import Kind, ObjectRef, RoutingObject

__all__ = ["gateway_holders", "parse_gateway", "parse_network"]

_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@functools.lru_cache(maxsize=8192)  # every read of a large pair parses the same texts again
def parse_network(address: str | None) -> _Network | None:
    """The network a connected IP's address (``203.0.113.1/30``) is in; None if unreadable."""
    if address is None:
        return None
    try:
        return ipaddress.ip_interface(address.strip()).network
    except ValueError:
        return None


@functools.lru_cache(maxsize=8192)
def parse_gateway(gateway: str | None) -> _Address | None:
    """A route's gateway as an address; None when missing or not an IP address."""
    if gateway is None:
        return None
    try:
        return ipaddress.ip_address(gateway.strip())
    except ValueError:
        return None


def gateway_holders(objects: Iterable[RoutingObject]) -> dict[ObjectRef, tuple[ObjectRef, ...]]:
    """Each route among ``objects`` mapped to the connected IPs of its own bond (among
    ``objects``) whose network holds its gateway, in id order.

    A route whose gateway is in none of them (no gateway reported, a gateway in a connected
    IP that is not among ``objects``) is left out: nothing in ``objects`` can break it.
    """
    routes: list[RoutingObject] = []
    # Per bond and network size, the networks by their first address: a route's lookup
    # costs one mask per prefix length in use, not one test per connected IP.
    networks: dict[tuple[int, int, int], dict[int, list[ObjectRef]]] = {}
    for obj in objects:  # a bucket's order does not matter: holders are sorted below
        if obj.ref.kind is Kind.ROUTE:
            routes.append(obj)
        elif obj.ref.kind is Kind.CONNECTED_IP:
            network = parse_network(obj.address)
            if network is not None:
                key = (obj.ref.bond_id, network.version, network.prefixlen)
                bucket = networks.setdefault(key, {})
                bucket.setdefault(int(network.network_address), []).append(obj.ref)
    holders: dict[ObjectRef, tuple[ObjectRef, ...]] = {}
    routes.sort(key=lambda o: (o.ref.bond_id, o.ref.id))  # the routes in (bond, id) order
    for route in routes:
        gateway = parse_gateway(route.gateway)
        if gateway is None:
            continue
        found: list[ObjectRef] = []
        for (bond_id, version, prefixlen), bucket in networks.items():
            if bond_id != route.ref.bond_id or version != gateway.version:
                continue
            bits = gateway.max_prefixlen
            mask = ((1 << prefixlen) - 1) << (bits - prefixlen)
            found.extend(bucket.get(int(gateway) & mask, ()))
        if found:
            holders[route.ref] = tuple(sorted(found, key=lambda ref: ref.id))
    return holders
