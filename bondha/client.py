"""The only module that speaks HTTP: routing objects in and out of the management server.

Every response is mapped to a model value or to one :mod:`bondha.errors`
exception whose message names the object and bond; a non-JSON body (an
HTML page from a proxy, garbage) is a clean error, never a traceback.
Tests and users inject an ``httpx.AsyncBaseTransport``; nothing is global.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import ssl
import urllib.request
from collections.abc import Collection, Iterator
from typing import Any, Callable, Union
from urllib.parse import urljoin, urlsplit

import attrs
import httpx

from . import retry
from .config import ApiSettings, HaSettings
from .errors import (
    ApiError,
    AuthError,
    BadRequest,
    BadResponse,
    CertificateError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
)
from .lanes import Lanes
from .model import Kind, ObjectRef, RoutingObject
from .retry import RetryPolicy

__all__ = ["DEFAULT_POOL_SIZE", "ApiClient", "Counters"]

DEFAULT_POOL_SIZE = HaSettings().pool_size  # one definition: the [bondha] default
_READ_ATTEMPTS = 1000  # "until the deadline": the policy's deadline ends them long before
log = logging.getLogger("bondha.client")
Where = Union[ObjectRef, tuple[int, Kind], str]  # an object, a collection, or said in words


@attrs.define
class Counters:
    """Requests made, for reports and benchmarks (attempts included)."""

    reads: int = 0
    writes: int = 0


class ApiClient:
    """Reads and toggles routing objects, retrying what a retry can fix.

    Use as ``async with ApiClient(settings) as api: ...``. ``transport``
    replaces the network (``httpx.MockTransport``, an ASGI app, a test
    server's transport); ``pool_size`` bounds the connections kept open;
    ``guard`` is called before each write and may raise to stop the writing.
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        # Called before every write and during retry waits; raises (Superseded) to stop a
        # run that a newer keepalived event or a shutdown has taken over.
        self.guard = guard
        self.pool_size = pool_size
        self.policy = policy or RetryPolicy(settings.attempts, settings.attempt_delay)
        self.counters = Counters()
        self._secrets = _secret_forms(settings)
        token = base64.b64encode(f"{settings.user}:{settings.password.value}".encode())
        # Requests go straight to the transport: httpx's client layer (URL merging, cookie
        # jar, auth flow, redirects) cost more CPU per request than the HTTP itself and does
        # nothing bondha needs (docs/performance.md). The transport seam stays httpx's.
        self._headers = httpx.Headers({"Accept": "application/json", "User-Agent": "bondha",
                                       "Authorization": f"Basic {token.decode('ascii')}"})
        self._transport = transport or _default_transport(settings, pool_size)
        self._urls: dict[str, httpx.URL] = {}

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    # -- URLs ---------------------------------------------------------------

    def api_root(self, version: int | None = None) -> str:
        """The configured API root, or the same server's root of another ``version``."""
        if version is None:
            return self.settings.api_root
        return f"{self.settings.base_url}/api/v{version}/"

    def collection_url(self, bond_id: int, kind: Kind, version: int | None = None) -> str:
        return f"{self.api_root(version)}bonds/{bond_id}/{kind.value}/"

    def detail_url(self, ref: ObjectRef, version: int | None = None) -> str:
        return f"{self.collection_url(ref.bond_id, ref.kind, version)}{ref.id}/"

    # -- operations ---------------------------------------------------------

    async def get_object(self, ref: ObjectRef, version: int | None = None) -> RoutingObject:
        body = await self._call("GET", self.detail_url(ref, version), ref)
        return _parse_object(body, ref.bond_id, ref.kind, ref)

    async def allowed(self, url: str, where: Where) -> tuple[frozenset[str] | None, Any]:
        """OPTIONS ``url``: the methods its ``Allow`` header lists (None: no header) and the
        metadata body (None: not JSON). Reads only; errors map as for any other request."""

        async def once() -> tuple[frozenset[str] | None, Any]:
            with self._scrubbed():
                response = await self._send("OPTIONS", url, where, None)
                if not response.is_success:
                    raise _error_for(response, "OPTIONS", where, self.settings.user)
            allow = response.headers.get("allow")
            methods = None if allow is None else frozenset(
                method.strip().upper() for method in allow.split(",") if method.strip())
            try:
                body = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            return methods, body

        return await retry.call(self.policy, f"OPTIONS {_describe(where)}", once)

    async def list_bonds(self) -> list[int]:
        """The ids of every bond the account can see (``GET bonds/``, paginated or not)."""
        items = await self._collect(f"{self.settings.api_root}bonds/", "the bonds list")
        ids = []
        for item in items:
            bond_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(bond_id, int) or isinstance(bond_id, bool):
                raise BadResponse(f"the bonds list: an item's 'id' is {_shape(bond_id)}, "
                                  "not a whole number")
            ids.append(bond_id)
        return ids

    async def set_enabled(self, ref: ObjectRef, enabled: bool) -> RoutingObject:
        """PATCH ``enabled`` and return the object as the server now reports it."""
        body = await self._call("PATCH", self.detail_url(ref), ref, {"enabled": enabled})
        if body is None:  # 204 No Content: accepted; the verification read will tell
            return RoutingObject(ref, enabled)
        obj = _parse_object(body, ref.bond_id, ref.kind, ref)
        if obj.enabled != enabled:
            raise BadResponse(f"{ref}: server accepted enabled={enabled} but reports "
                              f"enabled={obj.enabled}", ref=ref)
        return obj

    async def list_objects(self, bond_id: int, kind: Kind,
                           only: Collection[int] | None = None) -> list[RoutingObject]:
        """The objects of one kind on one bond, following pagination.

        With ``only``, other items need nothing but an id: objects bondha does not
        manage may carry fields it does not know, and must not fail the read.
        """
        items = await self._collect(self.collection_url(bond_id, kind), (bond_id, kind))
        return [_parse_object(item, bond_id, kind) for item in items
                if only is None or _item_id(item, bond_id, kind) in only]

    async def _collect(self, url: str, where: Where) -> list[Any]:
        """The items of a collection, following pagination."""
        next_url: str | None = url
        items: list[Any] = []
        seen: set[str] = set()
        with self._scrubbed():  # the links are the server's text
            while next_url is not None:
                if next_url in seen:
                    raise BadResponse(f"{_describe(where)}: pagination loops at {next_url}")
                seen.add(next_url)
                body = await self._call("GET", next_url, where)
                page, next_url = self._page(body, _describe(where), next_url)
                items.extend(page)
        return items

    def _page(self, body: Any, where: str, url: str) -> tuple[list[Any], str | None]:
        """Items and next URL of a bare list or a DRF envelope."""
        if isinstance(body, list):
            return body, None
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise BadResponse(f"{where}: expected a JSON list or a paginated "
                              f"object with 'results', got {_shape(body)}")
        next_url = body.get("next")
        if next_url is None:
            return body["results"], None
        if not isinstance(next_url, str):
            raise BadResponse(f"{where}: 'next' is {_shape(next_url)}, not a URL")
        absolute = urljoin(url, next_url)
        # Credentials go with every request: never follow a link off the configured server.
        if urlsplit(absolute)[:2] != urlsplit(self.settings.base_url)[:2]:
            raise BadResponse(f"{where}: 'next' points off the management server ({absolute})")
        return body["results"], absolute

    # -- one request ----------------------------------------------------------

    async def _call(self, method: str, url: str, where: Where,
                    body: dict[str, Any] | None = None) -> Any:
        what = f"{method} {_describe(where)}"
        policy = self.policy
        if method == "GET" and policy.deadline_at is not None:
            # A read changes nothing: retry it until the deadline, not just `attempts` times.
            policy = attrs.evolve(policy, attempts=_READ_ATTEMPTS)
        return await retry.call(policy, what, lambda: self._once(method, url, where, body),
                                self.guard)

    def _timeout(self) -> float:
        remaining = self.policy.remaining()
        return self.settings.timeout if remaining is None else max(0.1, min(
            self.settings.timeout, remaining))

    async def _once(self, method: str, url: str, where: Where,
                    body: dict[str, Any] | None) -> Any:
        with self._scrubbed():
            response = await self._send(method, url, where, body)
            return _decode(response, method, where, self.settings.user)

    @contextlib.contextmanager
    def _scrubbed(self) -> Iterator[None]:
        """Blank out the password in errors: a server or proxy may echo the request back."""
        try:
            yield
        except ApiError as exc:
            text = str(exc)
            for secret in self._secrets:
                text = text.replace(secret, "********")
            exc.args = (text,)
            raise

    async def _exchange(self, method: str, url: str,
                        body: dict[str, Any] | None) -> httpx.Response:
        """One request through the transport, its body read whole; httpx's exceptions."""
        timeout = self._timeout()
        parsed = self._urls.get(url)
        if parsed is None:  # parsing a URL costs more than sending it; a run repeats each
            parsed = self._urls[url] = httpx.URL(url)
        request = httpx.Request(method, parsed, headers=self._headers, json=body, extensions={
            "timeout": {"connect": timeout, "read": timeout, "write": timeout,
                        "pool": timeout}})
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        response.request = request
        return response

    async def _send(self, method: str, url: str, where: Where,
                    body: dict[str, Any] | None) -> httpx.Response:
        """One request; a failure to get any answer becomes a TransportError."""
        if method in ("GET", "OPTIONS", "HEAD"):
            self.counters.reads += 1
        else:
            if self.guard is not None:
                self.guard()
            self.counters.writes += 1
        try:
            return _without_secrets(await self._exchange(method, url, body), self._secrets)
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"{method} {_describe(where)}: no answer from {_origin(url)} in time "
                f"({type(exc).__name__})", url=url) from None
        except httpx.HTTPError as exc:
            reason = _certificate_problem(exc)
            if reason is not None:
                raise CertificateError(
                    f"{method} {_describe(where)}: the TLS certificate of {_origin(url)} is not "
                    f"trusted ({reason}); set [bondingadmin] ca_bundle to the file of the CA "
                    "that signed it", url=url) from None
            raise TransportError(f"{method} {_describe(where)}: cannot reach {_origin(url)}: "
                                 f"{_one_line(str(exc)) or type(exc).__name__}", url=url) from None
        except httpx.InvalidURL as exc:  # not an HTTPError: a hostile 'next' link can cause it
            raise BadResponse(f"{method} {_describe(where)}: unusable URL {url!r}: "
                              f"{_one_line(str(exc))}", url=url) from None


