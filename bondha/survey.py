"""``bondha discover``: read two bonds, pair their objects, and put ``[bond]`` into the config.

The pairing is pure (:mod:`bondha.discover`); here are the reads, the check that the new
file loads as the discovered pair, and the careful rewrite (:mod:`bondha.config.rewrite`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import attrs

from .config import load_api_settings, parse_config
from .config.load import load_bond_ids
from .config.rewrite import replace_section, write_with_backup
from .discover import OWN_COMMENT, Discovery, check_bonds, discover
from .errors import ConfigError
from .model import Kind, Role
from .reconciler import read_bonds

__all__ = ["Survey", "config_text", "survey"]

log = logging.getLogger("bondha")


@attrs.frozen
class Survey:
    """What discover found, and where it wrote (None: it did not write)."""

    found: Discovery
    written: dict[str, str | None] | None = None


def survey(path: Path, master_bond_id: int | None, backup_bond_id: int | None, *,
           kinds: Sequence[Kind], include: Sequence[str] = (), exclude: Sequence[str] = (),
           command: str = "bondha discover", write: bool = False) -> Survey:
    """Pair the two bonds' objects; with ``write``, put the ``[bond]`` section into ``path``.

    Needs only ``[bondingadmin]`` in the file: ``[bond]`` may be absent or wrong. A bond id
    not given (None) is taken from ``[bond]``, as every other command takes it.
    """
    bonds = _bond_ids(path, master_bond_id, backup_bond_id)
    check_bonds(*bonds)
    api = load_api_settings(path)
    found = discover(*bonds, read_bonds(api, bonds, kinds), kinds=kinds, include=include,
                     exclude=exclude, command=command)
    if not write:
        return Survey(found)
    text = config_text(found, path.read_text(encoding="utf-8"), path)
    backup = write_with_backup(path, text)
    log.info("wrote [bond] to %s (old file kept as %s)", path, backup)
    return Survey(found, {"path": str(path), "backup": str(backup) if backup else None})


def _bond_ids(path: Path, master: int | None, backup: int | None) -> tuple[int, int]:
    """The ids given, the others from the file's ``[bond]`` (a ConfigError if it lacks them)."""
    flags = {role: f"--{role.value}-bond"
             for role, bond in ((Role.MASTER, master), (Role.BACKUP, backup)) if bond is None}
    found = load_bond_ids(path, flags) if flags else {}
    return (master if master is not None else found[Role.MASTER],
            backup if backup is not None else found[Role.BACKUP])


def config_text(found: Discovery, current: str, source: Path | None = None) -> str:
    """``current`` (the config file's text) with ``found``'s ``[bond]`` section, checked.

    Raises ConfigError, naming what is wrong, when there is nothing to float or the
    result would not load as this pair.
    """
    where = "<config>" if source is None else str(source)
    if not found.pairs:
        raise ConfigError(f"{where}: not written: bonds {found.master_bond_id} and "
                          f"{found.backup_bond_id} have no address to float")
    try:
        text = replace_section(current, "bond", found.bond_section(),
                               drop_comment=OWN_COMMENT)
    except ValueError as exc:
        raise ConfigError(f"{where}: not written: {exc}") from None
    try:
        written = parse_config(text, source)
    except ConfigError as exc:
        raise ConfigError(*exc.problems, f"{where}: not written: the file would not load "
                          "with the new [bond] section") from None
    if written.pair != found.pair():
        raise ConfigError(f"{where}: not written: the new [bond] section would not read "
                          "back as the discovered pair")
    return text
