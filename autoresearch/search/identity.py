"""A study's identity: its name and branch, from everything that makes its scores comparable.

Light on purpose (no Optuna, no DSPy): the read side asks which study the workspace's settings name.
"""

from __future__ import annotations

import json
from typing import Any

from ..workspace.config import (
    ROLES,
    BackendsConfig,
    Portfolio,
    Settings,
    embedded_batch,
)
from ..workspace.workspace import Workspace, text_hash


def search_space(settings: Settings) -> dict[str, Any]:
    """The [search] settings that define the space (a stop rule, a measurement and the sampler that walks
    the space are not the space)."""
    return settings.search.model_dump(exclude={"max_consecutive_failed", "noise_repeats", "noise_repeats_upfront",
                                               "sampler", "proposer_examples", "shape_first",
                                               "follow_near_miss", "prune_confidence"})


def study_name(workspace: Workspace, portfolio: str | None = None) -> str:
    """Workspace name + portfolio + a hash of the portfolio, the fixed evaluation, the optimizable files and
    the search space: two runs share a study exactly when their scores are comparable."""
    settings = workspace.settings
    name = portfolio or settings.workspace.portfolio
    # A role's concurrency is how many requests run at once, not what they score; left out, too, so that
    # studies named before the setting existed keep their names.
    portfolio = workspace.portfolio(name)
    roles = portfolio.model_dump(exclude={role: {"concurrency"} for role in ROLES})
    for role in roles.values():  # an unset repeat_penalty leaves the names of studies made before it existed
        if role["repeat_penalty"] is None:
            del role["repeat_penalty"]
    parts: list[Any] = [roles, workspace.evaluation_hash(), settings.workspace.optimizable, search_space(settings)]
    decoding = embedded_decoding(portfolio, settings.backends)
    if decoding:  # only then: studies named before batched decoding existed keep their names
        parts.append({"embedded_decoding": decoding})
    if settings.workspace.restate_instructions:  # likewise: every prompt changes with it
        parts.append({"restate_instructions": True})
    return f"{settings.workspace.name}-{name}-{text_hash(json.dumps(parts, sort_keys=True))[:8]}"


def embedded_decoding(portfolio: Portfolio, backends: BackendsConfig) -> dict[str, dict[str, int]]:
    """The embedded roles that decode in batches or with drafts (lm/backends/batch_decode.py), by role.

    Part of a study's identity, unlike a server's concurrency: llama.cpp computes several rows of a batch
    with other arithmetic than one row, and on the starter that moved the composite by -0.17 to -0.34 on
    average (docs/BENCHMARKS.md), more than the keep threshold, so scores from the two ways do not mix.
    """
    decoding = {}
    for role in ROLES:
        config = portfolio.role(role)
        batch = embedded_batch(config, backends)
        if config.backend == "embedded" and (batch > 1 or backends.embedded_draft > 0):
            decoding[role] = {"batch": batch, "draft": backends.embedded_draft}
    return decoding


def branch_of(study: str) -> str:
    """The git branch a study commits its keeps to."""
    return f"autoresearch/{study}"
