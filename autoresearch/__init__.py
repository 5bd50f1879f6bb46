"""autoresearch: optimize the instructions of an agentic pipeline overnight on local models.

The public API, loaded on first use so that `import autoresearch` (and the CLI's --help) stays light:

    from autoresearch import Study, load_workspace
    summary = Study(load_workspace("my-ws")).optimize(n_trials=20)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_PUBLIC = {
    "Study": "autoresearch.search.study",
    "StudySummary": "autoresearch.search.study",
    "Workspace": "autoresearch.workspace.workspace",
    "load_workspace": "autoresearch.workspace.workspace",
    "init_workspace": "autoresearch.workspace.workspace",
    "Harness": "autoresearch.pipeline.harness",
    "errors": "autoresearch.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'autoresearch' has no attribute {name!r}")
    loaded = import_module(module)
    return loaded if name == "errors" else getattr(loaded, name)
