"""
The errors docmill raises, as one tree::

    DocmillError
    ├── ExtractionError            a document could not be read (has .code)
    │   │                          extraction_failed: an unexpected reader error
    │   ├── EmptyDocument          empty
    │   ├── CorruptDocument        corrupt
    │   ├── EncryptedDocument      encrypted
    │   ├── UnsupportedFormat      unsupported_format
    │   ├── LimitExceeded          limit_exceeded
    │   │   ├── MemoryLimitExceeded  limit_exceeded: the memory cap
    │   │   └── EntityBomb           limit_exceeded: XML entities refused
    │   ├── TooLarge               too_large
    │   ├── ExtractionTimeout      timeout           (retryable)
    │   └── WorkerCrash            worker_crash      (retryable)
    ├── QueueError
    │   ├── DocumentNotFound
    │   ├── LeaseLost              the claim's token no longer matches the row
    │   ├── QueueFull              DOCMILL_MAX_PENDING documents are waiting
    │   ├── RetryOverLimit         a retry would queue past DOCMILL_MAX_PENDING
    │   ├── ResultChanged          a result replaced while its body was sent
    │   └── UnstorableResult       unstorable_result: the database refused it
    ├── StorageError
    │   ├── OriginalMissing
    │   └── UploadTimeout          an original took too long to reach storage
    ├── FetchError                 a submitted URL could not be fetched (has .code)
    │   │                          fetch_failed
    │   └── ForbiddenAddress       forbidden_address
    ├── IdempotencyConflict        a key reused for a different request
    ├── InvalidApiKey
    └── UnknownCharset             a declared charset names no text encoding

``ExtractionError.code`` is the machine-readable word stored on a failed
document; ``retryable`` tells the worker whether another attempt may succeed,
so the worker never has to guess from the message. ``DOCUMENT_ERROR_CODES``
lists every code a document can end with, and ``TRANSIENT_ERROR_CODES`` those
another attempt may clear.
"""

from __future__ import annotations

from typing import ClassVar, Final

# How much of a caller's value an error message repeats: an id or name of
# thousands of characters was echoed whole, in the detail and beside it.
SHOWN_CHARS = 64


def shown(value: str) -> str:
    """``value`` in ``!r`` form, cut to ``SHOWN_CHARS`` with its length noted."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"


def echoed(value: str) -> str | None:
    """``value`` to repeat as a field of an answer, or None when too long."""
    return value if len(value) <= SHOWN_CHARS else None


class DocmillError(Exception):
    """Something docmill could not do."""


class ExtractionError(DocmillError):
    """The document could not be read."""

    code: ClassVar[str] = "extraction_failed"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        super().__init__(self.message)


class EmptyDocument(ExtractionError):
    """The document has no content."""

    code = "empty"


class CorruptDocument(ExtractionError):
    """The document is damaged and no reader could recover its text."""

    code = "corrupt"


class EncryptedDocument(ExtractionError):
    """The document is encrypted and does not open with an empty password."""

    code = "encrypted"


class UnsupportedFormat(ExtractionError):
    """The document's format is not one docmill reads."""

    code = "unsupported_format"


class LimitExceeded(ExtractionError):
    """The document exceeds a configured safety limit."""

    code = "limit_exceeded"


class MemoryLimitExceeded(LimitExceeded):
    """Extraction ran out of its memory allowance."""

    # Not retried: the cap is the child process's own (RLIMIT_AS), which no
    # other slot's allocations count against, and a document that needed
    # more than the cap once needs it again; retrying only ran the heaviest
    # documents into the cap three times over. What an earlier document left
    # in the heap cannot tip the next over: a child that met its cap is
    # replaced (ExtractionChild).


class EntityBomb(LimitExceeded):
    """An XML part's entity references would expand past the parser's limit."""


class TooLarge(ExtractionError):
    """The document is larger than the configured maximum size."""

    code = "too_large"


class ExtractionTimeout(ExtractionError):
    """Extraction took longer than the configured time limit."""

    code = "timeout"
    retryable = True


class WorkerCrash(ExtractionError):
    """The extraction process died while reading the document."""

    code = "worker_crash"
    retryable = True


# Every code a document can end with in ``documents.error_code``: the codes of
# the classes here, original_missing (the worker's word for OriginalMissing)
# and the codes the job store writes itself (cancelled; worker_crash for a
# lease that ran out). tests/unit/test_error_codes.py holds this set to the
# sources, so a new code cannot be left out of it.
DOCUMENT_ERROR_CODES: Final = frozenset(
    {
        "empty",
        "corrupt",
        "encrypted",
        "unsupported_format",
        "limit_exceeded",
        "too_large",
        "timeout",
        "worker_crash",
        "extraction_failed",
        "fetch_failed",
        "forbidden_address",
        "original_missing",
        "unstorable_result",
        "cancelled",
    }
)

