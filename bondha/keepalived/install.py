"""Where bondha sits on a bonder, as keepalived sees it: the defaults of the rendered config.

Apart from the renderer so that building the command line (which shows these defaults in
``--help``) does not load it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_HOOK", "DEFAULT_SCRIPT_USER", "DEFAULT_TRACK_SCRIPT"]

DEFAULT_HOOK = "/usr/lib/bondha/swap-active-bond"  # where the Debian package installs it
DEFAULT_SCRIPT_USER = "bondha"
# The how-to's health check: the bonding service answers. A bonder whose bonding is down
# goes to FAULT, so that the peer takes over.
DEFAULT_TRACK_SCRIPT = "/usr/sbin/bondsh node ping"
