"""A stand-in of the bonding management server's REST API, for testing HA automation.

Start one in-process and point a config at it::

    from bondha.testing import StandInServer, example_fixture

    with StandInServer(example_fixture()) as server:
        config_text = server.fixture.config_text(server.url)
        ...  # run the automation
        assert server.address_report().overlap_seconds == 0

or as a separate process: ``python -m bondha.testing --help``. The server measures how
long each floating address had no bond (dark) or two bonds (overlap) enabled, counts
requests, connections and writes that break a route's gateway (refusing them with
``strict_dependencies``), and injects faults (error statuses, delays, resets).
"""

from __future__ import annotations

from .faults import Fault
from .fixtures import Fixture, RoutingRecord, User, example_fixture, pair_fixture
from .server import StandInServer
from .store import Stats, Violation, Write
from .timeline import AddressFigures, AddressReport

__all__ = [
    "AddressFigures",
    "AddressReport",
    "Fault",
    "Fixture",
    "RoutingRecord",
    "StandInServer",
    "Stats",
    "User",
    "Violation",
    "Write",
    "example_fixture",
    "pair_fixture",
]
