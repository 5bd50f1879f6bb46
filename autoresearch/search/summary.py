"""What a run ends with: its trials, the study's counts and best figures, its energy, and why it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..lm.calls import CallRecord, energy_source_of, made, role_rows, spent_and_reused
from ..store import Store
from ..store.queries import StudyNoise, measured_noise
from ..store.statuses import TrialStatus
from . import pareto
from .forecast import TrialCost
from .pareto import FrontPoint
from .portfolios import PortfolioRow
from .results import Incumbent, StopReason, TrialOutcome, row_objective


@dataclass
class StudySummary:
    study: str
    branch: str
    stop_reason: StopReason
    outcomes: list[TrialOutcome]  # this session's trials, in order
    counts: dict[str, int]  # the whole study's trials by outcome
    baseline_composite: float | None  # None while the study has no successful baseline
    best_composite: float | None
    baseline_holdout: float | None
    best_holdout: float | None
    joules: float  # this session's model calls
    energy_source: str
    calls: int  # made: without the replies reused (below)
    commits: list[tuple[str, str]] = field(default_factory=list)
    stop_message: str = ""  # one line: why the run stopped, when it was not a stop condition
    roles: list[dict[str, Any]] = field(default_factory=list)  # lm.calls.role_rows of this session's calls
    notes: list[str] = field(default_factory=list)  # what start-up repaired after a crash (stale lock, …)
    pareto: list[FrontPoint] = field(default_factory=list)  # composite vs joules per task, whole study
    energy_weight: float = 0.0  # [scoring] energy_weight: > 0 makes the objective differ from the composite
    baseline_objective: float | None = None
    best_objective: float | None = None
    # This study's best and that of the previous portfolio's study (same workspace and evaluation), if any.
    comparison: list[PortfolioRow] = field(default_factory=list)
    worker: str | None = None  # set in a shared study: counts, Pareto front and commits are this worker's
    noise: StudyNoise | None = None  # the baseline's search composite over several seeds, when measured
    # The run's forecast (search/forecast.py) beside what its trials then cost, so a user can judge the next one.
    forecast: ForecastCheck | None = None
    reused: int = 0  # replies reused for identical requests instead of calls (lm/replies.py)
    # Near-misses (trial numbers) whose crossover with the incumbent waits in the study for the next run.
    queued_follow_ups: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ForecastCheck:
    """A trial's forecast cost, and the mean of what this run's trials after the forecast cost."""

    per_trial: TrialCost  # as forecast
    trials: int  # trials this run made after the forecast
    calls: int  # their model calls, and below their joules and model seconds
    joules: float
    seconds: float

    @classmethod
    def of(cls, per_trial: TrialCost, trials: int, calls: Sequence[CallRecord]) -> "ForecastCheck":
        spent = made(calls)
        return cls(per_trial, trials, len(spent), sum(c.joules for c in spent), sum(c.latency_s for c in spent))


def summarize(store: Store, study: str, branch: str, *, stop_reason: StopReason, message: str,
              outcomes: list[TrialOutcome], commits: list[tuple[str, str]], incumbent: Incumbent | None,
              session_calls: Sequence[CallRecord], notes: list[str], energy_weight: float,
              comparison: list[PortfolioRow], worker: str | None, pareto_tsv: Path) -> StudySummary:
    """The summary of a run; also rewrites runs/pareto.tsv with the whole study's front. A shared study's
    worker without a baseline trial of its own shows the study's (another worker's, recorded in its store)."""
    rows = store.trials(study)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    baseline = next((r for r in rows if r["status"] == TrialStatus.BASELINE), None)
    start_composite = start_holdout = start_objective = None
    if baseline is not None:
        start_composite, start_holdout = baseline["composite"], baseline["holdout_composite"]
        start_objective = row_objective(baseline)
    elif (recorded := store.study_baseline(study)) is not None:
        start_composite, start_holdout = recorded["composite"], recorded["holdout_composite"]
        start_objective = recorded["objective"]
    spent, reused = spent_and_reused(session_calls)
    points = pareto.front(store, study)
    pareto.write_tsv(points, pareto_tsv)
    return StudySummary(
        study=study, branch=branch, stop_reason=stop_reason, outcomes=outcomes, counts=counts,
        baseline_composite=start_composite,
        best_composite=incumbent.composite if incumbent else None,
        baseline_holdout=start_holdout,
        best_holdout=incumbent.holdout_composite if incumbent else None,
        joules=sum(c.joules for c in spent), energy_source=energy_source_of(spent),
        calls=len(spent), reused=reused, commits=commits, stop_message=message,
        roles=role_rows(spent), notes=list(notes), pareto=points,
        energy_weight=energy_weight, baseline_objective=start_objective,
        best_objective=incumbent.objective if incumbent else None, comparison=comparison, worker=worker,
        noise=measured_noise(store, study))