def _secret_forms(settings: ApiSettings) -> tuple[str, ...]:
    """The password and the Authorization token, as a server could quote them back.

    A password under 4 characters is left alone: blanking every such substring would garble
    messages without protecting anything.
    """
    password = settings.password.value
    if len(password) < 4:
        return ()
    token = base64.b64encode(f"{settings.user}:{password}".encode()).decode("ascii")
    return token, password


def _without_secrets(response: httpx.Response, secrets: tuple[str, ...]) -> httpx.Response:
    """The response with the credentials blanked out of its body, before any of it is quoted
    in a message (where a 60-character hint could otherwise show a piece of them)."""
    scrubbed = content = response.content
    for secret in secrets:
        scrubbed = scrubbed.replace(secret.encode(), b"********")
    if scrubbed == content:
        return response
    headers = [(name, value) for name, value in response.headers.multi_items()
               if name.lower() not in ("content-encoding", "content-length")]
    return httpx.Response(response.status_code, headers=headers, content=scrubbed,
                          request=response.request)


def _certificate_problem(exc: BaseException) -> str | None:
    """The verification failure behind a connection error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return _one_line(seen.verify_message or str(seen))
        seen = seen.__cause__ or seen.__context__
    return None


# -- the default transport: a pool of single-connection lanes ------------------

def _default_transport(settings: ApiSettings, pool_size: int) -> httpx.AsyncBaseTransport:
    """Our lean lanes, unless the environment (``HTTPS_PROXY`` and friends, as curl and httpx
    read them) routes the server through a proxy: then httpx's own transport, via the proxy."""
    parts = urlsplit(settings.base_url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        return httpx.AsyncHTTPTransport(verify=_tls_context(settings), limits=limits,
                                        proxy=proxy)
    return Lanes(pool_size, _tls_context(settings))


def _tls_context(settings: ApiSettings) -> ssl.SSLContext:
    """One TLS context for every lane; none worth loading for a plain-http server.

    Loading the CA bundle takes about 40 ms, a fifth of a small failover's start-up. An
    ``http://`` base URL never needs it: redirects are not followed and pagination links
    must stay on the same origin, so such a client never opens a TLS connection (the bare
    context would refuse any certificate if it did).
    """
    if settings.base_url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if settings.verify_ssl and settings.ca_bundle:
        return ssl.create_default_context(cafile=settings.ca_bundle)
    return httpx.create_ssl_context(verify=settings.verify_ssl)  # the system's CAs, or none


# -- response mapping (module level: pure functions of a response) -----------

def _decode(response: httpx.Response, method: str, where: Where, user: str) -> Any:
    if response.is_success:
        if method != "GET" and (response.status_code == 204 or not response.content):
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadResponse(
                f"{method} {_describe(where)}: HTTP {response.status_code} with a body that is "
                f"not JSON ({_body_hint(response)})", status=response.status_code,
                url=str(response.url)) from None
    raise _error_for(response, method, where, user)


_ERRORS: dict[int, Callable[..., ApiError]] = {
    401: AuthError, 403: PermissionDenied, 404: NotFound, 429: RateLimited,
}


def _error_for(response: httpx.Response, method: str, where: Where, user: str) -> ApiError:
    status = response.status_code
    detail = _detail(response)
    subject = _describe(where)
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
    cls = _ERRORS.get(status) or (ServerError if status >= 500 else BadRequest)
    return cls(message, status=status, ref=where if isinstance(where, ObjectRef) else None,
               url=str(response.url), retry_after=_retry_after(response))


def _item_id(data: Any, bond_id: int, kind: Kind) -> int:
    """The id of a list item, which every item must have."""
    object_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(object_id, int) or isinstance(object_id, bool):
        raise BadResponse(f"an item of bond {bond_id} {kind.value}: expected an object with "
                          f"a whole-number 'id', got {_shape(data)}")
    return object_id


def _parse_object(data: Any, bond_id: int, kind: Kind,
                  expected: ObjectRef | None = None) -> RoutingObject:
    where = str(expected) if expected else f"an item of bond {bond_id} {kind.value}"
    if not isinstance(data, dict):
        raise BadResponse(f"{where}: expected a JSON object, got {_shape(data)}", ref=expected)
    object_id = data.get("id")
    if not isinstance(object_id, int) or isinstance(object_id, bool):
        raise BadResponse(f"{where}: 'id' is {_shape(object_id)}, not a whole number", ref=expected)
    if expected is not None and object_id != expected.id:
        raise BadResponse(f"{where}: server answered with object {object_id}", ref=expected)
    ref = ObjectRef(bond_id, kind, object_id)
    enabled = data.get("enabled")
    if not isinstance(enabled, bool):
        raise BadResponse(f"{ref}: 'enabled' is {_shape(enabled)}, not true or false", ref=ref)
    address = data.get(kind.address_field)
    if address is not None and not isinstance(address, str):
        raise BadResponse(f"{ref}: '{kind.address_field}' is {_shape(address)}, not text", ref=ref)
    gateway = data.get("gateway") if kind is Kind.ROUTE else None
    if gateway is not None and not isinstance(gateway, str):
        raise BadResponse(f"{ref}: 'gateway' is {_shape(gateway)}, not text", ref=ref)
    return RoutingObject(ref, enabled, address or None, gateway or None)


def _detail(response: httpx.Response) -> str:
    """The server's reason in one line: DRF's detail, field errors, or a hint of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _body_hint(response)
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            return _one_line(body["detail"])
        return _one_line("; ".join(f"{k}: {_flatten(v)}" for k, v in body.items())) or "{}"
    return _one_line(_flatten(body)) or _body_hint(response)


def _flatten(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_flatten(v) for v in value)
    return str(value)


def _body_hint(response: httpx.Response) -> str:
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if "html" in content_type or response.text.lstrip()[:1] == "<":
        return f"an HTML page{', ' + content_type if content_type else ''}"
    text = _one_line(response.text)
    return repr(text[:60] + ("..." if len(text) > 60 else "")) if text else "an empty body"


def _retry_after(response: httpx.Response) -> float | None:
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


def _describe(where: Where) -> str:
    if isinstance(where, str):
        return where
    if isinstance(where, ObjectRef):
        return str(where)
    bond_id, kind = where
    return f"the {kind.label}s of bond {bond_id}"


def _shape(value: Any) -> str:
    if value is None:
        return "missing"
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"

