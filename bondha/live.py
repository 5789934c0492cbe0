"""Reading the live routing objects of a pair (or of whole bonds) from the server.

Collections are read concurrently, one list read per kind and bond where the server serves
it, falling back to one detail read per object where it does not.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable

from .client import ApiClient
from .concurrency import gather_all, gather_limited
from .errors import BadRequest, NotFound, PermissionDenied
from .model import Kind, ObjectRef, Pair, RoutingObject
from .result import Live

__all__ = ["aread_bonds", "aread_live"]

log = logging.getLogger("bondha")


async def _read_kind(api: ApiClient, bond_id: int, kind: Kind, ids: tuple[int, ...]) -> Live:
    """The configured objects of one kind on one bond: one list read where the server serves it."""
    wanted = {ObjectRef(bond_id, kind, i) for i in ids}
    try:
        listed = {o.ref: o for o in await api.list_objects(bond_id, kind, ids)}
    except (NotFound, PermissionDenied, BadRequest) as exc:
        # No list for us here (an older server, a narrow permission): the detail reads
        # below then name the exact id that fails, which is what the operator needs.
        log.debug("list of %s on bond %d unusable (%s); reading objects one by one",
                  kind.value, bond_id, exc)
        listed = {}
    missing = sorted(wanted - listed.keys())
    for obj in await gather_all(api.get_object(ref) for ref in missing):
        listed[obj.ref] = obj
    return listed


async def aread_live(api: ApiClient, pair: Pair) -> Live:
    """Read every configured object of the pair, collections concurrently."""
    jobs = [
        functools.partial(_read_kind, api, side.bond_id, kind, side.ids(kind))
        for side in (pair.master, pair.backup) for kind in Kind if side.ids(kind)
    ]
    live: Live = {}
    for part in await gather_limited(api.pool_size, jobs):
        live.update(part)
    return live


async def aread_bonds(api: ApiClient, bond_ids: Iterable[int],
                      kinds: Iterable[Kind]) -> list[RoutingObject]:
    """Every object of ``kinds`` on each bond, configured or not (for ``bondha discover``)."""
    jobs = [functools.partial(api.list_objects, bond_id, kind)
            for bond_id in bond_ids for kind in kinds]
    return [obj for part in await gather_limited(api.pool_size, jobs) for obj in part]

