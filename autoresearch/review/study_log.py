"""What a study kept, read back from the store: the data behind `log` (and the report's commits), with
the baseline it started from, every new baseline after it and a shared study's other workers' keeps."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from ..lm.model_identity import what_changed
from ..store import Store
from ..store.queries import incumbent_before, joules_per_task
from ..store.statuses import TrialStatus

# --- finding the store, the study and the trial --------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """One committed improvement."""

    trial: int
    date: str
    commit: str
    file: str
    delta: float
    composite: float
    holdout_composite: float | None
    joules_per_task: float | None
    energy_source: str
    operator: str
    description: str
    # The keep rule's evidence (search/keep_rule.py, Verdict.to_json); None for keeps made before the paired rule.
    evidence: dict[str, Any] | None = None
    worker: str = ""  # a shared study's keep by another worker (its evaluation is in that worker's store); "": ours

    @property
    def shown_description(self) -> str:
        """The description, marked with its worker where another worker kept it."""
        return f"[worker {self.worker}] {self.description}" if self.worker else self.description

    @property
    def lower_bound(self) -> float | None:
        return (self.evidence or {}).get("search", {}).get("lower_bound")

    @property
    def inside_noise(self) -> bool:
        """Kept without a lower bound above zero: the old rule's keeps, or a rule run with one pair."""
        return self.lower_bound is None or self.lower_bound <= 0


EDITED = "HEAD held instructions of yours, not the incumbent's"


@dataclass(frozen=True)
class Restart:
    """A baseline after the study's first, the incumbent from there on: HEAD held instructions that were not the
    incumbent's (a commit of the user's: search/baseline.py, Baseline.edited_since), or the models answering had
    changed under their names (lm/model_identity.py)."""

    trial: int
    date: str
    commit: str
    composite: float
    holdout_composite: float | None
    why: str = EDITED

    @property
    def description(self) -> str:
        return f"new baseline: {self.why}; the incumbent from here on"


def restart_reason(store: Store, trials: list[sqlite3.Row], row: sqlite3.Row) -> str:
    """Why a baseline after the study's first was evaluated, read from what it and the incumbent before it
    hold: other instructions (the user's commit), other models (their evaluations' records), or both."""
    before = incumbent_before(trials, row["number"])
    if before is None:
        return EDITED
    reasons = [EDITED] if before["variant_hash"] != row["variant_hash"] else []
    old, new = (_models_of(store, r["evaluation_id"]) for r in (before, row))
    if old and new and old != new:
        reasons.append(what_changed(old, new))
    return " and ".join(reasons) or EDITED


def _models_of(store: Store, evaluation_id: int | None) -> str | None:
    row = store.evaluation(evaluation_id) if evaluation_id is not None else None
    return row["models"] if row is not None else None


@dataclass(frozen=True)
class StudyLog:
    study: str
    branch: str
    baseline_composite: float | None
    baseline_holdout: float | None
    counts: dict[str, int]
    entries: list[LogEntry]  # newest first
    baseline_elsewhere: str = ""  # "trial 0 of worker …": a shared study's baseline another worker ran
    restarts: list[Restart] = field(default_factory=list)  # newest first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def study_log(store: Store, study: str) -> StudyLog:
    """The kept trials of a study, newest first, with the baseline they started from."""
    trials = store.trials(study)
    branch = store.study(study)["branch"]
    counts: dict[str, int] = {}
    for r in trials:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    baseline = next((r for r in trials if r["status"] == TrialStatus.BASELINE), None)
    entries = [
        LogEntry(trial=r["number"], date=r["finished_at"] or r["created_at"], commit=r["commit_sha"] or "",
                 file=r["file"] or "", delta=r["delta"], composite=r["composite"],
                 holdout_composite=r["holdout_composite"],
                 joules_per_task=joules_per_task(store, r["evaluation_id"]),
                 energy_source=r["energy_source"] or "", operator=r["operator"] or "",
                 description=" ".join((r["idea"] or r["note"] or "").split()),
                 evidence=json.loads(r["evidence_json"]) if r["evidence_json"] else None)
        for r in reversed(trials) if r["status"] == TrialStatus.KEEP
    ]
    others = other_workers_keeps(store, study)
    if others:  # trial numbers are study-wide in a shared study: one order for every worker's keeps
        entries = sorted(entries + others, key=lambda e: e.trial, reverse=True)
    if baseline is None and (recorded := store.study_baseline(study)) is not None:
        return StudyLog(study, branch, recorded["composite"], recorded["holdout_composite"], counts, entries,
                        f"trial {recorded['trial']} of worker {recorded['worker']}")
    restarts = [Restart(r["number"], r["finished_at"] or r["created_at"], r["commit_sha"] or "", r["composite"],
                        r["holdout_composite"], restart_reason(store, trials, r))
                for r in reversed(trials) if r["status"] == TrialStatus.BASELINE and r is not baseline]
    return StudyLog(study, branch, baseline["composite"] if baseline else None,
                    baseline["holdout_composite"] if baseline else None, counts, entries, restarts=restarts)


def other_workers_keeps(store: Store, study: str) -> list[LogEntry]:
    """A shared study's keeps by other workers, as this worker read them from the study's ledger: their figures
    and evidence are those their worker recorded (per-task joules are in that worker's store only)."""
    return [keep_entry(trial=r["trial"], date=r["kept_at"], commit=r["commit_sha"], file=r["file"],
                       composite=r["composite"], holdout_composite=r["holdout_composite"],
                       trailers=json.loads(r["trailers_json"]), idea=r["idea"] or r["subject"], worker=r["worker"],
                       evidence=json.loads(r["evidence_json"]) if r["evidence_json"] else None)
            for r in store.study_keeps(study)]


def keep_entry(*, trial: int, date: str, commit: str | None, file: str | None, composite: float,
               holdout_composite: float | None, trailers: dict[str, str], idea: str, worker: str,
               evidence: dict[str, Any] | None) -> LogEntry:
    """A shared study's keep as a log entry, from what the ledger holds of it (its commit's trailers, the keep
    rule's evidence, the idea): `log` and `status` show another worker's keep this way."""
    return LogEntry(
        trial=trial, date=date, commit=commit or "", file=file or "",
        delta=float(trailers.get("Autoresearch-Delta", "nan")), composite=composite,
        holdout_composite=holdout_composite, joules_per_task=None,
        energy_source=trailers.get("Autoresearch-Joules", "").partition("(")[2].rstrip(")"),
        operator=trailers.get("Autoresearch-Operator", ""), description=" ".join(idea.split()), evidence=evidence,
        worker=worker)
