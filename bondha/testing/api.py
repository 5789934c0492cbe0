"""The routing-object endpoints, answering as Django REST framework does.

Order of checks, as in DRF: URL resolution (HTML 404), authentication (401), method (405),
bond (404 unknown, 403 outside the account's space), write permission (403), object (404),
then the body (415, 400).
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

import attrs

from ..model import Kind
from .fixtures import RoutingRecord, User
from .messages import Request, Response, detail, html_not_found, json_response
from .store import DependencyViolation, ObjectStore

_ROUTE = re.compile(
    r"/api/v(?P<version>[0-9]+)/bonds/(?P<bond>[0-9]+)/(?P<kind>{})/(?:(?P<id>[0-9]+)/)?".format(
        "|".join(kind.value for kind in Kind)
    )
)
# The bonds the account can see, as ``{"id", "url"}`` items (least-privilege checks use it).
_BONDS = re.compile(r"/api/v(?P<version>[0-9]+)/bonds/")
_DETAIL_METHODS = ("GET", "PATCH", "PUT", "OPTIONS")
_READ_METHODS = ("GET", "OPTIONS")
_CHALLENGE = ("WWW-Authenticate", 'Basic realm="api"')

# Writable fields: (applies to kind, JSON type, DRF's message for a wrong type).
_WRITABLE: dict[str, tuple[tuple[Kind, ...], type, str]] = {
    "enabled": (tuple(Kind), bool, "Must be a valid boolean."),
    "include_private_wan": ((Kind.CONNECTED_IP, Kind.ROUTE), bool, "Must be a valid boolean."),
    "comment": (tuple(Kind), str, "Not a valid string."),
}


@attrs.frozen
class _Route:
    version: int
    bond_id: int
    kind: Kind
    id: int | None

    @property
    def methods(self) -> tuple[str, ...]:
        return _READ_METHODS if self.id is None else _DETAIL_METHODS


def object_json(record: RoutingRecord, base_url: str, version: int) -> dict[str, Any]:
    """The object as the API serves it, ``url`` under ``base_url`` and API ``version``."""
    fields = record.api_fields()
    url = f"{base_url}/api/v{version}/bonds/{record.bond_id}/{record.kind.value}/{record.id}/"
    return {"id": fields.pop("id"), "url": url, **fields}


def _field_metadata(kind: Kind) -> dict[str, dict[str, Any]]:
    """The ``actions.PUT`` part of an OPTIONS answer, as DRF's SimpleMetadata describes fields."""
    types = {"id": "integer", "url": "field", kind.address_field: "string"}
    if kind is Kind.ROUTE:
        types["gateway"] = "string"
    if kind is not Kind.CPE_NAT_IP:
        types["interface"] = "string"
    types.update(
        (name, "boolean" if json_type is bool else "string")
        for name, (kinds, json_type, _) in _WRITABLE.items()
        if kind in kinds
    )
    types["nat"] = "boolean"
    return {
        name: {
            "type": type_name,
            "required": False,
            "read_only": name not in _WRITABLE,
            "label": "ID" if name == "id" else name.replace("_", " ").capitalize(),
        }
        for name, type_name in types.items()
    }


