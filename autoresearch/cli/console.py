"""What every command prints through: one console, and DSPy kept quiet."""

from __future__ import annotations

import sys

from rich.console import Console

# Piped output is read by people and by grep: give tables room instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 140, soft_wrap=not sys.stdout.isatty())


def quiet_dspy() -> None:
    """DSPy logs a warning per truncated reply; the call log records every reply, so here that is noise.
    Called after DSPy is imported, since its import resets its own logger."""
    import dspy

    dspy.disable_logging()
