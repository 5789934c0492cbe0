"""The management API's operations: routing objects in and out of the server, with retries.

Each operation is one or a few requests through the transport (:mod:`bondha.transport`),
retried as :mod:`bondha.retry` allows; each answer becomes a model value or one
:mod:`bondha.errors` exception (:mod:`bondha.responses`). Tests and users inject an
``httpx.AsyncBaseTransport`` (or a :class:`bondha.wire.Wire`); nothing is global, and
httpx is loaded only for a transport of its own (:mod:`bondha.httpxwire`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any, Callable, Union
from urllib.parse import urljoin, urlsplit

import attrs

from . import retry
from .config.settings import ApiSettings, Config, HaSettings
from .errors import (
    ApiError,
    BadResponse,
    CertificateError,
    HandshakeError,
    TransportError,
)
from .model import Kind, ObjectRef, RoutingObject
from .printable import bounded
from .responses import (
    Where,
    decode,
    describe,
    error_for,
    item_id,
    one_line,
    origin,
    parse_object,
    shape,
)
from .retry import RetryPolicy
from .transport import default_transport
from .wire import (
    Answer,
    AnswerTooLarge,
    InvalidURL,
    Request,
    TimedOut,
    Wire,
    WireError,
    json_body,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_POOL_SIZE", "ApiClient", "Counters", "client_for"]

DEFAULT_POOL_SIZE = HaSettings().pool_size  # one definition: the [bondha] default
DEFAULT_MAX_BODY = HaSettings().max_body
DEFAULT_MAX_PAGES = HaSettings().max_pages
_READ_ATTEMPTS = retry.UNTIL_DEADLINE
# Without a run's deadline (a library caller, discover), one request and its whole answer
# take at most this many read timeouts: a server that trickles must still end.
_TIMEOUTS_PER_EXCHANGE = 3
log = logging.getLogger("bondha.client")
# What carries the requests: bondha's own wire, or any httpx transport (tests, users).
Transport = Union["httpx.AsyncBaseTransport", Wire]


@attrs.define
class Counters:
    """Requests made, for reports and benchmarks (attempts included)."""

    reads: int = 0
    writes: int = 0


class ApiClient:
    """Reads and toggles routing objects, retrying what a retry can fix.

    Use as ``async with ApiClient(settings) as api: ...``. ``transport``
    replaces the network (``httpx.MockTransport``, an ASGI app, httpx's
    HTTP/2 transport, or a :class:`bondha.wire.Wire`); ``pool_size`` bounds
    the connections kept open;
    ``guard`` is called before each write and may raise to stop the writing.
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        policy: RetryPolicy | None = None,
        transport: Transport | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        guard: Callable[[], None] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.settings = settings
        # The most bytes of one answer (of all pages, for a paginated list) and the most
        # pages of one list: a broken or hostile server must not fill the memory.
        self.max_body = max_body
        self.max_pages = max_pages
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
        # nothing bondha needs (docs/performance.md).
        self._headers = [(b"accept", b"application/json"), (b"user-agent", b"bondha"),
                         (b"authorization", b"Basic " + token)]
        self._wire = _wire_for(transport, max_body) if transport is not None else (
            default_transport(settings, pool_size, max_body))

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._wire.aclose()

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
        return parse_object(body, ref.bond_id, ref.kind, ref)

    async def allowed(self, url: str, where: Where) -> tuple[frozenset[str] | None, Any]:
        """OPTIONS ``url``: the methods its ``Allow`` header lists (None: no header) and the
        metadata body (None: not JSON). Reads only; errors map as for any other request."""

        async def once() -> tuple[frozenset[str] | None, Any]:
            with self._scrubbed():
                response = await self._send("OPTIONS", url, where, None)
                if not response.is_success:
                    raise error_for(response, "OPTIONS", where, self.settings.user)
            allow = response.headers.get("allow")
            methods = None if allow is None else frozenset(
                method.strip().upper() for method in allow.split(",") if method.strip())
            try:
                body = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            return methods, body

        return await retry.call(self.policy, f"OPTIONS {describe(where)}", once)

    async def list_bonds(self) -> list[int]:
        """The ids of every bond the account can see (``GET bonds/``, paginated or not)."""
        items = await self._collect(f"{self.settings.api_root}bonds/", "the bonds list")
        ids = []
        for item in items:
            bond_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(bond_id, int) or isinstance(bond_id, bool):
                raise BadResponse(f"the bonds list: an item's 'id' is {shape(bond_id)}, "
                                  "not a whole number")
            ids.append(bond_id)
        return ids

    async def set_enabled(self, ref: ObjectRef, enabled: bool) -> RoutingObject:
        """PATCH ``enabled`` and return the object as the server now reports it."""
        body = await self._call("PATCH", self.detail_url(ref), ref, {"enabled": enabled})
        if body is None:  # 204 No Content: accepted; the verification read will tell
            return RoutingObject(ref, enabled)
        obj = parse_object(body, ref.bond_id, ref.kind, ref)
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
        return [parse_object(item, bond_id, kind) for item in items
                if only is None or item_id(item, bond_id, kind) in only]

    async def _collect(self, url: str, where: Where) -> list[Any]:
        """The items of a collection, following pagination."""
        next_url: str | None = url
        items: list[Any] = []
        seen: set[str] = set()
        sizes: list[int] = []
        with self._scrubbed():  # the links are the server's text
            while next_url is not None:
                if next_url in seen:
                    raise BadResponse(f"{describe(where)}: pagination loops at "
                                      f"{bounded(next_url)}")
                if len(seen) >= self.max_pages:
                    raise BadResponse(f"{describe(where)}: more than {self.max_pages} pages "
                                      "([bondha] max_pages); is the server paginating without "
                                      "end?")
                seen.add(next_url)
                body = await self._call("GET", next_url, where, sizes=sizes)
                if sum(sizes) > self.max_body:
                    raise BadResponse(f"{describe(where)}: the pages add up to more than "
                                      f"{self.max_body} bytes ([bondha] max_body)")
                page, next_url = self._page(body, describe(where), next_url)
                items.extend(page)
        return items

    def _page(self, body: Any, where: str, url: str) -> tuple[list[Any], str | None]:
        """Items and next URL of a bare list or a DRF envelope."""
        if isinstance(body, list):
            return body, None
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise BadResponse(f"{where}: expected a JSON list or a paginated "
                              f"object with 'results', got {shape(body)}")
        next_url = body.get("next")
        if next_url is None:
            return body["results"], None
        if not isinstance(next_url, str):
            raise BadResponse(f"{where}: 'next' is {shape(next_url)}, not a URL")
        absolute = urljoin(url, next_url)
        # Credentials go with every request: never follow a link off the configured server.
        if urlsplit(absolute)[:2] != urlsplit(self.settings.base_url)[:2]:
            raise BadResponse(f"{where}: 'next' points off the management server "
                              f"({bounded(absolute)})")
        return body["results"], absolute

    # -- one request ----------------------------------------------------------

    async def _call(self, method: str, url: str, where: Where,
                    body: dict[str, Any] | None = None, sizes: list[int] | None = None) -> Any:
        what = f"{method} {describe(where)}"
        policy = self.policy
        if method == "GET" and policy.deadline_at is not None:
            # A read changes nothing: retry it until the deadline, not just `attempts` times.
            policy = attrs.evolve(policy, attempts=_READ_ATTEMPTS)
        return await retry.call(policy, what,
                                lambda: self._once(method, url, where, body, sizes), self.guard)

    def _timeout(self) -> float:
        remaining = self.policy.remaining()
        return self.settings.timeout if remaining is None else max(0.1, min(
            self.settings.timeout, remaining))

    async def _once(self, method: str, url: str, where: Where,
                    body: dict[str, Any] | None, sizes: list[int] | None = None) -> Any:
        with self._scrubbed():
            response = await self._send(method, url, where, body)
            if sizes is not None:
                sizes.append(len(response.content))
            return decode(response, method, where, self.settings.user)

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

    async def _exchange(self, method: str, url: str, body: dict[str, Any] | None) -> Answer:
        """One request through the wire, its answer read whole; :mod:`bondha.wire`'s
        exceptions."""
        timeout = self._timeout()
        deadline = self.policy.deadline_at
        if deadline is None:
            deadline = time.monotonic() + _TIMEOUTS_PER_EXCHANGE * self.settings.timeout
        # The deadline bounds the whole exchange, not each read: a server that trickles a
        # byte per read timeout must not hold the run (and the apply lock) past it.
        request = Request(method, url, headers=self._headers,
                          body=b"" if body is None else json_body(body), timeout=timeout,
                          deadline=deadline, interrupt=self.guard)
        return await self._wire.exchange(request)

    async def _send(self, method: str, url: str, where: Where,
                    body: dict[str, Any] | None) -> Answer:
        """One request; a failure to get any answer becomes a TransportError."""
        if self.guard is not None:
            self.guard()  # before reads too: a superseded run stops reading at once
        if self.policy.remaining() == 0:
            raise TransportError(f"{method} {describe(where)}: not sent: the run's deadline "
                                 "([bondha] deadline) has passed", url=url)
        if method in ("GET", "OPTIONS", "HEAD"):
            self.counters.reads += 1
        else:
            self.counters.writes += 1
        try:
            return _without_secrets(await self._exchange(method, url, body), self._secrets)
        except AnswerTooLarge as exc:
            raise BadResponse(f"{method} {describe(where)}: {exc} ([bondha] max_body); not "
                              "read further", url=url) from None
        except TimedOut as exc:
            raise TransportError(
                f"{method} {describe(where)}: no answer from {origin(url)} in time "
                f"({type(exc).__name__})", url=url) from None
        except WireError as exc:
            reason = _certificate_problem(exc)
            if reason is not None:
                raise CertificateError(
                    f"{method} {describe(where)}: the TLS certificate of {origin(url)} is not "
                    f"trusted ({reason}); set [bondingadmin] ca_bundle to the file of the CA "
                    "that signed it", url=url) from None
            handshake = _handshake_problem(exc)
            if handshake is not None:
                plain = "http://" + url.split("://", 1)[-1].split("/", 1)[0]
                hint = (f"the server speaks plain HTTP there? then set [bondingadmin] host = "
                        f"{plain}" if "WRONG_VERSION_NUMBER" in handshake or
                        "record layer" in handshake else "check host and the server's TLS set-up")
                raise HandshakeError(
                    f"{method} {describe(where)}: TLS handshake with {origin(url)} failed "
                    f"({handshake}); not retried: {hint}", url=url) from None
            raise TransportError(f"{method} {describe(where)}: cannot reach {origin(url)}: "
                                 f"{one_line(str(exc)) or type(exc).__name__}", url=url) from None
        except InvalidURL as exc:  # a hostile 'next' link can cause it
            raise BadResponse(f"{method} {describe(where)}: unusable URL {url!r}: "
                              f"{one_line(str(exc))}", url=url) from None