def _validate(kind: Kind, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(changes, errors): writable fields only, everything else ignored as DRF ignores it."""
    changes: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, (kinds, json_type, message) in _WRITABLE.items():
        if kind not in kinds or name not in data:
            continue
        value = data[name]
        if value is None:
            errors[name] = ["This field may not be null."]
        elif type(value) is not json_type:  # a JSON 1 is not a boolean here
            errors[name] = [message]
        else:
            changes[name] = value
    return changes, errors


def _parse_body(request: Request) -> dict[str, Any] | Response:
    if not request.body.strip():
        return {}
    media_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return detail(415, f'Unsupported media type "{media_type}" in request.')
    try:
        data = json.loads(request.body)
    except ValueError as exc:
        return detail(400, f"JSON parse error - {exc}")
    if not isinstance(data, dict):
        message = f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
        return json_response(400, {"non_field_errors": [message]})
    return data


def _page_number(raw: str, pages: int) -> int:
    """The requested page; 0 (out of range) for text DRF would not accept."""
    if raw == "last":
        return pages
    try:
        return int(raw, 10)
    except ValueError:
        return 0


class Api:
    """Maps a :class:`Request` to a :class:`Response` against one :class:`ObjectStore`."""

    def __init__(
        self,
        store: ObjectStore,
        users: Iterable[User],
        versions: Iterable[int],
        page_size: int | None,
    ) -> None:
        self._store = store
        self._versions = frozenset(versions)
        self._page_size = page_size
        self._users: dict[str, User] = {}
        for user in users:
            self._users[user.email] = user
            if user.username:
                self._users[user.username] = user

    def handle(self, request: Request) -> Response:
        bonds = _BONDS.fullmatch(request.path)
        if bonds is not None and int(bonds["version"]) in self._versions:
            return self._bonds(request, int(bonds["version"]))
        match = _ROUTE.fullmatch(request.path)
        if match is None or int(match["version"]) not in self._versions:
            return html_not_found()
        object_id = match["id"]
        route = _Route(
            int(match["version"]),
            int(match["bond"]),
            Kind(match["kind"]),
            None if object_id is None else int(object_id),
        )
        user = self._authenticate(request.header("authorization"))
        if isinstance(user, Response):
            return user.with_headers(("Allow", ", ".join(route.methods)))
        allowed = route.methods
        if route.id is not None and not user.can_write:
            allowed = _READ_METHODS
        reply = self._dispatch(request, route, user, allowed)
        return reply.with_headers(("Allow", ", ".join(allowed)), ("Vary", "Accept"))

    def _bonds(self, request: Request, version: int) -> Response:
        allow = ("Allow", ", ".join(_READ_METHODS))
        user = self._authenticate(request.header("authorization"))
        if isinstance(user, Response):
            return user.with_headers(allow)
        if request.method not in _READ_METHODS:
            return detail(405, f'Method "{request.method}" not allowed.', allow)
        if request.method == "OPTIONS":
            return json_response(200, {"name": "Bond List", "description": "",
                                       "renders": ["application/json"],
                                       "parses": ["application/json"]}, allow)
        root = f"{request.base_url}/api/v{version}/bonds/"
        items = [{"id": bond, "url": f"{root}{bond}/"}
                 for bond in sorted(self._store.bonds) if user.may_see(bond)]
        return json_response(200, items, allow, ("Vary", "Accept"))

    def _authenticate(self, header: str | None) -> User | Response:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return detail(401, "Authentication credentials were not provided.", _CHALLENGE)
        invalid = detail(401, "Invalid username/password.", _CHALLENGE)
        try:
            credentials = base64.b64decode(token.strip(), validate=True).decode()
        except ValueError:  # bad base64 or UTF-8
            return invalid
        name, colon, password = credentials.partition(":")
        user = self._users.get(name)
        if not colon or user is None:
            return invalid
        if not hmac.compare_digest(user.password.encode(), password.encode()):
            return invalid
        return user

    def _dispatch(
        self, request: Request, route: _Route, user: User, allowed: tuple[str, ...]
    ) -> Response:
        method = request.method
        refusal = self._refusal(method, route, user, allowed)
        if refusal is not None:
            return refusal
        if route.id is None:
            return self._options(route, user) if method == "OPTIONS" else self._list(request, route)
        record = self._store.get(route.bond_id, route.kind, route.id)
        if record is None:
            return detail(404, "Not found.")
        if method == "OPTIONS":
            return self._options(route, user)
        if method == "GET":
            return json_response(200, object_json(record, request.base_url, route.version))
        return self._write(request, route, record)

    def _refusal(
        self, method: str, route: _Route, user: User, allowed: tuple[str, ...]
    ) -> Response | None:
        """Why this request may not go on, before any object is looked up."""
        if method not in route.methods:
            return detail(405, f'Method "{method}" not allowed.')
        if route.bond_id not in self._store.bonds:
            return detail(404, "Not found.")
        if not user.may_see(route.bond_id) or method not in allowed:
            return detail(403, "You do not have permission to perform this action.")
        return None

    def _list(self, request: Request, route: _Route) -> Response:
        items = [
            object_json(record, request.base_url, route.version)
            for record in self._store.listing(route.bond_id, route.kind)
        ]
        if self._page_size is None:
            return json_response(200, items)
        size = self._page_size
        pages = max(1, math.ceil(len(items) / size))
        page = _page_number(parse_qs(request.query).get("page", ["1"])[-1], pages)
        if not 1 <= page <= pages:
            return detail(404, "Invalid page.")
        base = f"{request.base_url}{request.path}"
        previous = None if page == 1 else base if page == 2 else f"{base}?page={page - 1}"
        return json_response(
            200,
            {
                "count": len(items),
                "next": f"{base}?page={page + 1}" if page < pages else None,
                "previous": previous,
                "results": items[(page - 1) * size : page * size],
            },
        )

    def _options(self, route: _Route, user: User) -> Response:
        label = route.kind.label
        data: dict[str, Any] = {
            "name": f"{label[0].upper()}{label[1:]} {'List' if route.id is None else 'Detail'}",
            "description": "",
            "renders": ["application/json"],
            "parses": ["application/json"],
        }
        if route.id is not None and user.can_write:
            data["actions"] = {"PUT": _field_metadata(route.kind)}
        return json_response(200, data)

    def _write(self, request: Request, route: _Route, record: RoutingRecord) -> Response:
        data = _parse_body(request)
        if isinstance(data, Response):
            return data
        changes, errors = _validate(route.kind, data)
        if errors:
            return json_response(400, errors)
        try:
            updated = self._store.update(record.ref, changes, method=request.method, body=data)
        except DependencyViolation as exc:
            # A field error, as DRF's validation gives it: on the route's gateway, or on the
            # connected IP's enabled flag that would strand routes.
            field = "gateway" if route.kind is Kind.ROUTE else "enabled"
            return json_response(400, {field: [str(exc)]})
        return json_response(200, object_json(updated, request.base_url, route.version))
