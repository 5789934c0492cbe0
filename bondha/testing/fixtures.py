"""The data a stand-in server starts from: bonds, routing objects and user accounts.

A :class:`Fixture` is an immutable value; the server copies it and changes only its copy.
Factories build the how-to's example pair and generated pairs of any size, and a fixture
renders the ``swap-active-bond.conf`` that drives its pair, so a test writes one call.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..model import BondSide, Kind, ObjectRef, Pair, Role, normalize_address
from .timeline import AddressKey

EXAMPLE_USER = "ha@example.net"
EXAMPLE_USERNAME = "ha"
EXAMPLE_PASSWORD = "correct horse"  # noqa: S105 -- a published test account


def _bond_set(value: Iterable[int] | None) -> frozenset[int] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class User:
    """An account: Basic auth accepts the email or the username.

    ``bonds`` is None for an account that sees every bond, else the bonds its space holds;
    ``can_write`` False makes a viewer that gets 403 on PATCH/PUT.
    """

    email: str
    password: str = attrs.field(repr=False)
    username: str | None = None
    bonds: frozenset[int] | None = attrs.field(default=None, converter=_bond_set)
    can_write: bool = True

    def may_see(self, bond_id: int) -> bool:
        return self.bonds is None or bond_id in self.bonds

    def to_json(self) -> dict[str, Any]:
        bonds = None if self.bonds is None else sorted(self.bonds)
        return {**attrs.asdict(self), "bonds": bonds}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> User:
        return cls(**data)


def _default_interface(record: RoutingRecord) -> str:
    # The vendor's default for a route: "Auto", picked from the gateway and the connected
    # IP networks. A connected IP names the interface that receives its address.
    return "Auto" if record.kind is Kind.ROUTE else "eth1"


@attrs.frozen
class RoutingRecord:
    """One routing object as the server stores it.

    ``interface`` is served for connected IPs and routes (a route's defaults to "Auto"),
    ``gateway`` for routes (it must lie in the network of one of the bond's connected IPs)
    and ``include_private_wan`` (default false, as in v4) for connected IPs and routes;
    ``comment`` and ``nat`` are there so that clients learn to ignore fields they do not use.
    """

    bond_id: int
    kind: Kind
    id: int
    enabled: bool
    address: str
    interface: str = attrs.field(default=attrs.Factory(_default_interface, takes_self=True))
    include_private_wan: bool = False
    comment: str = ""
    nat: bool = False
    gateway: str | None = None

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.bond_id, self.kind, self.id)

    @property
    def address_key(self) -> AddressKey:
        return (self.kind, normalize_address(self.address))

    def api_fields(self) -> dict[str, Any]:
        """The object's JSON as the API serves it, without ``url`` (it depends on the request)."""
        fields: dict[str, Any] = {"id": self.id, "enabled": self.enabled}
        fields[self.kind.address_field] = self.address
        if self.kind is Kind.ROUTE:
            fields["gateway"] = self.gateway
        if self.kind is not Kind.CPE_NAT_IP:
            fields["interface"] = self.interface
        if self.kind is not Kind.CPE_NAT_IP:
            fields["include_private_wan"] = self.include_private_wan
        return {**fields, "comment": self.comment, "nat": self.nat}

    def to_json(self) -> dict[str, Any]:
        return {"bond_id": self.bond_id, "kind": self.kind.value, **self.api_fields()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoutingRecord:
        kind = Kind(data["kind"])
        optional = ("interface", "include_private_wan", "comment", "nat", "gateway")
        return cls(
            bond_id=int(data["bond_id"]),
            kind=kind,
            id=int(data["id"]),
            enabled=bool(data["enabled"]),
            address=str(data[kind.address_field]),
            **{name: data[name] for name in optional if name in data},
        )


def _records(value: Iterable[RoutingRecord]) -> tuple[RoutingRecord, ...]:
    return tuple(value)


def _users(value: Iterable[User]) -> tuple[User, ...]:
    return tuple(value)


def _ini_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@attrs.frozen
class Fixture:
    """Routing objects (ids unique across the server, like primary keys) and user accounts.

    ``master_bond`` and ``backup_bond`` name the HA pair that :meth:`pair` and
    :meth:`config_text` describe; other bonds may hold unrelated objects.
    """

    objects: tuple[RoutingRecord, ...] = attrs.field(converter=_records)
    users: tuple[User, ...] = attrs.field(converter=_users)
    master_bond: int | None = None
    backup_bond: int | None = None

    def __attrs_post_init__(self) -> None:
        counts = collections.Counter(record.id for record in self.objects)
        duplicates = sorted(object_id for object_id, n in counts.items() if n > 1)
        if duplicates:
            raise ValueError(f"object ids must be unique across bonds: {duplicates}")
        if (self.master_bond is None) != (self.backup_bond is None):
            raise ValueError("name both the master and the backup bond, or neither")
        if self.master_bond is not None and self.master_bond == self.backup_bond:
            raise ValueError("the master and the backup bond must differ")

    @property
    def bonds(self) -> frozenset[int]:
        """Every bond that exists: those holding objects and the pair's two."""
        named = {bond for bond in (self.master_bond, self.backup_bond) if bond is not None}
        return frozenset(record.bond_id for record in self.objects) | named

    def pair(self) -> Pair:
        """The floating objects of the pair: those whose address exists on both bonds."""
        if self.master_bond is None or self.backup_bond is None:
            raise ValueError("this fixture names no master/backup pair")
        master, backup = self.master_bond, self.backup_bond

        def keys(bond: int) -> set[AddressKey]:
            return {record.address_key for record in self.objects if record.bond_id == bond}

        shared = keys(master) & keys(backup)

        def side(bond: int) -> BondSide:
            def ids(kind: Kind) -> tuple[int, ...]:
                return tuple(
                    sorted(
                        record.id
                        for record in self.objects
                        if record.bond_id == bond
                        and record.kind is kind
                        and record.address_key in shared
                    )
                )

            return BondSide(bond, ids(Kind.CONNECTED_IP), ids(Kind.ROUTE), ids(Kind.CPE_NAT_IP))

        return Pair(side(master), side(backup))

    def find_user(self, name: str) -> User | None:
        """The account whose email or username is ``name``."""
        return next((u for u in self.users if name in (u.email, u.username)), None)

    def config_text(
        self,
        base_url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        **bondingadmin: object,
    ) -> str:
        """A ``swap-active-bond.conf`` for this pair against ``base_url``.

        The account defaults to the first one that may write; extra keyword arguments
        become (or override) ``[bondingadmin]`` lines, e.g. ``attempt_delay=0.05``.
        """
        account = self.find_user(user) if user else None
        account = account or next((u for u in self.users if u.can_write), None)
        if account is None and (user is None or password is None):
            raise ValueError("the fixture has no account that may write: pass user and password")
        options: dict[str, object] = {
            "host": base_url,
            "user": user or (account.email if account else ""),
            "passwd": password if password is not None else (account.password if account else ""),
            "verify_ssl": True,
            "timeout": 10,
            "attempts": 3,
            "attempt_delay": 5,
            **bondingadmin,
        }
        lines = ["[bondingadmin]", *(f"{key} = {_ini_value(v)}" for key, v in options.items())]
        lines.append("[bond]")
        pair = self.pair()
        for role in Role:
            side = pair.side(role)
            lines.append(f"{role.value}_bond_id = {side.bond_id}")
            lines.extend(
                f"{role.value}_{kind.config_stem}_ids = {', '.join(map(str, side.ids(kind)))}"
                for kind in Kind
                if side.ids(kind)
            )
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "master_bond": self.master_bond,
            "backup_bond": self.backup_bond,
            "objects": [record.to_json() for record in self.objects],
            "users": [user.to_json() for user in self.users],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fixture:
        return cls(
            objects=(RoutingRecord.from_json(item) for item in data.get("objects", ())),
            users=(User.from_json(item) for item in data.get("users", ())),
            master_bond=data.get("master_bond"),
            backup_bond=data.get("backup_bond"),
        )

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Fixture:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def example_fixture() -> Fixture:
    """The how-to's example: master bond 1 and backup bond 3, plus bond 5 of someone else.

    Floating: connected IPs 1/4 (203.0.113.1/30), routes 7/8 (198.51.100.0/24, gateway
    203.0.113.2: the customer's router, in the floating connected IP) and CPE NAT IPs 10/11
    (203.0.113.9/32), enabled on the master. Connected IPs 2 and 5 are the bonders' private
    link (192.168.66.1/30 and .2/30): both enabled, never floating.
    """
    conn, route, nat = Kind.CONNECTED_IP, Kind.ROUTE, Kind.CPE_NAT_IP
    private = "private link between the bonders"
    objects = (
        RoutingRecord(1, conn, 1, True, "203.0.113.1/30"),
        RoutingRecord(1, conn, 2, True, "192.168.66.1/30", comment=private),
        RoutingRecord(5, conn, 3, True, "198.18.0.1/30", comment="another customer's bond"),
        RoutingRecord(3, conn, 4, False, "203.0.113.1/30"),
        RoutingRecord(3, conn, 5, True, "192.168.66.2/30", comment=private),
        RoutingRecord(1, route, 7, True, "198.51.100.0/24", gateway="203.0.113.2"),
        RoutingRecord(3, route, 8, False, "198.51.100.0/24", gateway="203.0.113.2"),
        RoutingRecord(1, nat, 10, True, "203.0.113.9/32"),
        RoutingRecord(3, nat, 11, False, "203.0.113.9/32"),
    )
    user = User(EXAMPLE_USER, EXAMPLE_PASSWORD, username=EXAMPLE_USERNAME)
    return Fixture(objects, (user,), master_bond=1, backup_bond=3)


_MAX_PER_KIND = 4096  # the /24 routes come from 172.16.0.0/12
_GENERATED_CONNECTED = ipaddress.IPv4Address("10.0.0.1")  # connected IP i: 10.0.0.1 + 4i /30


def _generated_address(kind: Kind, index: int) -> str:
    if kind is Kind.CONNECTED_IP:
        return f"{_GENERATED_CONNECTED + 4 * index}/30"
    if kind is Kind.ROUTE:
        return f"{ipaddress.IPv4Address('172.16.0.0') + 256 * index}/24"
    return f"{ipaddress.IPv4Address('10.128.0.0') + index}/32"


def pair_fixture(
    per_kind: int,
    *,
    master_bond: int = 1,
    backup_bond: int = 2,
    active: Role | str = Role.MASTER,
    user: str = EXAMPLE_USER,
    password: str = EXAMPLE_PASSWORD,
) -> Fixture:
    """A generated pair: ``per_kind`` floating objects of each kind on each bond.

    Both bonds carry the same addresses (distinct per object); ids run from 1 on the master
    bond, kinds in config order, then on the backup bond. Objects are enabled on the
    ``active`` bond ("master" or "backup") only. Route *i*'s gateway lies in connected IP
    *i* (the other address of its /30), so each route depends on one floating connected IP.
    """
    if not 0 <= per_kind <= _MAX_PER_KIND:
        raise ValueError(f"per_kind must be between 0 and {_MAX_PER_KIND}, not {per_kind}")
    active_bond = master_bond if Role(active) is Role.MASTER else backup_bond
    ids = itertools.count(1)

    def bond_objects(bond: int) -> Iterator[RoutingRecord]:
        for kind in Kind:
            for index in range(per_kind):
                address = _generated_address(kind, index)
                gateway = (str(_GENERATED_CONNECTED + 4 * index + 1) if kind is Kind.ROUTE
                           else None)
                yield RoutingRecord(bond, kind, next(ids), bond == active_bond, address,
                                    gateway=gateway)

    objects = [*bond_objects(master_bond), *bond_objects(backup_bond)]
    return Fixture(objects, (User(user, password),), master_bond, backup_bond)
