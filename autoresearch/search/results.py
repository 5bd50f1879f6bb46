"""runs/results.tsv: one greppable row per trial, appended as each trial ends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("trial", "commit", "composite", "delta", "joules", "status", "operator", "description")


@dataclass(frozen=True)
class TrialOutcome:
    """How one trial ended: what the summary, the live view and results.tsv show."""

    number: int
    status: str  # baseline | keep | discard | pruned | failed | interrupted
    file: str = ""
    operator: str = ""
    description: str = ""
    composite: float | None = None
    delta: float | None = None
    joules: float = 0.0
    energy_source: str = ""
    commit: str = ""
    holdout_composite: float | None = None


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def append_row(path: Path, outcome: TrialOutcome) -> None:
    new = not path.exists()
    description = " ".join(f"{outcome.file} {outcome.description}".split()).replace("\t", " ")
    row = (str(outcome.number), outcome.commit[:10], _fmt(outcome.composite, ".3f"), _fmt(outcome.delta, "+.3f"),
           _fmt(outcome.joules, ".1f"), outcome.status, outcome.operator, description)
    with path.open("a", encoding="utf-8") as f:
        if new:
            f.write("\t".join(COLUMNS) + "\n")
        f.write("\t".join(row) + "\n")
