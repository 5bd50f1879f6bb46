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


def note_on_stderr(text: str) -> None:
    """A note that is not the command's result (a server gone and back, say): on stderr."""
    click.echo(f"note: {text}", err=True)


def note_a_running_run(runs_dir, *, here: bool = True, echo=None) -> None:
    """Say so (on stderr, or through echo) when a run goes on this machine: in this workspace (where `here`), else
    in another; the command shares the CPU or GPU with it."""
    from ..workspace.lock import running_here, runs_on_this_machine

    holder, where = (running_here(runs_dir) if here else None), "in this workspace"
    if not holder:
        others = runs_on_this_machine(runs_dir)
        holder, where = (others[0], f"on this machine, in {others[0].get('workspace', '?')}") if others else (None, "")
    if holder:
        (echo or (lambda text: click.echo(text, err=True)))(
            f"note: `autoresearch run` (pid {holder['pid']}, started {holder.get('started', '?')}) is running "
            f"{where}: the two share the machine, so both run slower, and each one's seconds and joules include "
            "the other's load")
