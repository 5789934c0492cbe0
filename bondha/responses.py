"""Answers of the management server into model values or :mod:`bondha.errors` exceptions.

Pure functions of a response: every message names the object and bond; a non-JSON body
(an HTML page from a proxy, garbage) is a clean error, never a traceback.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Union
from urllib.parse import urlsplit

from .errors import (
    ApiError,
    AuthError,
    BadRequest,
    BadResponse,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
)
from .model import Kind, ObjectRef, RoutingObject
from .printable import printable
from .wire import Answer

__all__ = ["Where", "body_hint", "decode", "describe", "error_for", "item_id", "one_line",
           "origin", "parse_object", "shape"]

Where = Union[ObjectRef, tuple[int, Kind], str]  # an object, a collection, or said in words


def decode(response: Answer, method: str, where: Where, user: str) -> Any:
    if response.is_success:
        if method != "GET" and (response.status_code == 204 or not response.content):
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadResponse(
                f"{method} {describe(where)}: HTTP {response.status_code} with a body that is "
                f"not JSON ({body_hint(response)})", status=response.status_code,
                url=str(response.url)) from None
    raise error_for(response, method, where, user)


_ERRORS: dict[int, Callable[..., ApiError]] = {
    401: AuthError, 403: PermissionDenied, 404: NotFound, 429: RateLimited,
}


def error_for(response: Answer, method: str, where: Where, user: str) -> ApiError:
    status = response.status_code
    detail = _detail(response)
    subject = describe(where)
    if status == 401:
        message = f"management server refused user {user!r}: {detail}"
    elif status == 403:
        action = "read" if method == "GET" else "change"
        message = f"user {user!r} may not {action} {subject}: {detail}"
    elif status == 404 and detail.startswith("an HTML page"):
        # Django's own page: no view serves the URL, so the id is not what is wrong.
        message = (f"{subject} not found: the server has no such URL ({detail}); check host "
                   "and api_version")
    elif status == 404:
        message = f"{subject} not found (unknown id, or it belongs to another bond): {detail}"
    else:
        message = f"{method} {subject}: HTTP {status}: {detail}"
    # 501 Not Implemented (a server or proxy that does not serve the method, often OPTIONS)
    # answers the same way every time, like a 4xx: not retried.
    cls = _ERRORS.get(status) or (ServerError if status >= 500 and status != 501
                                  else BadRequest)
    return cls(message, status=status, ref=where if isinstance(where, ObjectRef) else None,
               url=str(response.url), retry_after=_retry_after(response))


def item_id(data: Any, bond_id: int, kind: Kind) -> int:
    """The id of a list item, which every item must have."""
    object_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(object_id, int) or isinstance(object_id, bool):
        raise BadResponse(f"an item of bond {bond_id} {kind.value}: expected an object with "
                          f"a whole-number 'id', got {shape(data)}")
    return object_id


def parse_object(data: Any, bond_id: int, kind: Kind,
                  expected: ObjectRef | None = None) -> RoutingObject:
    where = str(expected) if expected else f"an item of bond {bond_id} {kind.value}"
    if not isinstance(data, dict):
        raise BadResponse(f"{where}: expected a JSON object, got {shape(data)}", ref=expected)
    object_id = data.get("id")
    if not isinstance(object_id, int) or isinstance(object_id, bool):
        raise BadResponse(f"{where}: 'id' is {shape(object_id)}, not a whole number", ref=expected)
    if expected is not None and object_id != expected.id:
        raise BadResponse(f"{where}: server answered with object {object_id}", ref=expected)
    ref = ObjectRef(bond_id, kind, object_id)
    enabled = data.get("enabled")
    if not isinstance(enabled, bool):
        raise BadResponse(f"{ref}: 'enabled' is {shape(enabled)}, not true or false", ref=ref)
    address = data.get(kind.address_field)
    if address is not None and not isinstance(address, str):
        raise BadResponse(f"{ref}: '{kind.address_field}' is {shape(address)}, not text", ref=ref)
    gateway = data.get("gateway") if kind is Kind.ROUTE else None
    if gateway is not None and not isinstance(gateway, str):
        raise BadResponse(f"{ref}: 'gateway' is {shape(gateway)}, not text", ref=ref)
    # The server's text: escaped here, so that no view can print a control character.
    return RoutingObject(ref, enabled, printable(address) if address else None,
                         printable(gateway) if gateway else None)


def _detail(response: Answer) -> str:
    """The server's reason in one line: DRF's detail, field errors, or a hint of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body_hint(response)
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            return one_line(body["detail"])
        return one_line("; ".join(f"{k}: {_flatten(v)}" for k, v in body.items())) or "{}"
    return one_line(_flatten(body)) or body_hint(response)


def _flatten(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_flatten(v) for v in value)
    return str(value)


def body_hint(response: Answer) -> str:
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if "html" in content_type or response.text.lstrip()[:1] == "<":
        return f"an HTML page{', ' + content_type if content_type else ''}"
    text = one_line(response.text)
    return repr(text[:60] + ("..." if len(text) > 60 else "")) if text else "an empty body"


def _retry_after(response: Answer) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        from datetime import datetime, timezone
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def describe(where: Where) -> str:
    if isinstance(where, str):
        return where
    if isinstance(where, ObjectRef):
        return str(where)
    bond_id, kind = where
    return f"the {kind.label}s of bond {bond_id}"


def shape(value: Any) -> str:
    if value is None:
        return "missing"
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)


def one_line(text: str) -> str:
    return printable(" ".join(text[:1000].split())[:200])


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"

