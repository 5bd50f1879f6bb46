"""Options several commands share."""

from __future__ import annotations

from pathlib import Path

import click


def _workspace(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """-w as given; without it, the workspace the current folder lies in."""
    from ..workspace.workspace import find_workspace

    return value if value is not None else find_workspace(Path.cwd())


workspace_option = click.option(
    "--workspace", "-w", "path", default=None, callback=_workspace, type=click.Path(path_type=Path),
    help="Workspace directory (default: the one the current folder is in, found upward as git finds a repository).")
