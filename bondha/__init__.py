"""bondha: keep a pair of bonders highly available.

The desired state (which bond is active) is diffed against the live routing
objects into an ordered :class:`Plan`; only the needed writes are applied,
with retries, and the result is read back and verified::

    import bondha
    config = bondha.load_config(Path("/etc/bonding/swap-active-bond.conf"))
    result = bondha.reconcile(config, bondha.Role.BACKUP)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import ApiSettings, Config, load_config, parse_config
from .errors import (
    ApiError,
    ApplyError,
    AuthError,
    BadRequest,
    BadResponse,
    BondhaError,
    CertificateError,
    ConfigError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RefusedError,
    ServerError,
    StateDirError,
    StateError,
    TransportError,
    UsageError,
)
from .model import BondSide, Kind, ObjectRef, Pair, Role, RoutingObject, Secret
from .plan import Change, Plan, Step, make_plan

if TYPE_CHECKING:
    from .client import ApiClient
    from .reconciler import areconcile, read_live, reconcile
    from .result import Failure, Result
    from .retry import RetryPolicy

# The pure layers above load eagerly; these pull in asyncio and h11 (tenacity after a failed
# call), so they load on first use: importing bondha.model or bondha.testing stays free of
# the HTTP stack.
_LAZY = {
    "ApiClient": "client",
    "Failure": "result",
    "Result": "result",
    "RetryPolicy": "retry",
    "areconcile": "reconciler",
    "read_live": "reconciler",
    "reconcile": "reconciler",
}

__all__ = [
    "ApiClient",
    "ApiError",
    "ApiSettings",
    "ApplyError",
    "AuthError",
    "BadRequest",
    "BadResponse",
    "BondSide",
    "BondhaError",
    "CertificateError",
    "Change",
    "Config",
    "ConfigError",
    "Failure",
    "Kind",
    "NotFound",
    "ObjectRef",
    "Pair",
    "PermissionDenied",
    "Plan",
    "RateLimited",
    "RefusedError",
    "Result",
    "RetryPolicy",
    "Role",
    "RoutingObject",
    "Secret",
    "ServerError",
    "StateDirError",
    "StateError",
    "Step",
    "TransportError",
    "UsageError",
    "__version__",
    "areconcile",
    "load_config",
    "make_plan",
    "parse_config",
    "read_live",
    "reconcile",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bondha' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
