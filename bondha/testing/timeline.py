"""How long each floating address had no bond (dark) or two bonds (overlap) enabled.

The server measures this itself, under the lock of the change that caused it, so the
figures are facts about the order in which writes landed, not estimates from a client's
clock. Pure bookkeeping: the caller passes the time and holds the lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..model import Kind

AddressKey = tuple[Kind, str]
"""(kind, normalised address text): what pairs an object with its copies on other bonds."""

DARK = "dark"
OVERLAP = "overlap"


def _phase(enabled_bonds: int) -> str:
    if enabled_bonds == 0:
        return DARK
    return OVERLAP if enabled_bonds >= 2 else "lit"


@attrs.frozen
class AddressFigures:
    """The figures of one floating address since the server started or stats were reset."""

    kind: Kind
    address: str
    enabled_bonds: int
    dark_seconds: float
    overlap_seconds: float
    dark_moments: int
    overlap_moments: int
    longest_dark_seconds: float
    longest_overlap_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "kind": self.kind.value}


@attrs.frozen
class AddressReport:
    """Per-address figures and their totals (sums; the ``longest_*`` totals are maxima)."""

    addresses: tuple[AddressFigures, ...]
    dark_seconds: float
    overlap_seconds: float
    dark_moments: int
    overlap_moments: int
    longest_dark_seconds: float
    longest_overlap_seconds: float

    def to_json(self) -> dict[str, Any]:
        totals = attrs.asdict(self, filter=lambda field, _: field.name != "addresses")
        return {**totals, "addresses": [figures.to_json() for figures in self.addresses]}


class _Track:
    """One address: its current phase, since when, and what earlier intervals added up to."""

    def __init__(self, enabled_bonds: int, now: float) -> None:
        self.enabled_bonds = enabled_bonds
        self.restart(now)

    def restart(self, now: float) -> None:
        # A dark or overlap interval already open at (re)start counts as one moment, so
        # seconds > 0 always comes with moments >= 1.
        self.since = now
        self.seconds = {DARK: 0.0, OVERLAP: 0.0}
        self.longest = {DARK: 0.0, OVERLAP: 0.0}
        self.moments = {DARK: 0, OVERLAP: 0}
        phase = _phase(self.enabled_bonds)
        if phase in self.moments:
            self.moments[phase] = 1

    def observe(self, enabled_bonds: int, now: float) -> None:
        old, new = _phase(self.enabled_bonds), _phase(enabled_bonds)
        self.enabled_bonds = enabled_bonds
        if old == new:
            return
        if old in self.seconds:
            elapsed = now - self.since
            self.seconds[old] += elapsed
            self.longest[old] = max(self.longest[old], elapsed)
        if new in self.moments:
            self.moments[new] += 1
        self.since = now

    def figures(self, key: AddressKey, now: float) -> AddressFigures:
        seconds, longest = dict(self.seconds), dict(self.longest)
        phase = _phase(self.enabled_bonds)
        if phase in seconds:  # the open interval counts up to the moment of the report
            seconds[phase] += now - self.since
            longest[phase] = max(longest[phase], now - self.since)
        return AddressFigures(
            kind=key[0],
            address=key[1],
            enabled_bonds=self.enabled_bonds,
            dark_seconds=seconds[DARK],
            overlap_seconds=seconds[OVERLAP],
            dark_moments=self.moments[DARK],
            overlap_moments=self.moments[OVERLAP],
            longest_dark_seconds=longest[DARK],
            longest_overlap_seconds=longest[OVERLAP],
        )


class AddressTimeline:
    """Dark and overlap time of every floating address; not thread-safe on its own."""

    def __init__(self, enabled_bonds: Mapping[AddressKey, int], now: float) -> None:
        self._tracks = {key: _Track(count, now) for key, count in enabled_bonds.items()}

    def observe(self, key: AddressKey, enabled_bonds: int, now: float) -> None:
        """Note how many bonds have ``key`` enabled after a change; ignores non-floating keys."""
        track = self._tracks.get(key)
        if track is not None:
            track.observe(enabled_bonds, now)

    def reset(self, now: float) -> None:
        for track in self._tracks.values():
            track.restart(now)

    def report(self, now: float) -> AddressReport:
        figures = tuple(
            self._tracks[key].figures(key, now)
            for key in sorted(self._tracks, key=lambda key: (key[0], key[1]))
        )
        return AddressReport(
            addresses=figures,
            dark_seconds=sum(f.dark_seconds for f in figures),
            overlap_seconds=sum(f.overlap_seconds for f in figures),
            dark_moments=sum(f.dark_moments for f in figures),
            overlap_moments=sum(f.overlap_moments for f in figures),
            longest_dark_seconds=max((f.longest_dark_seconds for f in figures), default=0.0),
            longest_overlap_seconds=max((f.longest_overlap_seconds for f in figures), default=0.0),
        )
