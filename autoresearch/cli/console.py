"""What every command prints through: one console, and DSPy kept quiet."""

from __future__ import annotations

import sys

import click
from rich.console import Console

# Piped output is read by people and by grep: give tables room instead of rich's 80-column default. No markup:
# what is printed holds paths, model names, servers' errors and models' ideas, any of which may hold "[…]" (rich
# dropped "[q4]" and raised MarkupError on "[/x]"); style is given as Text and style= instead.
console = Console(width=None if sys.stdout.isatty() else 140, soft_wrap=not sys.stdout.isatty(), markup=False)


def quiet_dspy() -> None:
    """DSPy logs a warning per truncated reply; the call log records every reply, so here that is noise.
    Called after DSPy is imported, since its import resets its own logger."""
    import dspy

    dspy.disable_logging()


def note_a_running_run(runs_dir, what: str) -> None:
    """Say so on stderr when a run holds this workspace on this machine: `what` shares the CPU or GPU with it."""
    from ..workspace.lock import running_here

    holder = running_here(runs_dir)
    if holder:
        click.echo(f"note: `autoresearch run` (pid {holder['pid']}, started {holder.get('started', '?')}) is running "
                   f"in this workspace: this {what} shares the machine with it, so both run slower, and the run's "
                   f"seconds and joules include this {what}'s load", err=True)
