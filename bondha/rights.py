"""What the account may do, found out without changing anything: ``bondha check``'s report.

A failover needs to read and PATCH each configured object on both bonds; a least-privilege
account can do exactly that. Everything here is a read or an ``OPTIONS`` request:

* each configured object's ``OPTIONS``: may the account change it? The ``actions`` of
  Django REST framework's metadata (present only when the user may write) decide where the
  server sends them; otherwise the ``Allow`` header does. Methods beyond the need
  (``DELETE``) are reported.
* each configured collection's ``OPTIONS``: may the account create objects (``POST``)?
* ``GET bonds/``: which bonds the account can see; a bond other than the pair's two means
  the account reaches further than failover needs.
* one configured object read under each API version bondha knows: which versions the
  server answers.

What cannot be found out without writing (rights on bonds, users, spaces) is said, not
guessed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from .client import ApiClient, client_for
from .concurrency import gather_limited
from .config import API_VERSIONS, Config
from .errors import BadRequest, BadResponse, ConfigError, NotFound, PermissionDenied, RefusedError
from .model import Kind, ObjectRef
from .text import plural

if TYPE_CHECKING:
    from .client import Transport

__all__ = ["ACCESS_SCHEMA", "AccessReport", "ObjectAccess", "acheck_access", "check_access"]

ACCESS_SCHEMA = "bondha.access/1"
_WRITE_METHODS = frozenset({"PATCH", "PUT"})
_BEYOND_NEED = ("DELETE",)  # on an object; POST on a collection is checked separately
# Answers that mean "this URL or request is not served here", as opposed to a refusal.
_NOT_SERVED = (NotFound, BadRequest, BadResponse)
UNDETECTABLE_OTHER_RIGHTS = (
    "whether the account may change anything besides routing objects (bonds, users, "
    "spaces); only a write would tell, and bondha never writes to find out"
)


@attrs.frozen
class ObjectAccess:
    """What the account may do to one configured object.

    ``can_write`` is None where the server does not say (no ``Allow`` header, no metadata).
    """

    ref: ObjectRef
    can_write: bool | None
    beyond_need: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"bond_id": self.ref.bond_id, "kind": self.ref.kind.value, "id": self.ref.id,
                "can_write": self.can_write, "beyond_need": list(self.beyond_need)}


@attrs.frozen
class AccessReport:
    """The account's rights as far as they show without a write."""

    user: str
    api_version: int
    versions: tuple[int, ...]  # the API versions the server answers, of those bondha knows
    objects: tuple[ObjectAccess, ...]
    other_bonds: tuple[int, ...] | None  # None: the server does not list bonds to us
    warnings: tuple[str, ...] = ()  # more rights than needed, or a right that cannot be told
    notes: tuple[str, ...] = ()  # what is not detectable

    @property
    def read_only(self) -> tuple[ObjectRef, ...]:
        """Objects the account may read but not change: a failover would fail on them."""
        return tuple(o.ref for o in self.objects if o.can_write is False)

    @property
    def ok(self) -> bool:
        return not self.read_only

    def render(self) -> str:
        versions = ", ".join(f"v{v}" for v in self.versions) or "none of " + ", ".join(
            f"v{v}" for v in API_VERSIONS)
        lines = [f"API versions the server answers: {versions}; bondha uses "
                 f"v{self.api_version} (api_version)"]
        writable = sum(o.can_write is True for o in self.objects)
        if self.ok:
            lines.append(f"user {self.user!r} may change {writable} of the {len(self.objects)} "
                         "configured objects" + ("" if writable == len(self.objects) else
                                                 " (the server does not say for the others)"))
        for ref in self.read_only:
            lines.append(f"REFUSED: user {self.user!r} may read but not change {ref}; "
                         "a failover would fail there")
        lines += [f"warning: {warning}" for warning in self.warnings]
        lines += [f"not detectable: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": ACCESS_SCHEMA,
            "user": self.user,
            "api_version": self.api_version,
            "versions": list(self.versions),
            "ok": self.ok,
            "objects": [o.to_json() for o in self.objects],
            "other_bonds": None if self.other_bonds is None else list(self.other_bonds),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def _actions(body: Any) -> dict[str, Any] | None:
    """DRF metadata's ``actions`` (only present for methods the user may use), if any."""
    if not isinstance(body, dict):
        return None
    actions = body.get("actions")
    if isinstance(actions, dict):
        return actions
    drf_metadata = "name" in body and "renders" in body
    return {} if drf_metadata else None


def _can_write(methods: frozenset[str] | None, body: Any) -> bool | None:
    actions = _actions(body)
    if actions is not None:
        return bool(_WRITE_METHODS & set(actions))
    if methods is not None:
        return bool(_WRITE_METHODS & methods)
    return None


async def _object_access(api: ApiClient, ref: ObjectRef) -> ObjectAccess:
    try:
        methods, body = await api.allowed(api.detail_url(ref), ref)
    except PermissionDenied:
        return ObjectAccess(ref, False)
    except (BadRequest, BadResponse):  # OPTIONS not served: the server does not say
        return ObjectAccess(ref, None)
    beyond = tuple(m for m in _BEYOND_NEED if methods and m in methods)
    return ObjectAccess(ref, _can_write(methods, body), beyond)


async def _can_create(api: ApiClient, bond_id: int, kind: Kind) -> bool | None:
    try:
        methods, body = await api.allowed(api.collection_url(bond_id, kind), (bond_id, kind))
    except (RefusedError, BadRequest, BadResponse):
        return None
    actions = _actions(body)
    if actions is not None and "POST" in actions:
        return True
    return None if methods is None else "POST" in methods


async def _answers(api: ApiClient, ref: ObjectRef, version: int) -> bool:
    """Whether the server serves ``ref`` under API ``version`` (a refusal counts: it exists)."""
    try:
        await api.get_object(ref, version)
    except _NOT_SERVED:
        return False
    except RefusedError:
        return True
    return True


async def _visible_bonds(api: ApiClient) -> list[int] | None:
    try:
        return await api.list_bonds()
    except (*_NOT_SERVED, PermissionDenied):
        return None


def _count(items: Iterable[object], noun: str) -> str:
    return plural(len(list(items)), noun)


async def acheck_access(api: ApiClient, config: Config) -> AccessReport:
    """See :func:`check_access`; ``api`` is an open client."""
    pair = config.pair
    refs = pair.refs()
    version = config.api.api_version
    answered = await gather_limited(len(API_VERSIONS), [
        functools.partial(_answers, api, refs[0], v) for v in API_VERSIONS])
    versions = tuple(v for v, yes in zip(API_VERSIONS, answered) if yes)
    if versions and version not in versions:
        others = " or ".join(str(v) for v in versions)
        raise ConfigError(f"{config.source or '<config>'}: [bondingadmin] api_version = "
                          f"{version}: the server does not answer API v{version}; it answers "
                          f"{', '.join(f'v{v}' for v in versions)}: set api_version = {others}")
    collections = [(side.bond_id, kind) for side in (pair.master, pair.backup)
                   for kind in Kind if side.ids(kind)]
    objects = await gather_limited(api.pool_size, [
        functools.partial(_object_access, api, ref) for ref in refs])
    creatable = await gather_limited(api.pool_size, [
        functools.partial(_can_create, api, bond, kind) for bond, kind in collections])
    bonds = await _visible_bonds(api)

    warnings: list[str] = []
    notes = [UNDETECTABLE_OTHER_RIGHTS]
    for method in _BEYOND_NEED:
        holders = [o.ref for o in objects if method in o.beyond_need]
        if holders:
            warnings.append(f"the server allows {method} on {_count(holders, 'configured object')}"
                            f" (e.g. {holders[0]}); failover only reads and changes them")
    created = [f"{kind.label}s on bond {bond}" for (bond, kind), yes in
               zip(collections, creatable) if yes]
    if created:
        warnings.append(f"the account may create {', '.join(created)}; failover needs only "
                        "view and change rights on routing objects")
    unknown = [o.ref for o in objects if o.can_write is None]
    if unknown:
        warnings.append(f"the server does not say whether the account may change "
                        f"{_count(unknown, 'configured object')} (e.g. {unknown[0]}); "
                        "the first failover will tell")
    other_bonds: tuple[int, ...] | None = None
    if bonds is None:
        notes.append(f"which bonds the account can see: the server does not list bonds at "
                     f"{api.settings.api_root}bonds/")
    else:
        other_bonds = tuple(sorted(set(bonds) - {pair.master.bond_id, pair.backup.bond_id}))
        if other_bonds:
            shown = ", ".join(map(str, other_bonds[:10])) + (", ..." if len(other_bonds) > 10
                                                            else "")
            warnings.append(f"the account can see {_count(other_bonds, 'bond')} besides the "
                            f"pair ({shown}); a least-privilege account lives in a space that "
                            "holds only the two bonds")
    return AccessReport(config.api.user, version, versions, tuple(objects), other_bonds,
                        tuple(warnings), tuple(notes))


def check_access(config: Config, *, transport: Transport | None = None,
                 pool_size: int | None = None) -> AccessReport:
    """What the account may do to the configured objects, and beyond; never writes.

    Raises :class:`~bondha.errors.ConfigError` when the server does not answer the
    configured ``api_version`` but answers another, and the usual
    :class:`~bondha.errors.ApiError` for a wrong password or an unreachable server.
    """

    async def run() -> AccessReport:
        async with client_for(config, transport, pool_size) as api:
            return await acheck_access(api, config)

    return asyncio.run(run())
