"""Faults to inject: what a flaky proxy, an overloaded server or a broken network does.

A :class:`Fault` is an immutable description; :class:`FaultInjector` keeps the live
counters (skipped, fired) and the seeded random source, so a run can be replayed.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from typing import Any

import attrs

_FIELDS = ("method", "path", "status", "body", "headers", "delay", "drop", "count", "rate", "skip",
           "user")


def _upper(value: str | None) -> str | None:
    return None if value is None else value.upper()


def _regex(_instance: object, _attribute: object, value: str) -> None:
    re.compile(value)


def _headers(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen
class Fault:
    """What to do to matching requests instead of (or before) serving them.

    ``method`` None matches any method; ``path`` is a regex searched in the request path;
    ``user`` (an account's email or username, as sent in Basic auth) None matches anyone,
    else only that account's requests: e.g. delay one bonder's writes and not the other's.
    With ``status`` the server answers that status, ``body`` and ``headers``; with ``drop``
    it resets the TCP connection without answering; with only ``delay`` it waits and then
    serves normally. ``skip`` lets the first N matching requests through, ``count`` fires
    at most N times (None: always), ``rate`` is the probability of firing per match.
    """

    method: str | None = attrs.field(default=None, converter=_upper)
    path: str = attrs.field(default=".*", validator=_regex)
    status: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            attrs.validators.and_(attrs.validators.ge(100), attrs.validators.le(599))
        ),
    )
    body: bytes | str = b""
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers)
    delay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    drop: bool = False
    count: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    rate: float = attrs.field(
        default=1.0,
        validator=attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.le(1.0)),
    )
    skip: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    user: str | None = None

    def matches(self, method: str, path: str, user: str | None = None) -> bool:
        return (self.method in (None, method) and self.user in (None, user)
                and re.search(self.path, path) is not None)

    @property
    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body

    def response_headers(self) -> dict[str, str]:
        """``headers``, with a Content-Type guessed when absent.

        HTML for a body that looks like markup (a proxy's error page), otherwise JSON: a
        garbage body is meant to test the client's parsing, so it claims to be JSON.
        """
        if any(name.lower() == "content-type" for name in self.headers):
            return dict(self.headers)
        html = self.body_bytes.lstrip().startswith(b"<")
        content_type = "text/html; charset=utf-8" if html else "application/json"
        return {**self.headers, "Content-Type": content_type}

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["body"] = self.body_bytes.decode("utf-8", errors="replace")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """The inverse of :meth:`to_json`; raises ValueError/TypeError on unknown or bad fields."""
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(unknown)}")
        return cls(**data)


class _LiveFault:
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.matched = 0
        self.fired = 0

    @property
    def exhausted(self) -> bool:
        return self.fault.count is not None and self.fired >= self.fault.count


class FaultInjector:
    """The live faults of one server, first match wins; thread-safe."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 -- reproducible chaos, not crypto
        self._faults: list[_LiveFault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(_LiveFault(fault))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pick(self, method: str, path: str, user: str | None = None) -> Fault | None:
        """The fault that fires for this request, if any, counting it as fired."""
        with self._lock:
            for live in self._faults:
                if live.exhausted or not live.fault.matches(method, path, user):
                    continue
                live.matched += 1
                if live.matched <= live.fault.skip:
                    continue
                if live.fault.rate < 1.0 and self._random.random() >= live.fault.rate:
                    continue
                live.fired += 1
                return live.fault
            return None
