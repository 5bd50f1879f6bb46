"""Typed errors raised by the library; only the CLI turns them into one printed line.

    AutoresearchError
    ├── UsageError            bad input: the CLI exits 2 and nothing is written
    │   ├── ConfigError       a config, rubric or task file is malformed (names file and field)
    │   ├── WorkspaceError    the workspace or its git state forbids the command
    │   │   └── HeadMoved     HEAD moved during a run: a keep is not committed there (the run stops)
    │   └── NativeBuildError  the installed llama-cpp-python build would crash here (AMX)
    ├── BackendError          a model call failed; carries failure_mode and retryable
    │   ├── BackendUnreachable    the server cannot be reached (connection refused, DNS)
    │   ├── BackendTimeout        the call ran past its timeout
    │   ├── ModelNotFound         the backend does not have the model
    │   ├── ContextLengthExceeded the prompt does not fit the model's context
    │   ├── StructuredOutputUnsupported  the server refuses the response_format (JSON schema) sent
    │   ├── MalformedResponse     the server's reply breaks its API (a non-JSON body, no choices)
    │   └── UnparseableOutput     the model's text is empty or cannot be parsed (the backend answered)
    └── StorageError          a database a run depends on is unreachable or unusable (exit 1)
        └── StoreError        the SQLite store is unusable

    KeyboardInterrupt
    └── Terminated            a stop signal (SIGTERM) ends the run now, as a second Ctrl-C does
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Iterable


class AutoresearchError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(AutoresearchError):
    """Input the user can fix; the CLI exits with code 2."""


class ConfigError(UsageError):
    """A workspace file is malformed; names the file and the field."""

    def __init__(self, path: str, field: str | None, message: str):
        self.path = str(path)
        self.field = field
        self.message = message
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {message}")


class WorkspaceError(UsageError):
    """The workspace (its files or git state) forbids what was asked."""


class HeadMoved(WorkspaceError):
    """The workspace's git HEAD moved during a run (another branch checked out, a commit of the user's): a keep
    is not committed there; the run stops."""


class NativeBuildError(UsageError):
    """The installed llama-cpp-python was compiled with features that crash the embedded model (AMX)."""


class StorageError(AutoresearchError):
    """A database the run depends on (the store, a shared study's) cannot be reached or used: not the
    user's input, so the CLI exits 1; the same command resumes once it is back."""


class StoreError(StorageError):
    """The SQLite store cannot be opened or migrated."""


class Terminated(KeyboardInterrupt):
    """A stop signal (SIGTERM: `kill`, `systemctl stop`, a scheduler's end of allocation) asked the run to end
    now. A KeyboardInterrupt, so everything that abandons a trial cleanly on a second Ctrl-C does so here too;
    raised by the CLI's signal handler, never by the library."""


class BackendError(AutoresearchError):
    """A model call failed; failure_mode is what the call log records."""

    failure_mode = "error"
    retryable = False
    # True where the backend did reply and only the model's text was unusable: a small model's bad output, not
    # an outage, so the loop never counts it toward "the backend is down".
    answered = False

    def __init__(self, message: str, *, backend: str = "", model: str = ""):
        self.backend = backend
        self.model = model
        super().__init__(message)


class BackendUnreachable(BackendError):
    failure_mode = "unreachable"
    retryable = True


class BackendTimeout(BackendError):
    failure_mode = "timeout"
    retryable = True


class ModelNotFound(BackendError):
    failure_mode = "model_not_found"


class ContextLengthExceeded(BackendError):
    failure_mode = "context_length"


class ServerError(BackendError):
    """The server answered with an HTTP 5xx."""

    failure_mode = "server_error"
    retryable = True


class StructuredOutputUnsupported(BackendError):
    """The server refused a request's response_format: one dialect (the next may do), or every one tried."""

    failure_mode = "format_rejected"


class Cancelled(BackendError):
    """The suite stopped (a pruned variant) before this call started: no call was made."""

    failure_mode = "cancelled"


class MalformedResponse(BackendError):
    """The server's reply is not what its API promises (a non-JSON body, no choices, no model list): a fault of
    the server or of a proxy in front of it, which a retry may get past."""

    failure_mode = "malformed_response"
    retryable = True


class UnparseableOutput(BackendError):
    """The model's text is empty or is not the JSON asked for: the backend answered."""

    failure_mode = "unparseable"
    answered = True


def backend_error_types(kind: type[BackendError] = BackendError) -> list[type[BackendError]]:
    """BackendError and every subclass of it, at any depth."""
    return [kind] + [sub for child in kind.__subclasses__() for sub in backend_error_types(child)]


# The recorded failure modes whose backend did reply (the call log keeps only the mode's string).
_ANSWERED_MODES = frozenset(kind.failure_mode for kind in backend_error_types() if kind.answered)


def answered(failure_mode: str | None) -> bool:
    """Whether a call that failed with this recorded failure mode got a reply from its backend."""
    return failure_mode in _ANSWERED_MODES


def modes_line(modes: Iterable[str | None]) -> str:
    """Failure modes counted, most common first: "timeout ×2, unparseable ×1" (None counts as "error")."""
    return ", ".join(f"{mode} ×{n}" for mode, n in Counter(m or "error" for m in modes).most_common())


# How a full disk reads where it is not an OSError: SQLite ("database or disk is full"), git's stderr.
_OUT_OF_SPACE = ("database or disk is full", "no space left on device", "disk quota exceeded")


def out_of_space(exc: BaseException | None) -> str | None:
    """What a full disk (or quota) stopped, where exc or an error it came from says so; else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"writing {exc.filename}: {exc.strerror}" if exc.filename else (exc.strerror or str(exc))
        text = str(exc)
        found = next((m for m in _OUT_OF_SPACE if m in text.lower()), None)
        if found is not None:  # the words alone: around them is an SQL statement or a git command line
            start = text.lower().index(found)
            return text[start:start + len(found)]
        exc = exc.__cause__ or exc.__context__
    return None
