"""``python -m bondha.testing``: run the stand-in as its own process until SIGTERM/SIGINT.

For end-to-end tests in network namespaces and for the demo: steer it over ``/_standin/``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from .fixtures import Fixture, example_fixture, pair_fixture
from .server import StandInServer
from .styles import STYLES


def _fixture(spec: str) -> Fixture:
    """``example``, ``pair:N`` or the path of a JSON fixture."""
    if spec == "example":
        return example_fixture()
    if spec.startswith("pair:"):
        return pair_fixture(int(spec[len("pair:") :]))
    return Fixture.load(spec)


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bondha.testing",
        description="Serve a stand-in of the bonding management server's REST API.",
        epilog="Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad arguments.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free)")
    parser.add_argument(
        "--fixture",
        default="example",
        help="example | pair:N (N floating objects per kind) | PATH.json (default %(default)s)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--page-size", type=int, help="paginate lists (default: bare arrays)")
    parser.add_argument("--seed", type=int, help="seed of the faults' random source")
    parser.add_argument(
        "--strict-dependencies",
        action="store_true",
        help="refuse (400) writes that leave an enabled route without an enabled connected IP"
        " holding its gateway (default: accept and count them)",
    )
    parser.add_argument(
        "--style",
        choices=tuple(STYLES),
        default="proxy",
        help="how the HTTP layer writes and accepts: proxy (one write, TCP_NODELAY, backlog "
        "511), stdlib (http.server as it comes: two writes, Nagle, backlog 5), close "
        "(Connection: close on every answer), tls (https, needs --tls-cert; default "
        "%(default)s)",
    )
    parser.add_argument("--tls-cert", help="PEM certificate: serve https (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--write-config", type=Path, help="write a swap-active-bond.conf here")
    parser.add_argument(
        "--config-option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra [bondingadmin] line for --write-config (repeatable)",
    )
    parser.add_argument("--ready-file", type=Path, help="write the URL here once listening")
    parser.add_argument("--stats-file", type=Path, help="write statistics as JSON here at exit")
    return parser


def _write_atomically(path: Path, text: str, mode: int) -> None:
    """Readers polling for ``path`` never see it half-written."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        fixture = _fixture(args.fixture)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"--fixture {args.fixture}: {exc}")
    if args.write_config and (fixture.master_bond is None or fixture.backup_bond is None):
        parser.error("--write-config needs a fixture that names a master and a backup bond")
    tls = None
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.style == "tls" and not args.tls_cert:
        parser.error("--style tls needs --tls-cert and --tls-key")
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    server = StandInServer(
        fixture,
        host=args.host,
        port=args.port,
        latency=args.latency,
        page_size=args.page_size,
        ssl_context=tls,
        seed=args.seed,
        strict_dependencies=args.strict_dependencies,
        style=args.style,
    )
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with server:
        if args.write_config:
            text = fixture.config_text(server.url, **dict(args.config_option))
            _write_atomically(args.write_config, text, 0o600)
        if args.ready_file:
            _write_atomically(args.ready_file, server.url + "\n", 0o644)
        sys.stdout.write(f"listening on {server.url}\n")
        sys.stdout.flush()
        while not stopping.wait(1.0):
            pass
    if args.stats_file:
        stats = {**server.stats().to_json(), "address_report": server.address_report().to_json()}
        _write_atomically(args.stats_file, json.dumps(stats, indent=2) + "\n", 0o644)
    return 0


if __name__ == "__main__":
    sys.exit(main())
