"""Requests and responses as plain values, so the API logic never touches a socket."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class Request:
    """One HTTP request; ``headers`` keys are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    base_url: str  # scheme://host[:port] as the client addressed the server

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@attrs.frozen
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    def with_headers(self, *headers: tuple[str, str]) -> Response:
        return attrs.evolve(self, headers=self.headers + headers)


def json_response(status: int, data: Any, *headers: tuple[str, str]) -> Response:
    # Compact and UTF-8, as Django REST framework renders.
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(status, body, (("Content-Type", "application/json"), *headers))


def detail(status: int, message: str, *headers: tuple[str, str]) -> Response:
    """A Django REST framework error: ``{"detail": message}``."""
    return json_response(status, {"detail": message}, *headers)


_NOT_FOUND_PAGE = b"""<!doctype html>
<html lang="en">
<head>
  <title>Not Found</title>
</head>
<body>
  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>
</body>
</html>
"""


def html_not_found() -> Response:
    """Django's own 404 page, answered for any URL no view handles."""
    return Response(404, _NOT_FOUND_PAGE, (("Content-Type", "text/html; charset=utf-8"),))
