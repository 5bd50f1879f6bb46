"""runs/results.tsv: one greppable row per trial, rendered from the trial's store row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..store.statuses import TrialStatus
from ..workspace.versioning import write_atomic
from ..workspace.workspace import text_hash
from .proposer import Feedback

if TYPE_CHECKING:
    from .keep_rule import Verdict


class StopReason(StrEnum):
    """Why a run stopped: a stop condition met, or something that ended it early."""

    TRIALS = "trials"  # --trials reached
    TIMEOUT = "timeout"  # --timeout reached
    PLATEAU = "plateau"  # --plateau trials without a keep
    STOPPED = "stopped"  # Ctrl-C, after the trial in progress
    HANGUP = "hangup"  # the terminal closed (SIGHUP), after the trial in progress
    INTERRUPTED = "interrupted"  # a second Ctrl-C abandoned the trial in progress
    TERMINATED = "terminated"  # a stop signal (SIGTERM) abandoned the trial in progress
    BACKEND_DOWN = "backend_down"  # trials kept failing on a model call
    FAILED_TRIALS = "failed_trials"  # trials kept failing without a failed model call
    STORAGE_DOWN = "storage_down"  # a shared study's database went away
    HEAD_MOVED = "head_moved"  # the workspace's HEAD left the study branch, or a commit changed the incumbent there
    MODELS_CHANGING = "models_changing"  # the models answering changed again before a trial could finish


KNOBS = ("producer_temperature", "revision_rounds")  # the searchable settings besides the text

COLUMNS = ("trial", "commit", "composite", "delta", "joules", "status", "operator", "description")


@dataclass(frozen=True)
class TrialOutcome:
    """How one trial ended: what the summary, the live view and results.tsv show."""

    number: int
    status: TrialStatus
    file: str = ""
    operator: str = ""
    description: str = ""
    composite: float | None = None
    delta: float | None = None
    joules: float = 0.0
    energy_source: str = ""
    commit: str = ""
    holdout_composite: float | None = None
    objective: float | None = None  # what the keep rule compares: see objective(); delta is in its units
    evidence: "Verdict | None" = None  # how the keep rule decided (a trial that reached it)
    incumbent_objective: float | None = None  # the objective it was compared with (else objective − delta)
    failure: str | None = None  # a failed trial's cause where it is the recipe's: NO_VARIANT (store: trials.failure)
    crossover_next: bool = False  # a near-miss whose crossover with the incumbent is queued (search/near_miss.py)


def objective(composite: float | None, joules: float, tasks: int, energy_weight: float) -> float | None:
    """The loop's objective: composite − energy_weight × kJ per task of the search evaluation.

    With energy_weight 0 it is the composite itself (the same float, so nothing changes)."""
    if composite is None or not energy_weight or not tasks:
        return composite
    return composite - energy_weight * joules / tasks / 1000.0


def row_objective(row) -> float | None:
    """A trials row's objective; rows made before m004 (energy_weight was 0 then) have only the composite."""
    value = row["objective"]
    return row["composite"] if value is None else value


def tsv_line(row) -> str:
    """A trial's results.tsv row (without the newline), rendered from its store row alone."""
    def fmt(value: float | None, spec: str) -> str:
        return "" if value is None else format(value, spec)

    description = " ".join(f"{row['file'] or ''} {row['note'] or ''}".split()).replace("\t", " ")
    return "\t".join((str(row["number"]), (row["commit_sha"] or "")[:10], fmt(row["composite"], ".3f"),
                      fmt(row["delta"], "+.3f"), fmt(row["joules"], ".1f"), row["status"],
                      row["operator"] or "", description))


def variant_hash(instructions: dict[str, str], knobs: dict[str, Any]) -> str:
    """The hash that finds an identical earlier evaluation of these instructions and knobs."""
    return text_hash(json.dumps([instructions, knobs], sort_keys=True))


@dataclass
class Incumbent:
    """The best kept instruction set so far (the baseline until something is kept)."""

    trial: int
    composite: float
    instructions: dict[str, str]
    knobs: dict[str, Any]
    evaluation_id: int | None
    holdout_composite: float | None
    objective: float  # what a variant must beat: the composite, less the energy term when energy_weight > 0
    version: int = 0  # in a shared study: the ledger's version of the incumbent
    feedback: Feedback | None = None  # in a shared study: from the worker that evaluated it

    @property
    def variant_hash(self) -> str:
        """Its instructions' and knobs' hash: how the store finds its evaluations."""
        return variant_hash(self.instructions, self.knobs)


class ResultsFile:
    """runs/results.tsv: each finished trial's row written exactly once, whatever kills the run."""

    def __init__(self, path: Path, rows: Callable[[], Iterable[Any]], note: Callable[[str], None]):
        self.path = path
        self.rows = rows  # the study's trials rows, in number order (from the store)
        self.note = note
        self._lines: set[str] | None = None

    def sync(self) -> None:
        """Repair a row cut off by a kill and append the rows of finished trials that are missing."""
        path = self.path
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                data = data[: data.rfind(b"\n") + 1]
                write_atomic(path, data.decode("utf-8", errors="replace"))
                self.note(f"{path}: removed a row cut off by the stopped run")
            if not data.strip():
                path.unlink()  # created, then killed before anything was written: start it afresh
        self._lines = set(path.read_text(encoding="utf-8").splitlines()[1:]) if path.exists() else set()
        for row in self.rows():
            if row["status"] != TrialStatus.RUNNING:
                self.write(row)

    def write(self, row: Any) -> None:
        """Append a finished trial's row once: a row already there is not written again."""
        if self._lines is None:
            self.sync()
        line = tsv_line(row)
        if line in self._lines:
            return
        path = self.path
        header = "\t".join(COLUMNS) + "\n" if not path.exists() or path.stat().st_size == 0 else ""
        with path.open("a", encoding="utf-8") as f:
            f.write(header + line + "\n")  # one write: a kill leaves a whole row or a cut one (repaired on start)
        self._lines.add(line)
