"""The Pareto front of composite against joules per task over a study's trials, stored as runs/pareto.tsv;
the report draws the same points."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store import Store
from ..store.queries import joules_per_task, producer_tokens, scored_evaluation
from ..store.statuses import SCORED_STATUSES
from ..text import one_line

COLUMNS = ("trial", "status", "composite", "joules_per_task", "producer_tokens_per_task", "file", "operator",
           "description")


@dataclass(frozen=True)
class TrialPoint:
    """One trial as the charts see it."""

    number: int
    status: str
    composite: float | None  # a pruned trial's is over the tasks it ran only (partial)
    partial: bool
    borrowed: bool  # an identical variant's scores, not an evaluation of its own
    joules_per_task: float | None
    delta: float | None
    operator: str
    file: str
    description: str
    commit: str


def trial_point(store: Store, rows: list, row) -> TrialPoint:
    evaluation_id, scored_by = scored_evaluation(store, rows, row)
    value, partial = row["composite"], False
    if value is None and evaluation_id is not None:  # pruned: the composite of the tasks it ran
        evaluation = store.evaluation(evaluation_id)
        value, partial = (evaluation["composite"] if evaluation is not None else None), True
    return TrialPoint(number=row["number"], status=row["status"], composite=value, partial=partial,
                      borrowed=scored_by is not None and scored_by != row["number"],
                      joules_per_task=joules_per_task(store, evaluation_id), delta=row["delta"],
                      operator=row["operator"] or ("baseline" if row["status"] == "baseline" else ""),
                      file=row["file"] or "", description=" ".join((row["idea"] or row["note"] or "").split()),
                      commit=row["commit_sha"] or "")


def pareto_front(points: list[TrialPoint]) -> list[int]:
    """Trials no other fully evaluated trial beats on both composite (higher) and joules per task (lower)."""
    full = [p for p in points if p.composite is not None and not p.partial and not p.borrowed
            and p.joules_per_task is not None and p.status in SCORED_STATUSES]
    front = [p for p in full if not any(
        q.composite >= p.composite and q.joules_per_task <= p.joules_per_task
        and (q.composite > p.composite or q.joules_per_task < p.joules_per_task) for q in full)]
    front.sort(key=lambda p: (p.joules_per_task, p.number))
    return [p.number for p in front]


@dataclass(frozen=True)
class FrontPoint:
    trial: int
    status: str
    composite: float
    joules_per_task: float
    producer_tokens_per_task: float  # instructions change energy mostly through output length: this shows it
    file: str
    operator: str
    description: str


def front(store: Store, study: str) -> list[FrontPoint]:
    """Trials no other trial beats on both composite (higher) and joules per task (lower), cheapest first."""
    rows = store.trials(study)
    points = {p.number: p for p in (trial_point(store, rows, r) for r in rows)}
    by_number = {r["number"]: r for r in rows}
    out = []
    for number in pareto_front(list(points.values())):
        p = points[number]
        evaluation_id, _ = scored_evaluation(store, rows, by_number[number])
        tokens, tasks = producer_tokens(store, evaluation_id)
        out.append(FrontPoint(number, p.status, p.composite, p.joules_per_task, tokens / tasks if tasks else 0.0,
                              p.file, p.operator, p.description))
    return out


def write_tsv(points: list[FrontPoint], path: Path) -> None:
    """Rewritten at the end of every run: the front of the whole study so far."""
    lines = ["\t".join(COLUMNS)]
    for p in points:
        lines.append("\t".join([str(p.trial), p.status, f"{p.composite:.3f}", f"{p.joules_per_task:.1f}",
                                f"{p.producer_tokens_per_task:.0f}", p.file, p.operator,
                                one_line(p.description, 120)]))
    tmp = path.with_suffix(".tsv.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
