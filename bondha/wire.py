"""One request to the management server and its whole answer, as bondha's own small values.

Why not httpx's ``Request`` and ``Response``: importing httpx costs a notify hook 25 ms of
start-up (60 ms where ``click`` and ``rich`` are installed, which makes httpx load its own
command line), and building its two objects costs more CPU per request than h11 spends on
the HTTP itself. A failover is an outage for as long as it runs, and most of a small one is
start-up. So the default transport (:mod:`bondha.transport`) speaks these values, and httpx
is loaded only where it is used: for a transport a caller passes in, or a proxy
(:mod:`bondha.httpxwire`).

Pure: no I/O. The exceptions below say how an exchange failed before any answer; they never
leave :mod:`bondha.client`, which turns each into a :class:`bondha.errors.TransportError`
(or ``BadResponse``) naming the request. Their names are httpx's, so messages stay the same
whichever transport was used.
"""

from __future__ import annotations

import codecs
import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Callable, overload
from urllib.parse import quote, urlsplit

__all__ = [
    "INTERRUPT_EVERY",
    "Answer",
    "AnswerTooLarge",
    "ConnectError",
    "ConnectTimeout",
    "Headers",
    "InvalidURL",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "TimedOut",
    "Wire",
    "WireError",
    "json_body",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters sent as they are in a request target (RFC 3986 pchar, '/', and '%' of an
# escape already made); anything else (a space, a control character, non-ASCII) is
# percent-encoded, as httpx does, so no link a server returns can break the request line.
_PATH_SAFE = "/%!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class WireError(Exception):
    """No answer: the exchange failed on the way (connection, timeout, HTTP framing)."""


class TimedOut(WireError):
    """No answer within the timeout or the run's deadline."""


class ConnectTimeout(TimedOut):
    """No connection within the timeout."""


class ReadTimeout(TimedOut):
    """No (whole) answer within the timeout."""


class ConnectError(WireError):
    """Refused, unreachable, a name that does not resolve, a failed TLS handshake."""


class ReadError(WireError):
    """The connection broke while sending or reading."""


class RemoteProtocolError(WireError):
    """The server broke HTTP: closed without answering, or sent no valid answer."""


class AnswerTooLarge(WireError):
    """The answer's body is larger than the transport's ``max_body``: not read further."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


class InvalidURL(ValueError):
    """A URL that cannot be sent (a link from the server, or a config the parser let by)."""


#: Seconds between two calls of an interrupt (a run's guard) while something waits: how
#: late, at most, a newer keepalived event stops the run it supersedes.
INTERRUPT_EVERY = 0.05


class Request:
    """One request: where it goes, what it carries, and how long it may take.

    ``timeout`` bounds each wait (connect, send, each read); ``deadline`` (monotonic clock)
    bounds the whole exchange; ``interrupt`` is called while it waits and may raise to stop
    it (a newer keepalived event). ``headers`` are sent as given, after ``Host``.
    """

    __slots__ = ("body", "deadline", "headers", "host", "interrupt", "method", "port",
                 "scheme", "target", "timeout", "url")

    def __init__(self, method: str, url: str, *,
                 headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b"",
                 timeout: float | None = None, deadline: float | None = None,
                 interrupt: Callable[[], None] | None = None) -> None:
        self.method = method
        self.url = url
        self.scheme, self.host, self.port, self.target, host_header = _split(url)
        extra = [(b"content-type", b"application/json"),
                 (b"content-length", str(len(body)).encode())] if body else []
        self.headers: list[tuple[bytes, bytes]] = [(b"host", host_header), *headers, *extra]
        self.body = body
        self.timeout = timeout
        self.deadline = deadline
        self.interrupt = interrupt

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


def json_body(document: Any) -> bytes:
    """``document`` as a request body: compact JSON in UTF-8."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode()


def _split(url: str) -> tuple[str, str, int, bytes, bytes]:
    """scheme, host (for connecting), port, request target and Host header of ``url``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is no number, a bracket left open
        raise InvalidURL(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURL(f"not an http or https URL: {url!r}")
    host = parts.hostname
    if not host:
        raise InvalidURL(f"no host in {url!r}")
    try:
        host_header = parts.netloc.rpartition("@")[2].encode("idna")
    except UnicodeError as exc:
        raise InvalidURL(f"the host of {url!r}: {exc}") from None
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    elif port == _DEFAULT_PORTS[scheme]:
        host_header = host_header.rpartition(b":")[0]  # as browsers and httpx send it
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    return scheme, host, port, target.encode("ascii"), host_header


class Headers:
    """An answer's header fields, looked up without regard to case."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Sequence[tuple[bytes, bytes]]) -> None:
        self._fields = fields

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The field's value (several fields of one name joined by ", "), or ``default``."""
        wanted = name.lower().encode("ascii")
        values = [value.decode("latin-1") for key, value in self._fields
                  if key.lower() == wanted]
        return ", ".join(values) if values else default


class Answer:
    """A whole answer: status, headers and the body, read to its end."""

    __slots__ = ("content", "headers", "status_code", "url")

    def __init__(self, status_code: int, headers: Headers, content: bytes, url: str) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        """The body as text: the charset the server declared, else UTF-8; never raises."""
        content_type = self.headers.get("content-type") or ""
        encoding = "utf-8"
        for parameter in content_type.split(";")[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "charset":
                with contextlib.suppress(LookupError):
                    encoding = codecs.lookup(value.strip().strip('"')).name
        return self.content.decode(encoding, errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def with_content(self, content: bytes) -> Answer:
        return Answer(self.status_code, self.headers, content, self.url)

    def __repr__(self) -> str:
        return f"<Answer {self.status_code} {self.url}>"


class Wire(ABC):
    """What carries a :class:`Request` to the server and brings back its :class:`Answer`.

    An implementation bounds each exchange by the request's timeout and deadline, calls its
    interrupt while it waits, reads at most its own ``max_body`` bytes of an answer
    (:class:`AnswerTooLarge`), and raises only :class:`WireError` (or the interrupt's own
    exception) when no answer came.
    """

    @abstractmethod
    async def exchange(self, request: Request) -> Answer: ...

    @abstractmethod
    async def aclose(self) -> None: ...
