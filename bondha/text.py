"""Words for people: counts with their nouns. Pure."""

from __future__ import annotations

__all__ = ["plural"]


def plural(number: int, noun: str, many: str | None = None) -> str:
    """``1 warning``, ``2 warnings``; ``many`` where the plural is not ``noun + "s"``."""
    return f"{number} {noun if number == 1 else many or noun + 's'}"
