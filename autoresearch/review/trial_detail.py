"""One trial against the incumbent it was judged against, read back from the store and git: the data
behind `show` (and the report's per-trial pages): the diff, the scores task by task, energy and outputs."""

from __future__ import annotations

import difflib
import json
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..evaluation import degenerate, guard
from ..evaluation.scoring import composite
from ..store import Store
from ..store.queries import (
    BASELINE_COMPOSITE,
    evaluation_scores,
    incumbent_before,
    joules_per_task,
    measured_noise,
    scored_evaluation,
    task_count,
    variant_screen,
)
from ..store.statuses import TrialStatus
from ..workspace.config import ScoringConfig
from ..workspace.workspace import INSTRUCTIONS_DIR
from .study_log import restart_reason

# --- finding the store, the study and the trial --------------------------------------------------


@dataclass(frozen=True)
class TaskSide:
    """One task's result in one evaluation."""

    composite: float
    score_r1: float
    criteria_passed: int
    criteria_total: int
    criteria: list[dict[str, Any]]
    dimensions: dict[str, float]
    joules: float
    seconds: float
    energy_source: str
    output: str  # the first-pass output: the one the judge's r1 score (and so the composite) is about
    output_final: str
    failed: bool
    failure_mode: str | None
    zeroed: str | None = None  # why a guard zeroed the judge's score (a degenerate answer, text for the judge)


@dataclass(frozen=True)
class TaskComparison:
    task_id: str
    split: str
    before: TaskSide | None
    after: TaskSide | None

    @property
    def composite_delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after.composite - self.before.composite


@dataclass(frozen=True)
class TrialDetail:
    """A trial against the incumbent it was compared with: diff, scores, energy and outputs, task by task."""

    study: str
    number: int
    status: str
    file: str
    operator: str
    description: str
    note: str
    commit: str
    commit_subject: str
    parent_trial: int | None  # the version the proposer rewrote (may differ from the incumbent)
    # Whether that parent's text of `file` was the incumbent's (a Pareto parent that changed another file):
    # None where the parent is the incumbent or either text is not on record.
    parent_held_incumbents_file: bool | None
    before_trial: int | None
    before_status: str
    composite: float | None
    composite_before: float | None
    composite_before_same_tasks: float | None  # the incumbent on only the tasks this trial ran (pruned trials)
    delta: float | None
    holdout_composite: float | None
    holdout_before: float | None
    joules_per_task: float | None
    joules_per_task_before: float | None
    scored_by_trial: int | None  # the trial whose evaluation holds these scores (a twin's, if not re-run)
    tasks_run: int
    tasks_total: int
    diff: list[str]
    tasks: list[TaskComparison] = field(default_factory=list)
    noise_sd: float | None = None  # the study's measured noise: sd of its baseline's composite over seeds
    noise_repeats: int = 0  # how many seeds that sd is over (0: not measured)
    noise_of: str = BASELINE_COMPOSITE  # what the sd is of (a shared worker that joined after a keep: not)
    # How the keep rule decided (search/keep_rule.py, Verdict.to_json): None for the baseline, a failed or
    # pruned trial, and trials made before the paired rule.
    evidence: dict[str, Any] | None = None
    restart: str = ""  # a baseline after the first: why it was evaluated (restart_reason)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trial_detail(store: Store, root: Path, study: str, number: int) -> TrialDetail:
    """Everything `show` prints about one trial, compared with its incumbent."""
    scoring = study_scoring(store, study)
    trials = store.trials(study)
    row = next((r for r in trials if r["number"] == number), None)
    if row is None:
        raise UsageError(f"trial {number}: not in study {study}")
    before = compared_incumbent(store, study, trials, row)
    evaluation_id, scored_by = scored_evaluation(store, trials, row)
    noise = measured_noise(store, study)
    before_eval = before["evaluation_id"] if before is not None else None
    # A trial with no evaluation of its own (or a twin's) ran no task: nothing to set beside the incumbent's.
    tasks = compare_tasks(store, before_eval, evaluation_id, scoring) if evaluation_id is not None else []
    if row["holdout_evaluation_id"] is not None and before is not None:
        tasks += compare_tasks(store, before["holdout_evaluation_id"], row["holdout_evaluation_id"], scoring)
    file = row["file"] or ""
    return TrialDetail(
        study=study, number=number, status=row["status"], file=file, operator=row["operator"] or "",
        description=" ".join((row["idea"] or "").split()), note=row["note"] or "",
        commit=row["commit_sha"] or "", commit_subject=_commit_subject(root, row["commit_sha"]),
        parent_trial=row["parent_trial"], before_trial=before["number"] if before is not None else None,
        parent_held_incumbents_file=parent_held_incumbents_file(trials, row, before, file),
        before_status=before["status"] if before is not None else "",
        composite=_trial_composite(store, row, evaluation_id),
        composite_before=before["composite"] if before is not None else None,
        composite_before_same_tasks=_same_tasks_composite(tasks, scoring),
        delta=row["delta"], holdout_composite=row["holdout_composite"],
        holdout_before=before["holdout_composite"] if before is not None else None,
        joules_per_task=joules_per_task(store, evaluation_id),
        joules_per_task_before=joules_per_task(store, before_eval),
        scored_by_trial=scored_by, tasks_run=task_count(store, evaluation_id),
        tasks_total=task_count(store, before_eval), diff=instruction_diff(before, row, file),
        tasks=tasks, noise_sd=noise.sd if noise else None, noise_repeats=noise.n if noise else 0,
        noise_of=noise.composite_of if noise else BASELINE_COMPOSITE,
        evidence=json.loads(row["evidence_json"]) if row["evidence_json"] else None,
        restart=restart_reason(store, trials, row) if row["status"] == TrialStatus.BASELINE and before is not None
        else "",
    )


