"""Helpers shared by several test modules (the fixtures themselves live in conftest.py)."""

from __future__ import annotations

import grp
import os
import pwd
import threading
from pathlib import Path

from bondha.config import load_config
from bondha.model import Kind
from bondha.node.daemon import Daemon
from bondha.testing import Fixture, StandInServer
from tests.conftest import wait_for, write_config


def active_bonds(server: StandInServer) -> set[int]:
    return {bond for bond, kind, oid in ((1, Kind.ROUTE, 7), (3, Kind.ROUTE, 8))
            if server.get_object(bond, kind, oid)["enabled"]}


INTERVAL = 0.5


class Node:
    """One bonder's bondha daemon, in a thread, with keepalived's end of the FIFO held open."""

    def __init__(self, config_path: Path) -> None:
        self.daemon = Daemon(lambda: load_config(config_path))
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)
        self.thread.start()
        wait_for(self.daemon.fifo.exists, "the daemon to create its FIFO")
        # keepalived opens the FIFO once and keeps it open.
        self.writer = os.open(self.daemon.fifo, os.O_WRONLY)

    def send(self, line: str) -> None:
        os.write(self.writer, line.encode() + b"\n")

    def close(self) -> None:
        os.close(self.writer)
        self.daemon.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def node_config(path: Path, server: StandInServer, fixture: Fixture, **bondha_options: object,
                ) -> Path:
    ha = {"reconcile_interval": INTERVAL, "deadline": 2, **bondha_options}
    text = fixture.config_text(server.url, attempt_delay=0.01, timeout=1)
    text += "[bondha]\n" + "".join(f"{k} = {v}\n" for k, v in ha.items())
    return write_config(path, text)



def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
