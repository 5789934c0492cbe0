"""Prometheus textfile-collector metrics, for ``[bondha] metrics_file``.

Each hook run is its own process, yet its counters must add up with every other run's:
the running totals live in the state directory (``metrics.json``) and every journal
record updates them (:meth:`Totals.add`, under the records lock, see
:mod:`bondha.observe`). After each update the whole exposition is written to a temporary
file beside the metrics file and renamed over it, so that node_exporter never reads half
of one. The temporary name starts with a dot and does not end in ``.prom``: the
collector ignores it.

The metrics and the alert rules built on them: docs/alerts.md. Standard library only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..errors import StateError
from ..files import replace_file
from .journal import RESULTS, record_time

__all__ = ["KEEPALIVED_STATES", "TOTALS_NAME", "Totals", "render_metrics", "write_textfile"]

TOTALS_NAME = "metrics.json"
KEEPALIVED_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")


def _zeros(keys: Sequence[str]) -> dict[str, int]:
    return dict.fromkeys(keys, 0)


@attrs.define
class Totals:
    """Counters since the state directory was created (usually: since boot), and the last
    values of the gauges."""

    reconciles: dict[str, int] = attrs.Factory(lambda: _zeros(RESULTS))
    transitions: dict[str, int] = attrs.Factory(lambda: _zeros(KEEPALIVED_STATES))
    writes: int = 0
    write_failures: int = 0
    last_success: float = 0.0  # epoch seconds; 0: never
    last_reconcile: float = 0.0
    last_duration: float = 0.0
    out_of_place: int = 0
    overlap: int = 0
    dark: int = 0
    master: int = 0  # 1 while this node's last keepalived event is MASTER

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one journal record (``bondha.record/1``)."""
        if record["type"] == "transition":
            state = str(record["state"])
            self.transitions[state] = self.transitions.get(state, 0) + 1
            self.master = int(record["role"] is not None)
            if not self.master:  # the peer owns the pair now: nothing here is out of place
                self.out_of_place = self.overlap = self.dark = 0
            return
        at = record_time(record)
        result = str(record["result"])
        self.reconciles[result] = self.reconciles.get(result, 0) + 1
        self.writes += int(record["writes"])
        self.write_failures += int(record["write_failures"])
        self.last_reconcile = at
        self.last_duration = float(record["duration"])
        if result == "converged":
            self.last_success = at
        # Unknown (no read succeeded): keep the last measured values.
        for name in ("out_of_place", "overlap", "dark"):
            if record.get(name) is not None:
                setattr(self, name, int(record[name]))

    # -- kept in the state directory -------------------------------------------------------

    @classmethod
    def load(cls, state_dir: Path) -> Totals:
        """The totals so far; a missing or unreadable file starts them again from zero
        (Prometheus takes a counter that starts again as a reset)."""
        try:
            data = json.loads((state_dir / TOTALS_NAME).read_text(encoding="utf-8"))
            return cls(**{field.name: data[field.name] for field in attrs.fields(cls)
                          if field.name in data})
        except (OSError, ValueError, TypeError):
            return cls()

    def save(self, state_dir: Path) -> None:
        _replace(state_dir / TOTALS_NAME, json.dumps(attrs.asdict(self)), 0o600)


def render_metrics(totals: Totals, *, reconcile_interval: float) -> str:
    """The text exposition format (version 0.0.4) of ``totals``."""
    families: list[tuple[str, str, str, list[tuple[str, float]]]] = [
        ("bondha_reconciles_total", "counter",
         "Reconciles by the hook and the daemon on this node, by result "
         "(converged, failed, refused, error, superseded).",
         [(f'{{result="{r}"}}', n) for r, n in sorted(totals.reconciles.items())]),
        ("bondha_writes_total", "counter",
         "Writes (PATCH of enabled) that succeeded.", [("", totals.writes)]),
        ("bondha_write_failures_total", "counter",
         "Writes that failed after their retries.", [("", totals.write_failures)]),
        ("bondha_transitions_total", "counter",
         "keepalived events recorded on this node, by state.",
         [(f'{{state="{s}"}}', n) for s, n in sorted(totals.transitions.items())]),
        ("bondha_last_success_timestamp_seconds", "gauge",
         "When a reconcile last converged (0: never since the state directory was made).",
         [("", totals.last_success)]),
        ("bondha_last_reconcile_timestamp_seconds", "gauge",
         "When the last reconcile ended, whatever its result.", [("", totals.last_reconcile)]),
        ("bondha_last_reconcile_duration_seconds", "gauge",
         "How long the last reconcile took.", [("", totals.last_duration)]),
        ("bondha_objects_out_of_place", "gauge",
         "Configured objects not in the state this node wants, as last read back "
         "(0 while this node is not MASTER).", [("", totals.out_of_place)]),
        ("bondha_addresses_overlap", "gauge",
         "Floating addresses enabled on both bonds, as last read back.", [("", totals.overlap)]),
        ("bondha_addresses_dark", "gauge",
         "Floating addresses enabled on neither bond, as last read back.", [("", totals.dark)]),
        ("bondha_keepalived_master", "gauge",
         "1 while this node's last keepalived event is MASTER, else 0.", [("", totals.master)]),
        ("bondha_reconcile_interval_seconds", "gauge",
         "[bondha] reconcile_interval: seconds between the daemon's checks while MASTER.",
         [("", reconcile_interval)]),
    ]
    lines: list[str] = []
    for name, kind, help_text, samples in families:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{labels} {_number(value)}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return repr(float(value))


def write_textfile(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once (temporary file in the same directory, rename).

    Mode 0644: node_exporter runs as its own user; metrics hold no secret.
    """
    try:
        _replace(path, text, 0o644)
    except StateError as exc:
        raise StateError(f"metrics file {exc}") from None


def _replace(path: Path, text: str, mode: int) -> None:
    try:
        replace_file(path, text.encode("utf-8"), mode=mode)
    except OSError as exc:
        raise StateError(f"{path}: cannot write: {exc.strerror or exc}") from None
