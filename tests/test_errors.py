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
