"""A study's identity: its name and branch, from everything that makes its scores comparable.

Light on purpose (no Optuna, no DSPy): the read side asks which study the workspace's settings name.
"""

from __future__ import annotations

import json
from typing import Any

from ..workspace.config import ROLES, Settings
from ..workspace.workspace import Workspace, text_hash


def search_space(settings: Settings) -> dict[str, Any]:
    """The [search] settings that define the space (a stop rule, a measurement and the sampler that walks
    the space are not the space)."""
    return settings.search.model_dump(exclude={"max_consecutive_failed", "noise_repeats", "sampler",
                                               "proposer_examples"})


def study_name(workspace: Workspace, portfolio: str | None = None) -> str:
    """Workspace name + portfolio + a hash of the portfolio, the fixed evaluation, the optimizable files and
    the search space: two runs share a study exactly when their scores are comparable."""
    settings = workspace.settings
    name = portfolio or settings.workspace.portfolio
    # A role's concurrency is how many requests run at once, not what they score; left out, too, so that
    # studies named before the setting existed keep their names.
    roles = workspace.portfolio(name).model_dump(exclude={role: {"concurrency"} for role in ROLES})
    blob = json.dumps([roles, workspace.evaluation_hash(),
                       settings.workspace.optimizable, search_space(settings)], sort_keys=True)
    return f"{settings.workspace.name}-{name}-{text_hash(blob)[:8]}"


def branch_of(study: str) -> str:
    """The git branch a study commits its keeps to."""
    return f"autoresearch/{study}"
