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
from .config.ini import bond_option, ids_option
from .errors import ApiError, BadRequest, NotFound, PermissionDenied
from .model import Kind, ObjectRef, Pair, Role, RoutingObject
from .result import Live

__all__ = ["aread_bonds", "aread_live"]

log = logging.getLogger("bondha")


async def _read_kind(api: ApiClient, bond_id: int, kind: Kind, ids: tuple[int, ...]) -> Live:
    """The configured objects of one kind on one bond: one list read where the server serves it."""
    wanted = frozenset(ids)  # a set: the list read tests every item it serves against it
    try:
        listed = {o.ref: o for o in await api.list_objects(bond_id, kind, wanted)}
    except (NotFound, PermissionDenied, BadRequest) as exc:
        # No list for us here (an older server, a narrow permission): the detail reads
        # below then name the exact id that fails, which is what the operator needs.
        log.debug("list of %s on bond %d unusable (%s); reading objects one by one",
                  kind.value, bond_id, exc)
        listed = {}
    # By id (every ref listed is of this bond and kind): no ObjectRef made, hashed and
    # compared per configured id.
    missing = sorted(wanted.difference(ref.id for ref in listed))
    for obj in await gather_all(api.get_object(ObjectRef(bond_id, kind, i)) for i in missing):
        listed[obj.ref] = obj
    return listed


async def aread_live(api: ApiClient, pair: Pair) -> Live:
    """Read every configured object of the pair, collections concurrently.

    An unknown id raises :class:`NotFound` naming every problem of the pair's config: a bond
    that does not exist, each id not on its bond, and whether the ids look swapped.
    """
    try:
        return await _read_pair(api, pair)
    except NotFound as exc:
        raise await _diagnosed(api, pair, exc) from None


async def _read_pair(api: ApiClient, pair: Pair) -> Live:
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



async def _diagnosed(api: ApiClient, pair: Pair, first: NotFound) -> NotFound:
    """Every reason why ``pair``'s objects are not found, in one error (``first`` if unsure).

    Only on this error path: a few more reads, so that one run names every mistake.
    """
    try:
        visible = set(await api.list_bonds())
    except ApiError:
        return first
    sides = ((Role.MASTER, pair.master, pair.backup), (Role.BACKUP, pair.backup, pair.master))
    problems = [
        f"bond {side.bond_id} does not exist, or this account cannot see it: [bond] "
        f"{bond_option(role)} = {side.bond_id} (the account sees bonds "
        f"{', '.join(map(str, sorted(visible))) or 'none'})"
        for role, side, _ in sides if side.bond_id not in visible]
    swapped = 0
    missing = 0
    for role, side, other in sides:
        if side.bond_id not in visible:
            continue
        for ref in side.refs():
            if await _exists(api, ref):
                continue
            missing += 1
            mirror = ObjectRef(other.bond_id, ref.kind, ref.id)
            there = other.bond_id in visible and await _exists(api, mirror)
            swapped += there
            problems.append(
                f"{ref} not found: [bond] {ids_option(role, ref.kind)} lists {ref.id}"
                + (f", which is on the other bond ({other.bond_id})" if there else ""))
    if not problems:
        return first
    if swapped and swapped == missing == len(pair.refs()):
        problems = [f"every configured id is on the other bond: [bond] master_bond_id = "
                    f"{pair.master.bond_id} and backup_bond_id = {pair.backup.bond_id} swapped? "
                    f"(the master ids are on bond {pair.backup.bond_id}, the backup ids on bond "
                    f"{pair.master.bond_id})"]
    elif swapped:
        problems.append("ids on the other bond: master and backup swapped?")
    return NotFound("; ".join(problems), status=404, ref=first.ref, url=first.url)


async def _exists(api: ApiClient, ref: ObjectRef) -> bool:
    try:
        await api.get_object(ref)
    except NotFound:
        return False
    return True

