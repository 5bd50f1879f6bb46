"""Knobs are versioned: the searched knob values of a study's keeps live in instructions/knobs.json on its
branch, committed with the instructions they were found with and read back by a study started from it."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError
from ..workspace.config import Settings
from ..workspace.versioning import InstructionRepo
from ..workspace.workspace import INSTRUCTIONS_DIR, KNOBS_FILE, Workspace, knobs_text
from .results import KNOBS

KNOBS_PATH = f"{INSTRUCTIONS_DIR}/{KNOBS_FILE}"


def searches_knobs(settings: Settings) -> bool:
    """Whether a study searches knob values ([search] producer_temperatures or revision_rounds)."""
    return bool(settings.search.producer_temperatures or settings.search.revision_rounds)


def knob_files(knobs: dict[str, Any]) -> dict[str, str]:
    """The knobs file a keep commits beside its instructions: only a study that searches knobs has any."""
    return {KNOBS_PATH: knobs_text(knobs)} if knobs else {}


def head_knobs(repo: InstructionRepo, workspace: Workspace) -> dict[str, Any]:
    """The knob values committed at HEAD of the study branch ({} without a knobs file)."""
    try:
        text = repo.read_head(KNOBS_PATH)
    except KeyError:
        return {}
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(str(workspace.root / KNOBS_PATH), "knobs",
                          "not valid JSON (a study writes it; restore it from git)") from None
    return {k: found[k] for k in KNOBS if k in found} if isinstance(found, dict) else {}
