"""The typed errors: each failure mode names one kind of backend failure, and says whether the backend answered."""

from __future__ import annotations

from autoresearch import errors


def test_each_failure_mode_belongs_to_one_error_type():
    # The call log keeps only the mode's string; answered() and the reports look a type up by it.
    modes = [kind.failure_mode for kind in errors.backend_error_types()]
    assert len(modes) == len(set(modes)), modes


def test_only_a_models_unusable_text_counts_as_the_backend_having_answered():
    assert errors.answered("unparseable")
    for mode in ("malformed_response", "server_error", "timeout", "unreachable", "context_length", "error", None, "?"):
        assert not errors.answered(mode), mode


def test_a_full_disk_is_recognised_wherever_it_struck_and_nothing_else_is():
    import errno
    import sqlite3

    import sqlalchemy.exc

    enospc = OSError(errno.ENOSPC, "No space left on device", "/ws/runs/results.tsv")
    assert errors.out_of_space(enospc) == "writing /ws/runs/results.tsv: No space left on device"
    assert errors.out_of_space(OSError(errno.EDQUOT, "Disk quota exceeded")) == "Disk quota exceeded"
    sqlite_full = sqlite3.OperationalError("database or disk is full")
    assert errors.out_of_space(sqlite_full) == "database or disk is full"
    optuna_full = sqlalchemy.exc.OperationalError("INSERT INTO trial_values ...", {}, sqlite_full)
    assert errors.out_of_space(optuna_full) == "database or disk is full"
    try:  # a model call whose record could not be written, wrapped on its way out of the engine
        try:
            raise sqlite_full
        except sqlite3.OperationalError as exc:
            raise errors.BackendError("[autoresearch/evaluator] call failed") from exc
    except errors.BackendError as wrapped:
        assert errors.out_of_space(wrapped) == "database or disk is full"
    git_full = RuntimeError("Cmd('git') failed\n  stderr: 'error: unable to write file: No space left on device'")
    assert errors.out_of_space(git_full) == "No space left on device"
    for other in (OSError(errno.EACCES, "Permission denied", "/ws"), sqlite3.OperationalError("database is locked"),
                  ValueError("disk"), None):
        assert errors.out_of_space(other) is None
