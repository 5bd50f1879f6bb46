"""Options several commands share."""

from __future__ import annotations

from pathlib import Path

import click

WORKSPACE_KEY = "autoresearch.workspace"  # in click's ctx.meta, which a command's context shares with the group's


def _workspace(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """-w as given; without it, the workspace the current folder lies in. Recorded for the error lines that name
    it (a full disk: cli/main.py)."""
    from ..workspace.workspace import find_workspace

    path = value if value is not None else find_workspace(Path.cwd())
    ctx.meta[WORKSPACE_KEY] = path
    return path


workspace_option = click.option(
    "--workspace", "-w", "path", default=None, callback=_workspace, type=click.Path(path_type=Path),
    help="Workspace directory (default: the one the current folder is in, found upward as git finds a repository).")
