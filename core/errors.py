"""The one error tree of enclave. Every error the project raises on purpose is one of these.

::

    EnclaveError
    ├── ConfigError                 settings that cannot work together
    ├── Abandoned                   the client went away before its answer was complete
    ├── Withheld                    an answer cited a document its asker may not read: a
    │                               fault upstream (the search's filter), never a leak
    ├── InputError                  a request or argument that is wrong (HTTP 4xx, CLI exit 2)
    │   ├── NotFound                no such document, chunk or path
    │   ├── AccessDenied            the principal may not see or do this (HTTP 403)
    │   ├── Unauthenticated         no credentials, or unknown or revoked ones (HTTP 401)
    │   ├── RateLimited             this key sent too many requests; retry later (HTTP 429)
    │   ├── SyncRunning             a sync of this source is running already (HTTP 409)
    │   └── LastAdmin               the change would leave no admin (HTTP 409)
    ├── DocumentError               one file cannot be ingested; the run goes on without it
    │   ├── UnsupportedType         no parser for this kind of file
    │   ├── EmptyDocument           the file holds no extractable text
    │   ├── EncryptedDocument       password-protected or DRM-encrypted
    │   ├── CorruptDocument         the parser could not read the file
    │   ├── TooLarge                over the configured size or page limit
    │   ├── UnreadableFile          permissions, a vanished file, a symlink loop
    │   ├── ParseFailed             the parser crashed, or took longer than its time limit
    │   └── UnsafeContent           refused as hostile: an archive member whose path
    │                               leaves the archive, or a link
    ├── SourceError                 a source (share, mailbox, site) cannot be listed or read:
    │                               down, wrong credentials, a TLS failure, a missing path;
    │                               its sync deletes nothing and says why on the job
    └── BackendError                a store, database or model is unavailable: transient, retry later
        ├── StoreError              Qdrant
        ├── RegistryError           the metadata database
        ├── ModelError              the language model: unreachable, too slow, or failed
        └── Busy                    every answer slot is taken; retry shortly (HTTP 503)

``DocumentError.reason`` is the one-line reason recorded in the registry and printed by the CLI.
"""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """An exception's message as one line, for a reason a user reads."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


class EnclaveError(Exception):
    """Base of every deliberate enclave error."""


class ConfigError(EnclaveError):
    pass


class Abandoned(EnclaveError):
    """Nothing more is sent: the answer's work stops at its next step and is recorded as such."""


class Withheld(EnclaveError):
    """The second access check stopped an answer; the record says so (answer.withheld)."""


class InputError(EnclaveError):
    pass


class NotFound(InputError):
    pass


class AccessDenied(InputError):
    pass


class Unauthenticated(InputError):
    pass


class RateLimited(InputError):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DocumentError(EnclaveError):
    kind = "error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


class UnsupportedType(DocumentError):
    kind = "unsupported type"


class EmptyDocument(DocumentError):
    kind = "empty"


class EncryptedDocument(DocumentError):
    kind = "encrypted"


class CorruptDocument(DocumentError):
    kind = "corrupt"


class TooLarge(DocumentError):
    kind = "too large"


class UnreadableFile(DocumentError):
    kind = "unreadable"


class UnsafeContent(DocumentError):
    kind = "unsafe"


class ParseFailed(DocumentError):
    kind = "parse failed"


class SyncRunning(InputError):
    pass


class LastAdmin(InputError):
    pass


class SourceError(EnclaveError):
    pass


class BackendError(EnclaveError):
    pass


class StoreError(BackendError):
    pass


class RegistryError(BackendError):
    pass


class ModelError(BackendError):
    pass


class Busy(BackendError):
    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