def _wire_for(transport: Transport, max_body: int) -> Wire:
    """``transport`` as a wire: itself, or an httpx transport behind the adapter (which
    reads at most ``max_body`` bytes of an answer, as the lanes do)."""
    if isinstance(transport, Wire):
        return transport
    from .httpxwire import HttpxWire  # httpx is loaded already: the caller made one
    return HttpxWire(transport, max_body)


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


def _without_secrets(response: Answer, secrets: tuple[str, ...]) -> Answer:
    """The answer with the credentials blanked out of its body, before any of it is quoted
    in a message (where a 60-character hint could otherwise show a piece of them)."""
    scrubbed = content = response.content
    for secret in secrets:
        scrubbed = scrubbed.replace(secret.encode(), b"********")
    if scrubbed == content:
        return response
    return response.with_content(scrubbed)


def _certificate_problem(exc: BaseException) -> str | None:
    """The verification failure behind a connection error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return one_line(seen.verify_message or str(seen))
        seen = seen.__cause__ or seen.__context__
    return None


def _handshake_problem(exc: BaseException) -> str | None:
    """A TLS failure behind a connection error that no retry fixes, if that is what it was.

    An EOF in the middle of a handshake may be a server restarting: that one is retried.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and not isinstance(
                seen, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLCertVerificationError)):
            return one_line(seen.reason or str(seen)) if seen.reason else one_line(str(seen))
        seen = seen.__cause__ or seen.__context__
    return None


def client_for(config: Config, transport: Transport | None = None,
               pool_size: int | None = None,
               guard: Callable[[], None] | None = None) -> ApiClient:
    """A client whose retries all end by the config's deadline, counted from now."""
    # No single wait longer than a quarter of the deadline: several tries always fit in it.
    policy = RetryPolicy(config.api.attempts, config.api.attempt_delay,
                         max_delay=min(RetryPolicy.max_delay_default, config.ha.deadline / 4),
                         deadline_at=time.monotonic() + config.ha.deadline)
    return ApiClient(config.api, policy=policy, transport=transport,
                     pool_size=pool_size or config.ha.pool_size, guard=guard,
                     max_body=config.ha.max_body, max_pages=config.ha.max_pages)

