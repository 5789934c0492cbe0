"""After each keepalived event and each reconcile: a journal record, the totals, the metrics.

The hook and the daemon both call :func:`publish`. Everything happens under the state
directory's records lock, so that records of overlapping hook runs are whole lines, their
counts add up, and a metrics file is never replaced by an older one. A record that cannot
be written never fails a failover: it is a logged warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..config import Config
from ..errors import StateError
from .journal import LOCK_NAME, Journal
from .metrics import Totals, render_metrics, write_textfile
from .statedir import StateDir

__all__ = ["publish"]

log = logging.getLogger("bondha")


def publish(config: Config, state: StateDir, record: Mapping[str, Any]) -> None:
    """Append ``record`` to the journal, count it, and rewrite ``[bondha] metrics_file``."""
    try:
        with state.exclusive(LOCK_NAME):
            Journal(state).append(record)
            totals = Totals.load(state.path)
            totals.add(record)
            totals.save(state.path)
            if config.ha.metrics_file is not None:
                write_textfile(config.ha.metrics_file, render_metrics(
                    totals, reconcile_interval=config.ha.reconcile_interval))
    except StateError as exc:
        log.warning("%s; not recorded (the failover goes on)", exc)
