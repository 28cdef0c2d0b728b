"""One exception hierarchy, each error carrying its handling class.

- transient: retry with per-action exponential backoff (network blips, 5xx, 429, timeouts);
- needs-human: shown and held until a person acts (consent, permissions, a corrupted source);
- terminal: the action failed for good, with its reason (a 4xx the API will always refuse).

Front ends map these to exit codes and messages; `ConfigError` maps to exit 78.
"""

from __future__ import annotations

from engine.model import ErrorClass


class Bl931Error(Exception):
    """Base of every error bl931 raises on purpose."""

    error_class: ErrorClass = ErrorClass.TERMINAL

    def __init__(self, message: str, *, error_class: ErrorClass | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_class is not None:
            self.error_class = error_class

    def __str__(self) -> str:
        return self.message


class TransientError(Bl931Error):
    error_class = ErrorClass.TRANSIENT


class NeedsHumanError(Bl931Error):
    error_class = ErrorClass.NEEDS_HUMAN


class TerminalError(Bl931Error):
    error_class = ErrorClass.TERMINAL


class ConfigError(Bl931Error):
    """The configuration is invalid; names the file, the key path and what was expected."""

    error_class = ErrorClass.NEEDS_HUMAN

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        where = ": ".join(part for part in (path, key) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.key = key


class EndpointUnavailable(Bl931Error):
    """An endpoint could not be listed or reached: its replicas are unknown, never absent."""

    error_class = ErrorClass.TRANSIENT

    def __init__(
        self, endpoint: str, message: str, *, error_class: ErrorClass | None = None
    ) -> None:
        super().__init__(f"{endpoint}: {message}", error_class=error_class)
        self.endpoint = endpoint
        self.reason = message


class CatalogUnavailable(Bl931Error):
    error_class = ErrorClass.TRANSIENT


class UnsafePath(TerminalError):
    """A path escapes its endpoint root (`..`, absolute, or a symlink pointing outside)."""


class VerificationFailed(NeedsHumanError):
    """Bytes written or found at a destination do not match the acquisition checksum."""


class StateLocked(NeedsHumanError):
    """Another reconciler owns the state store."""


class UsageError(Bl931Error):
    """The command line is wrong (exit 64)."""


def classify(exc: BaseException) -> ErrorClass:
    """The handling class of any exception: ours carry one; OS and network errors are transient."""
    if isinstance(exc, Bl931Error):
        return exc.error_class
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return ErrorClass.TRANSIENT
    return ErrorClass.TERMINAL
