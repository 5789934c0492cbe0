"""bondha's own request and answer values (bondha.wire): what goes on the request line."""

from __future__ import annotations

import pytest

from bondha.wire import Answer, Headers, InvalidURL, Request, json_body


def test_the_request_line_and_host_of_a_plain_url() -> None:
    request = Request("GET", "https://mgmt.example.net/api/v4/bonds/7/routes/?page=2")
    assert (request.scheme, request.host, request.port) == ("https", "mgmt.example.net", 443)
    assert request.target == b"/api/v4/bonds/7/routes/?page=2"
    assert request.headers[0] == (b"host", b"mgmt.example.net")


def test_a_default_port_is_left_out_of_host_and_another_is_kept() -> None:
    assert Request("GET", "https://m.example.net:443/").headers[0] == (b"host", b"m.example.net")
    ipv6 = Request("GET", "http://[::1]:8080/x/")
    assert (ipv6.host, ipv6.port) == ("::1", 8080)
    assert ipv6.headers[0] == (b"host", b"[::1]:8080")


def test_what_cannot_go_on_a_request_line_is_percent_encoded() -> None:
    """A link a server returns may hold spaces, control characters or non-ASCII text (urllib
    drops tabs and line breaks itself)."""
    request = Request("GET", "http://127.0.0.1:8000/a b/\x07X: y/\u00fc?q=1 2&r=%41")
    assert request.target == b"/a%20b/%07X:%20y/%C3%BC?q=1%202&r=%41"
    assert Request("GET", "http://h/a\r\nHost: evil/").target == b"/aHost:%20evil/"


@pytest.mark.parametrize("url", ["ftp://m.example.net/", "http://m.example.net:99999/",
                                 "http://m.example.net:port/", "http:///x/"])
def test_an_unusable_url_is_refused_before_anything_is_sent(url: str) -> None:
    with pytest.raises(InvalidURL):
        Request("GET", url)


def test_a_body_carries_its_type_and_length() -> None:
    request = Request("PATCH", "http://127.0.0.1:1/x/", body=json_body({"enabled": True}),
                      headers=[(b"accept", b"application/json")])
    assert request.body == b'{"enabled":true}'
    assert request.headers[1:] == [(b"accept", b"application/json"),
                                   (b"content-type", b"application/json"),
                                   (b"content-length", b"16")]
    assert all(name != b"content-length" for name, _ in Request("GET", "http://h/").headers)


def test_headers_are_found_whatever_their_case_and_repeats_are_joined() -> None:
    headers = Headers([(b"Content-Type", b"text/html"), (b"allow", b"GET"), (b"Allow", b"PATCH")])
    assert headers.get("content-type") == "text/html"
    assert headers.get("ALLOW") == "GET, PATCH"
    assert headers.get("retry-after") is None
    assert headers.get("retry-after", "") == ""


def test_an_answers_text_follows_its_charset_and_never_fails() -> None:
    latin = Answer(200, Headers([(b"content-type", b"text/plain; charset=ISO-8859-1")]),
                   "d\u00e9j\u00e0".encode("latin-1"), "http://h/")
    assert latin.text == "d\u00e9j\u00e0"
    broken = Answer(200, Headers([(b"content-type", b"text/plain; charset=nonsense")]),
                    b"\xff ok", "http://h/")
    assert broken.text == "\ufffd ok"
    assert Answer(204, Headers([]), b"", "http://h/").is_success
    assert not Answer(302, Headers([]), b"", "http://h/").is_success