# The codes another attempt may clear with nothing changed: a crash or a
# time limit met under load, a server that was down. The memory cap is not
# among them though it reads like one (see MemoryLimitExceeded), and it
# shares limit_exceeded with limits no retry gets past. fetch_failed also
# covers a 404, which only the other side can mend, but a retry of it costs
# one request.
TRANSIENT_ERROR_CODES: Final = frozenset({"timeout", "worker_crash", "fetch_failed"})

# What ``docmill extract`` records for a file it could not open or whose
# result it could not print; no document in the queue carries these.
EXTRACT_ONLY_ERROR_CODES: Final = frozenset({"unreadable", "unwritable"})


def error_class(name: str) -> type[ExtractionError]:
    """The ExtractionError subclass called ``name`` (the base class if none)."""
    found = globals().get(name)
    if isinstance(found, type) and issubclass(found, ExtractionError):
        return found
    return ExtractionError


class QueueError(DocmillError):
    """The job queue refused an operation."""


class DocumentNotFound(QueueError):
    """No document has this id."""

    def __init__(self, document_id: str) -> None:
        self.document_id = document_id
        super().__init__(f"no document with id {shown(document_id)}")


class LeaseLost(QueueError):
    """The worker's claim on a document expired and was taken over."""

    def __init__(self, document_id: str) -> None:
        self.document_id = document_id
        super().__init__(f"lease on document {document_id!r} was lost")


class QueueFull(QueueError):
    """As many documents are waiting as the queue takes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"{limit} or more documents are waiting, the limit is {limit}; "
            "retry after the time in Retry-After"
        )


class RetryOverLimit(QueueError):
    """Retrying these documents would leave more waiting than the queue takes."""

    def __init__(self, limit: int, pending: int, retrying: int) -> None:
        self.limit, self.pending, self.retrying = limit, pending, retrying
        super().__init__(
            f"retrying {retrying} document(s) would leave {pending + retrying} "
            f"waiting, past DOCMILL_MAX_PENDING ({limit})"
        )


class ResultChanged(QueueError):
    """The result being sent was replaced or deleted before its end."""

    def __init__(self, document_id: str) -> None:
        self.document_id = document_id
        super().__init__(
            f"the result of document {document_id!r} changed while it was sent"
        )


class UnstorableResult(QueueError):
    """A result holds text the database cannot store."""

    code: ClassVar[str] = "unstorable_result"

    def __init__(self, document_id: str, field: str) -> None:
        self.document_id = document_id
        self.field = field
        self.message = (
            f"the result could not be stored: its {field} holds text with no "
            "UTF-8 form (a lone surrogate code point)"
        )
        super().__init__(self.message)


class StorageError(DocmillError):
    """The store of originals failed."""


class OriginalMissing(StorageError):
    """The stored original of a document is gone."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"stored original {key!r} is missing")


class UploadTimeout(StorageError):
    """An original took longer than the upload time limit to reach storage."""

    def __init__(self, limit_seconds: float) -> None:
        self.limit_seconds = limit_seconds
        super().__init__(
            f"the upload took longer than the limit of {limit_seconds:g} seconds"
        )


class FetchError(DocmillError):
    """The submitted URL could not be fetched."""

    code: ClassVar[str] = "fetch_failed"

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        self.message = message
        self.retryable = retryable
        super().__init__(message)


class ForbiddenAddress(FetchError):
    """The URL leads to an address docmill must not reach."""

    code = "forbidden_address"

    def __init__(self, host: str, address: str) -> None:
        self.host = host
        self.address = address
        super().__init__(
            f"{host!r} resolves to {address}, a private, loopback, link-local or "
            "reserved address that is not on the allow-list"
        )


class IdempotencyConflict(DocmillError):
    """An Idempotency-Key was reused with a different request."""

    def __init__(self, key: str, document_id: str) -> None:
        self.key = key
        self.document_id = document_id
        super().__init__(
            f"Idempotency-Key {key!r} was first used for a different request "
            f"(document {document_id!r})"
        )


class UnknownCharset(DocmillError, ValueError):
    """A declared charset names no text encoding docmill can read."""

    def __init__(self, label: str) -> None:
        self.label = label
        super().__init__(
            f"unknown charset {shown(label)}: not a text encoding docmill can "
            "read (use a name such as utf-8, windows-1253 or koi8-r)"
        )


class InvalidApiKey(DocmillError):
    """The API key is unknown, malformed or revoked."""
