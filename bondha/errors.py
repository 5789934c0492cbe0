"""The one exception tree of bondha.

Every error bondha raises on purpose is a :class:`BondhaError`; its message is
one line that names the culprit (an option, a file, an object, a bond) and
never contains a password or an Authorization header::

    BondhaError
    ├── ConfigError            the config file or a setting is wrong          exit 2
    ├── UsageError             bad command-line or notify arguments           exit 2
    ├── ApiError               the management server said no, or nonsense
    │   ├── AuthError          401: wrong user or password                    exit 3
    │   ├── PermissionDenied   403: the account may not touch that bond       exit 3
    │   ├── NotFound           404: unknown id, or an id of another bond      exit 3
    │   ├── BadRequest         400 (other 4xx, 501): the same answer every time
    │   ├── RateLimited        429: retried, honouring Retry-After
    │   ├── ServerError        5xx but 501: retried
    │   ├── TransportError     connection refused/reset, timeout, TLS: retried
    │   │   ├── CertificateError   the server's TLS certificate is not trusted: not retried
    │   │   └── HandshakeError     no TLS handshake (https to a plain-http port): not retried
    │   └── BadResponse        a body that is not the JSON that was expected
    ├── StateError             the state directory cannot be used (lock, event file)
    │   ├── StateOwnerError    root ran what the hook's user should run          exit 2
    │   └── StateDirError      the directory itself is unusable or unsafe        exit 2
    ├── AnnounceError          a moved IP cannot be announced (interface, send)  exit 1
    ├── Superseded             a newer keepalived event (or shutdown) took over   exit 0
    └── ApplyError             writes started but the pair did not converge   exit 1
                               (carries the Result: what was and was not done)

Errors met before the first write that no retry can fix (``AuthError``,
``PermissionDenied``, ``NotFound``) are the "refused" outcome: exit 3, zero writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import ObjectRef
    from .result import Result


class BondhaError(Exception):
    """Base of every error bondha raises on purpose."""

    exit_code: int = 1


class ConfigError(BondhaError):
    """The configuration cannot be used; each problem is one line naming the file and option."""

    exit_code = 2

    def __init__(self, *problems: str) -> None:
        joined = problems[0] if len(problems) == 1 else "; ".join(problems)
        super().__init__(joined)
        self.problems: tuple[str, ...] = problems


class UsageError(BondhaError):
    """Arguments that make no sense (command line, keepalived notify arguments, FIFO line)."""

    exit_code = 2


class StateError(BondhaError):
    """The state directory (lock, event records) cannot be used."""

    exit_code = 1


class StateOwnerError(StateError):
    """The state directory belongs to the hook's user and root ran the command: a usage error.

    Not a fault to fix with chown (that would break the hook); run as that user instead.
    """

    exit_code = 2


class StateDirError(StateError):
    """The state directory cannot be used at all (cannot be made, unsafe owner or mode): a
    local problem of the set-up, like a config error."""

    exit_code = 2


class AnnounceError(BondhaError):
    """An address cannot be announced: no such interface, not on it, or the send failed."""

    exit_code = 1


class Superseded(BondhaError):
    """A newer keepalived event, or a shutdown, took over: this run stopped before its next write.

    Not a failure of this run (exit 0): the newer event's run owns the outcome.
    """

    exit_code = 0


class ApiError(BondhaError):
    """The management server's answer was an error or could not be understood."""

    #: True where another attempt may succeed (transport faults, 5xx, 429).
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        ref: ObjectRef | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.ref = ref
        self.url = url
        self.retry_after = retry_after
        #: Requests the run had made when this ended it (set by the reconciler), for the records.
        self.requests = 0


class RefusedError(ApiError):
    """A refusal no retry can fix: before the first write it aborts the run (exit 3)."""

    exit_code = 3


class AuthError(RefusedError):
    """401: the user or password is wrong."""


class PermissionDenied(RefusedError):
    """403: the account may not read or change objects of that bond."""


class NotFound(RefusedError):
    """404: the id does not exist, or belongs to another bond."""


class BadRequest(ApiError):
    """400, another 4xx or 501: the server will answer the same way every time."""


class RateLimited(ApiError):
    """429: the server asks us to slow down; retried after Retry-After."""

    retryable = True


class ServerError(ApiError):
    """5xx, from the server or a proxy in front of it; retried."""

    retryable = True


class TransportError(ApiError):
    """No HTTP answer: refused, reset, timed out, DNS or TLS failure; retried."""

    retryable = True


class CertificateError(TransportError):
    """The server's TLS certificate failed verification; another attempt meets the same one."""

    retryable = False


class HandshakeError(TransportError):
    """The TLS handshake failed (not the certificate): the same server fails it every time.

    The usual cause: ``host`` without ``http://`` against a server that speaks plain HTTP.
    """

    retryable = False


class BadResponse(ApiError):
    """An answer that is not the JSON expected (HTML, garbage, wrong shape)."""


class ApplyError(BondhaError):
    """Writes were attempted but the pair did not converge; ``result`` says what happened."""

    exit_code = 1

    def __init__(self, message: str, result: Result) -> None:
        super().__init__(message)
        self.result = result
