"""Typed errors raised by the library; only the CLI turns them into one printed line.

    AutoresearchError
    ├── UsageError            bad input: the CLI exits 2 and nothing is written
    │   ├── ConfigError       a config, rubric or task file is malformed (names file and field)
    │   ├── WorkspaceError    the workspace or its git state forbids the command
    │   └── NativeBuildError  the installed llama-cpp-python build would crash here (AMX)
    ├── BackendError          a model call failed; carries failure_mode and retryable
    │   ├── BackendUnreachable    the server cannot be reached (connection refused, DNS)
    │   ├── BackendTimeout        the call ran past its timeout
    │   ├── ModelNotFound         the backend does not have the model
    │   ├── ContextLengthExceeded the prompt does not fit the model's context
    │   ├── StructuredOutputUnsupported  the server refuses the response_format (JSON schema) sent
    │   └── UnparseableOutput     the reply is empty or cannot be parsed
    └── StorageError          a database a run depends on is unreachable or unusable (exit 1)
        └── StoreError        the SQLite store is unusable
"""

from __future__ import annotations


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


class NativeBuildError(UsageError):
    """The installed llama-cpp-python was compiled with features that crash the embedded model (AMX)."""


class StorageError(AutoresearchError):
    """A database the run depends on (the store, a shared study's) cannot be reached or used: not the
    user's input, so the CLI exits 1; the same command resumes once it is back."""


class StoreError(StorageError):
    """The SQLite store cannot be opened or migrated."""


class BackendError(AutoresearchError):
    """A model call failed; failure_mode is what the call log records."""

    failure_mode = "error"
    retryable = False

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


class UnparseableOutput(BackendError):
    failure_mode = "unparseable"