def compared_incumbent(store: Store, study: str, trials: list[sqlite3.Row],
                       row: sqlite3.Row) -> sqlite3.Row | dict[str, Any] | None:
    """The incumbent a trial was compared with: its row in this store; where it is another worker's trial (a
    shared study), what this store has of it, this worker's evaluation of it under the screen's seeds. Rows
    made before m009 name no incumbent: the latest baseline or keep before the trial."""
    number = row["incumbent_trial"]
    before = incumbent_before(trials, row["number"])
    if number is None or (before is not None and before["number"] == number):
        return before
    own = next((r for r in trials if r["number"] == number), None)
    if own is not None:
        return own
    screen = variant_screen(store, study, row["incumbent_hash"])
    return {"number": number, "status": "another worker's", "evaluation_id": screen["id"] if screen else None,
            "composite": screen["composite"] if screen else None, "holdout_evaluation_id": None,
            "holdout_composite": None, "instructions_json": None}


def parent_held_incumbents_file(trials: list[sqlite3.Row], row: sqlite3.Row,
                                before: sqlite3.Row | dict[str, Any] | None, file: str) -> bool | None:
    """Whether the trial's parent, where it is not the incumbent, held the incumbent's text of `file` (so the
    diff against the incumbent is the proposer's whole change); None where either text is not on record."""
    number = row["parent_trial"]
    if number is None or before is None or number == before["number"] or not file:
        return None
    parent = next((r for r in trials if r["number"] == number), None)
    if parent is None or not parent["instructions_json"]:
        return None
    incumbent = incumbent_text(before, row, file)
    return None if incumbent is None else json.loads(parent["instructions_json"]).get(file, "") == incumbent


def _trial_composite(store: Store, row: sqlite3.Row, evaluation_id: int | None) -> float | None:
    """The trial's composite; for a pruned trial, that of the tasks it ran (the trials table keeps none)."""
    if row["composite"] is not None or evaluation_id is None:
        return row["composite"]
    evaluation = store.evaluation(evaluation_id)
    return evaluation["composite"] if evaluation is not None else None


def _same_tasks_composite(tasks: list[TaskComparison], scoring: ScoringConfig) -> float | None:
    """The incumbent's composite over the search tasks this trial also ran, pooled as score_suite pools them."""
    sides = [t.before for t in tasks if t.split == "search" and t.before is not None and t.after is not None]
    if not sides:
        return None
    judge = sum(0.0 if s.failed else s.score_r1 for s in sides) / len(sides)
    checks = sum(s.criteria_total for s in sides)
    passed = sum(0 if s.failed else s.criteria_passed for s in sides)
    return composite(judge, passed / checks if checks else 0.0, scoring)


def study_scoring(store: Store, study: str) -> ScoringConfig:
    """The study's composite weights, solved from its own evaluations (composite = w·judge + (1−w)·rate·10)."""
    for value, judge, rate in evaluation_scores(store, study):
        if judge is not None and rate is not None and abs(judge - 10 * rate) > 1e-6:
            weight = min(1.0, max(0.0, (value - 10 * rate) / (judge - 10 * rate)))
            weight = round(weight, 4)  # float noise off: the configured weights are short decimals
            return ScoringConfig(judge_weight=weight, criteria_weight=1 - weight)
    return ScoringConfig()  # every evaluation had judge = 10 × rate: the weights do not matter for it


