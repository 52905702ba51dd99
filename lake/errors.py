"""The lake's errors: one base class, subclasses that also inherit the matching built-in.

Every message names the bad value and says how to fix it.
"""

from __future__ import annotations


class LakeError(Exception):
    """Base class of every error raised on purpose by this project."""


class ConfigError(LakeError, ValueError):
    """A lake URL, option or environment variable is missing or malformed."""


class LayoutError(LakeError, ValueError):
    """A lake does not follow the layout it claims (missing or inconsistent objects)."""


class ReleaseNotFound(LakeError, KeyError):
    """The requested release is not in the lake."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message.
        return str(self.args[0]) if self.args else ""


class PatchNotFound(LakeError, KeyError):
    """The requested patch id is not in the release."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SourceError(LakeError, ValueError):
    """A source (folder, archive, LMDB, parquet) cannot be read at all."""


class BadInput(LakeError, ValueError):
    """One record of a source is invalid; ingest quarantines it and goes on.

    Attributes:
        subject: What is bad: a file path, a patch id, an annotation row ID.
        reason: A short machine-readable reason code (e.g. ``truncated``, ``wrong_shape``).
        detail: The human-readable explanation.
    """

    def __init__(self, subject: str, reason: str, detail: str) -> None:
        super().__init__(f"{subject}: {detail}")
        self.subject = subject
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[BadInput], tuple[str, str, str]]:
        return (type(self), (self.subject, self.reason, self.detail))


class PublishConflict(LakeError, RuntimeError):
    """Another writer published or holds the lock on the lake at the same time."""


class S3ServerError(LakeError, RuntimeError):
    """The embedded S3 endpoint could not be started."""


class ReadOnlyError(LakeError, PermissionError):
    """A write was attempted through a read-only SQL connection (lift it with allow_write)."""


class QueryTimeout(LakeError, TimeoutError):
    """A SQL statement ran past the session's statement timeout and was interrupted."""


class StorageError(LakeError, OSError):
    """The lake's storage cannot be reached or refuses access (endpoint, credentials, path)."""


class QueryError(LakeError, ValueError):
    """A search or query is malformed: bad bbox, datetime, filter, field, token or collection."""


class ShardReadError(LakeError, OSError):
    """A shard of the patch group cannot be read (after retries) or decoded; names the shard."""


class IntegrityError(ShardReadError):
    """Stored bytes fail their checksum (CRC32C); names the array, the object and the sample."""
