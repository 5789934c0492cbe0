"""How the stand-in's HTTP layer writes and accepts: the kinds of server a client meets.

The API behind it is the same in every style; what differs is what the kernel does with
the bytes, because that, not the application, is where clients lose time:

``proxy`` (the default)
    one write per response, TCP_NODELAY, listen backlog 511: a reverse proxy in front.
``stdlib``
    Python's ``http.server`` as it comes: the head and the body in two writes, Nagle left
    on, listen backlog 5. On a kept-alive connection the body waits for the client's ACK
    of the head, which a client in delayed-ACK mode sends only after its timer (40 ms on
    Linux); a burst of connects overflows the accept queue, and the kernel drops the
    surplus handshakes until a retransmission (1 s) gets them in.
``close``
    ``Connection: close`` after every response: a worker that never keeps alive.
``tls``
    https (the server needs a certificate), one write per response, TCP_NODELAY.

Nothing here sleeps to imitate these effects: the sockets are set up as such servers set
them up, and the kernel does the rest.
"""

from __future__ import annotations

import attrs

__all__ = ["STYLES", "ServerStyle", "server_style"]


@attrs.frozen
class ServerStyle:
    name: str
    split_writes: bool  # head and body in two send() calls, as http.server does
    nodelay: bool  # TCP_NODELAY on accepted sockets
    backlog: int  # listen() backlog: the accept queue's length
    close_always: bool = False  # "Connection: close" on every response
    tls: bool = False  # https only


STYLES = {
    style.name: style
    for style in (
        ServerStyle("proxy", split_writes=False, nodelay=True, backlog=511),
        ServerStyle("stdlib", split_writes=True, nodelay=False, backlog=5),
        ServerStyle("close", split_writes=False, nodelay=True, backlog=511, close_always=True),
        ServerStyle("tls", split_writes=False, nodelay=True, backlog=511, tls=True),
    )
}


def server_style(name: str) -> ServerStyle:
    """The style called ``name``; ValueError naming the known ones otherwise."""
    try:
        return STYLES[name]
    except KeyError:
        raise ValueError(
            f"unknown server style {name!r}; one of: {', '.join(STYLES)}"
        ) from None