def instruction_diff(before: sqlite3.Row | dict[str, Any] | None, row: sqlite3.Row, file: str) -> list[str]:
    """Unified diff of one instruction file, incumbent → variant; difflib, so uncommitted trials have one too.
    The incumbent's text is the trial's own record of it (m009), else its row's. A new baseline (the user's
    commit, which has no one file): every instruction file it holds differently from the incumbent it replaced."""
    if row["status"] == TrialStatus.BASELINE and before is not None and before["instructions_json"] \
            and row["instructions_json"]:
        old, new = json.loads(before["instructions_json"]), json.loads(row["instructions_json"])
        return [line for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)
                for line in _file_diff(name, str(old.get(name, "")), str(new.get(name, "")), before, row)]
    if not file or row["variant_text"] is None or before is None:
        return []
    old = incumbent_text(before, row, file)
    return [] if old is None else _file_diff(file, old, row["variant_text"], before, row)


def incumbent_text(before: sqlite3.Row | dict[str, Any], row: sqlite3.Row, file: str) -> str | None:
    """The incumbent's text of `file` as the trial was compared with it: the trial's own record of it (m009), else
    the incumbent row's; None where neither holds it."""
    if row["incumbent_text"] is not None:
        return row["incumbent_text"]
    if before["instructions_json"]:
        return json.loads(before["instructions_json"]).get(file, "")
    return None


def _file_diff(file: str, old: str, new: str, before, row) -> list[str]:
    """One instruction file's unified diff, its sides named by trial."""
    path = f"{INSTRUCTIONS_DIR}/{file}"
    return [line.rstrip("\n") for line in difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=f"a/{path} (trial {before['number']})", tofile=f"b/{path} (trial {row['number']})")]


def _commit_subject(root: Path, sha: str | None) -> str:
    if not sha:
        return ""
    import git

    try:
        return git.Repo(root, search_parent_directories=True).commit(sha).summary
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.BadName, ValueError):
        return ""  # the commit is gone (branch deleted or rewritten); the store still has the trial


def task_side(row: sqlite3.Row, scoring: ScoringConfig) -> TaskSide:
    """One task_results row, with its composite computed the way the suite's is."""
    failed = bool(row["failed"])
    rate = row["criteria_passed"] / row["criteria_total"] if row["criteria_total"] else 0.0
    value = 0.0 if failed else composite(row["score_r1"], rate, scoring)
    return TaskSide(
        composite=value, score_r1=row["score_r1"], criteria_passed=row["criteria_passed"],
        criteria_total=row["criteria_total"], criteria=json.loads(row["criteria_json"]),
        dimensions=json.loads(row["dimensions_json"]), joules=row["joules"], seconds=row["seconds"],
        energy_source=row["energy_source"], output=row["output_r1"] or row["output"] or "",
        output_final=row["output"] or "", failed=failed, failure_mode=row["failure_mode"], zeroed=_zeroed(row))


def _zeroed(row: sqlite3.Row) -> str | None:
    """The guard's reason from a zeroed task's critique ("degenerate answer: a repetition loop: …"), or None.
    A guard that zeroed a task flags it and opens its critique with the reason."""
    flags = set((row["flags"] or "").split(","))
    for module in (guard, degenerate):  # one guard zeroes a task: the judge guard first, else the degenerate one
        if module.FLAG in flags:
            # Cut at the guard's own closing words: the reason may quote the answer, "; " and all.
            return (row["critique"] or "").partition(module.REASON_END)[0] or None
    return None


def compare_tasks(store: Store, before_id: int | None, after_id: int | None,
                  scoring: ScoringConfig) -> list[TaskComparison]:
    """Task-by-task rows of two evaluations, matched by task id, in the order the tasks ran."""
    before = {r["task_id"]: r for r in store.task_results(before_id)} if before_id is not None else {}
    after = {r["task_id"]: r for r in store.task_results(after_id)} if after_id is not None else {}
    order = list(before) + [t for t in after if t not in before]
    return [TaskComparison(
        task_id=t, split=(after.get(t) or before[t])["split"],
        before=task_side(before[t], scoring) if t in before else None,
        after=task_side(after[t], scoring) if t in after else None) for t in order]


def evidence_line(evidence: dict) -> str:
    """What the keep rule decided and on what: "evidence: kept: +0.42 over 4 tasks × 3 seeds, 95% lower bound
    +0.11 · holdout −0.05 over 2 tasks (veto below −0.66)"."""
    text = f"evidence: {evidence['reason']}" if evidence.get("keep") is False else (
        f"evidence: kept: {evidence['reason']}")
    holdout, margin = evidence.get("holdout"), evidence.get("holdout_margin")
    if holdout and evidence.get("stage") != "holdout":
        text += f" · holdout {holdout['mean']:+.2f} over {holdout['n']} task{'' if holdout['n'] == 1 else 's'}"
        if margin is not None:  # and what the margin came from (evidence before it was recorded says nothing)
            basis = evidence.get("holdout_margin_basis")
            text += f" (veto below {-margin:+.2f}" + (f": {basis})" if basis else ")")
    return text
