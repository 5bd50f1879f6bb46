"""The Pareto front of composite against joules per task over a study's trials, stored as runs/pareto.tsv."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..report.data import pareto_front, trial_point
from ..review import scored_evaluation
from ..store import Store

COLUMNS = ("trial", "status", "composite", "joules_per_task", "producer_tokens_per_task", "file", "operator",
           "description")


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
        tokens, tasks = store.conn.execute(
            "SELECT COALESCE(SUM(completion_tokens), 0), COUNT(DISTINCT task_id) FROM calls"
            " WHERE evaluation_id=? AND role='producer' AND status='ok'", (evaluation_id,)).fetchone()
        out.append(FrontPoint(number, p.status, p.composite, p.joules_per_task, tokens / tasks if tasks else 0.0,
                              p.file, p.operator, p.description))
    return out


def write_tsv(points: list[FrontPoint], path: Path) -> None:
    """Rewritten at the end of every run: the front of the whole study so far."""
    lines = ["\t".join(COLUMNS)]
    for p in points:
        lines.append("\t".join([str(p.trial), p.status, f"{p.composite:.3f}", f"{p.joules_per_task:.1f}",
                                f"{p.producer_tokens_per_task:.0f}", p.file, p.operator,
                                " ".join(p.description.split())[:120]]))
    tmp = path.with_suffix(".tsv.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
