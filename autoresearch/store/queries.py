"""Read queries over the store that the loop and the read side share; every SQL statement lives in store/."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from ..evaluation.noise import Spread
from ..lm.calls import NOT_THE_MODELS
from .statuses import INCUMBENT_STATUSES
from .store import Store


def incumbent_before(trials: list[Any], number: int | None = None) -> Any | None:
    """The incumbent a trial was compared against: the latest baseline or keep numbered below it (trials in
    number order); with no number, the study's incumbent now."""
    kept = [r for r in trials if r["status"] in INCUMBENT_STATUSES and (number is None or r["number"] < number)]
    return kept[-1] if kept else None


def trials_since_incumbent(trials: list[Any]) -> int:
    """How many trials (in number order) came after the latest baseline or keep: the plateau's count."""
    n = 0
    for row in reversed(trials):
        if row["status"] in INCUMBENT_STATUSES:
            break
        n += 1
    return n


def tried_ideas(trials: list[Any], file: str, last: int = 12) -> list[str]:
    """The latest ideas tried on one file with how they ended, for the proposer's "already tried" list."""
    rows = [r for r in trials if r["file"] == file and r["idea"]][-last:]
    return [f"{r['idea']} ({r['status']}" + (f", {r['delta']:+.2f})" if r["delta"] is not None else ")")
            for r in rows]


BASELINE = "the baseline"
BASELINE_COMPOSITE = "the baseline's composite"


@dataclass(frozen=True)
class StudyNoise(Spread):
    """The study's noise: a search composite over seed sets, and the instructions it was measured on (the
    baseline's, or, for a shared study's worker that joined after a keep, the incumbent's it joined at)."""

    of: str = BASELINE

    @property
    def composite_of(self) -> str:
        """"the baseline's composite", or the composite of the instructions it was measured on."""
        return BASELINE_COMPOSITE if self.of == BASELINE else f"the composite of {self.of}"


def measured_noise(store: Store, study: str) -> StudyNoise | None:
    """The study's noise: its baseline's search composite under seed sets 0, 1, … in order (noise_composites);
    None when fewer than two were measured."""
    reference = _noise_reference(store, study)
    values, of = _composites(store, study, reference), reference[1] if reference else BASELINE
    if len(values) < 2:  # an older autoresearch kept the noise in studies.noise_json (stores before m007 lack the
        # evaluations' variant_hash and repeat it is read from now)
        legacy = store.legacy_noise(study)
        values, of = (legacy, BASELINE) if legacy is not None else (values, of)
    return StudyNoise(tuple(float(v) for v in values), of) if len(values) > 1 else None


TASKS_OF = "(SELECT COUNT(*) FROM task_results r WHERE r.evaluation_id = e.id)"


def noise_composites(store: Store, study: str) -> list[float]:
    """The baseline's search composite under seed sets 0, 1, … up to the first not evaluated whole: each the
    first finished evaluation of the baseline's instructions on every search task under that set (by the
    baseline itself, or later for a contender that reached it: Evaluator.scores). A kept variant's sets and
    a partial re-run of failed tasks are not the baseline's noise.

    A worker that joined a shared study after its baseline has no baseline trial in its store: its own
    evaluations of the study's baseline instructions (the ledger's, recorded in studies.baseline_json) as the
    incumbent (Evaluator.incumbent_noise) are the noise, set 0 included; one that joined after a keep, its
    evaluations of the incumbent it joined at (joined_screen)."""
    return _composites(store, study, _noise_reference(store, study))


def _composites(store: Store, study: str, reference: tuple[sqlite3.Row, str] | None) -> list[float]:
    base = None if reference is None else reference[0]
    if base is None or base["variant_hash"] is None:
        return []
    first: dict[int, float] = {}
    models, by = store.by_these_models()
    for row in store.conn.execute(
            "SELECT e.repeat, e.composite FROM evaluations e WHERE e.study = ? AND e.variant_hash = ? "
            "AND e.split = 'search' AND e.repeat > 0 AND e.status = 'complete' AND e.composite IS NOT NULL "
            f"AND {TASKS_OF} = ?{models} ORDER BY e.id", (study, base["variant_hash"], base["tasks"], *by)):
        first.setdefault(row["repeat"], row["composite"])
    values = [base["composite"]]
    while len(values) in first:  # sets are measured in order: none counts past a missing one
        values.append(first[len(values)])
    return values


def variant_screen(store: Store, study: str, variant_hash: str | None,
                   kind: str | None = None) -> sqlite3.Row | None:
    """A variant's first finished search evaluation under the configured seeds (repeat 0) in this store (of
    one kind, when given): its screen, or this worker's evaluation of another worker's incumbent. Its id,
    variant_hash, composite and task count."""
    if variant_hash is None:
        return None
    models, by = store.by_these_models()
    return store.conn.execute(
        f"SELECT e.id, e.variant_hash, e.composite, {TASKS_OF} AS tasks FROM evaluations e WHERE e.study = ? "
        "AND e.variant_hash = ? AND e.split = 'search' AND e.repeat = 0 AND e.status = 'complete' "
        "AND e.composite IS NOT NULL" + (" AND e.kind = ?" if kind else "") + f"{models} ORDER BY e.id LIMIT 1",
        (study, variant_hash, *((kind,) if kind else ()), *by)).fetchone()


# An evaluation (e) that is the whole search screen of a baseline trial that succeeded: not one interrupted
# part-way (Ctrl-C, a crash), which ran only some tasks, nor one whose trial failed. The study's first is its
# baseline; a later one is a new baseline (the user's commit at HEAD: search/baseline.py).
BASELINE_SCREEN = ("e.kind = 'baseline' AND e.split = 'search' AND e.status = 'complete' AND EXISTS (SELECT 1 "
                   "FROM trials t WHERE t.study = e.study AND t.number = e.trial AND t.status = 'baseline')")


def _noise_reference(store: Store, study: str) -> tuple[sqlite3.Row, str] | None:
    """The screen the study's noise starts from (set 0), and whose instructions it is of."""
    models, by = store.by_these_models()
    base = store.conn.execute(
        f"SELECT e.variant_hash, e.composite, {TASKS_OF} AS tasks FROM evaluations e "
        f"WHERE e.study = ? AND {BASELINE_SCREEN} AND e.composite IS NOT NULL{models} ORDER BY e.id LIMIT 1",
        (study, *by)).fetchone()
    return (base, BASELINE) if base is not None else joined_screen(store, study)


def joined_screen(store: Store, study: str) -> tuple[sqlite3.Row, str] | None:
    """Where another worker ran the study's baseline (studies.baseline_json): this worker's own first whole
    evaluation of those instructions under the configured seeds (Evaluator.incumbent_noise); where it joined
    after a keep and never evaluated them, its first such evaluation of the incumbent it joined at. With
    whose instructions it is; None before either."""
    recorded = store.study_baseline(study)
    screen = None if recorded is None else variant_screen(store, study, recorded["variant_hash"], "incumbent")
    if screen is not None:
        return screen, BASELINE
    models, by = store.by_these_models()
    first = store.conn.execute(
        f"SELECT e.id, e.variant_hash, e.composite, {TASKS_OF} AS tasks, t.incumbent_trial FROM evaluations e "
        "JOIN trials t ON t.study = e.study AND t.number = e.trial WHERE e.study = ? AND e.kind = 'incumbent' "
        f"AND e.split = 'search' AND e.repeat = 0 AND e.status = 'complete' AND e.composite IS NOT NULL{models} "
        "ORDER BY e.id LIMIT 1", (study, *by)).fetchone()
    if first is None:
        return None
    return first, f"the incumbent this worker joined at (trial {first['incumbent_trial']})"


def study_names(store: Store) -> list[str]:
    return [r["name"] for r in store.conn.execute("SELECT name FROM studies ORDER BY created_at, name")]


def scored_evaluation(store: Store, trials: list[sqlite3.Row], row: sqlite3.Row) -> tuple[int | None, int | None]:
    """(search evaluation, trial it came from): a twin not re-evaluated borrows its twin's; an interrupted trial,
    whose row never got its evaluation's id, is matched through the evaluations table."""
    if row["evaluation_id"] is not None:
        return row["evaluation_id"], row["number"]
    for other in trials:
        if row["variant_hash"] and other["variant_hash"] == row["variant_hash"] and other["evaluation_id"] is not None:
            return other["evaluation_id"], other["number"]
    partial = store.conn.execute(
        "SELECT id FROM evaluations WHERE study=? AND trial=? AND kind IN ('trial', 'baseline') ORDER BY id DESC",
        (row["study"], row["number"])).fetchone()
    return (partial["id"], row["number"]) if partial is not None else (None, None)


def joules_per_task(store: Store, evaluation_id: int | None) -> float | None:
    """Energy of one evaluation divided by the tasks it ran: comparable across trials, pruned ones included."""
    if evaluation_id is None:
        return None
    row = store.conn.execute("SELECT COUNT(*), COALESCE(SUM(joules), 0) FROM task_results WHERE evaluation_id=?",
                             (evaluation_id,)).fetchone()
    return row[1] / row[0] if row[0] else None


def producer_tokens(store: Store, evaluation_id: int | None) -> tuple[int, int]:
    """(output tokens of the producer's successful calls, tasks they covered) in one evaluation."""
    tokens, tasks = store.conn.execute(
        "SELECT COALESCE(SUM(completion_tokens), 0), COUNT(DISTINCT task_id) FROM calls"
        " WHERE evaluation_id=? AND role='producer' AND status='ok'", (evaluation_id,)).fetchone()
    return tokens, tasks


def evaluation_scores(store: Store, study: str) -> list[tuple[float, float | None, float | None]]:
    """(composite, judge mean, criteria rate) of each scored evaluation of a study."""
    return [tuple(r) for r in store.conn.execute(
        "SELECT composite, judge_mean, criteria_rate FROM evaluations WHERE study=? AND composite IS NOT NULL",
        (study,)).fetchall()]


def task_count(store: Store, evaluation_id: int | None) -> int:
    if evaluation_id is None:
        return 0
    return store.conn.execute("SELECT COUNT(*) FROM task_results WHERE evaluation_id=?", (evaluation_id,)).fetchone()[0]


def role_usage_rows(store: Store, study: str) -> list[sqlite3.Row]:
    """Per role and model over a study: calls, completion rate (lm/calls.completion_rate), tokens, joules, latency,
    load time, meters."""
    not_the_models = ", ".join(f"'{mode}'" for mode in NOT_THE_MODELS)
    return store.conn.execute(
        "SELECT role, model, COUNT(*) AS calls, COALESCE(SUM(status='ok') * 1.0 / NULLIF(SUM(status='ok'"
        f" OR COALESCE(failure_mode, '') NOT IN ({not_the_models})), 0), 0) AS completed,"
        " SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,"
        " SUM(joules) AS joules, SUM(latency_s) AS latency_s, SUM(load_s) AS load_s,"
        " GROUP_CONCAT(DISTINCT energy_source) AS sources"
        " FROM calls WHERE study=? AND reused=0 GROUP BY role, model ORDER BY SUM(joules) DESC", (study,)).fetchall()


def finished_trial_costs(store: Store, study: str) -> list[sqlite3.Row]:
    """Per finished variant trial of a study (not the baseline, not one still running or abandoned): its
    model calls, their joules and their seconds, every call counted (proposer, screen, confirmations)."""
    return store.conn.execute(
        "SELECT t.number, COUNT(c.id) AS calls, COALESCE(SUM(c.joules), 0) AS joules, "
        "COALESCE(SUM(c.latency_s), 0) AS seconds, GROUP_CONCAT(DISTINCT c.energy_source) AS sources "
        "FROM trials t JOIN calls c ON c.study = t.study AND c.trial = t.number AND c.reused = 0 "
        "WHERE t.study = ? AND t.status IN ('keep', 'discard', 'pruned') GROUP BY t.number ORDER BY t.number",
        (study,)).fetchall()


# A screen's cost as its requests cost to make: every call, a reused reply at the figures it had when it was made
# (lm/replies.py). A forecast asks what a variant's screen will cost, and a baseline answered from an earlier
# command's replies (store/replies.py) cost this run nothing while a variant's screen will make those calls; the
# replies a variant is expected to reuse are left out by the forecast itself (search/forecast.reused_shares).
SCREEN_COST = ("SELECT e.id, COUNT(c.id) AS calls, COALESCE(SUM(c.joules), 0) AS joules, "
               "COALESCE(SUM(c.latency_s), 0) AS seconds, GROUP_CONCAT(DISTINCT c.energy_source) AS sources "
               "FROM evaluations e JOIN calls c ON c.evaluation_id = e.id "
               "WHERE e.study = ? AND e.split = 'search' ")


def baseline_screen_cost(store: Store, study: str) -> sqlite3.Row | None:
    """The study's baseline screen (BASELINE_SCREEN): its calls, joules and seconds. In a shared study whose
    baseline another worker ran, this worker's own first evaluation of those instructions under the configured
    seeds (Evaluator.incumbent_noise), once it made one."""
    found = store.conn.execute(SCREEN_COST + f"AND {BASELINE_SCREEN} GROUP BY e.id ORDER BY e.id LIMIT 1",
                               (study,)).fetchone()
    joined = joined_screen(store, study) if found is None else None
    if joined is not None:
        found = store.conn.execute(SCREEN_COST + "AND e.id = ? GROUP BY e.id", (study, joined[0]["id"])).fetchone()
    return found


def evaluation_role_costs(store: Store, evaluation_id: int) -> list[sqlite3.Row]:
    """One evaluation's calls, role by role, as SCREEN_COST counts them: their count, joules and seconds."""
    return store.conn.execute(
        "SELECT role, COUNT(*) AS calls, COALESCE(SUM(joules), 0) AS joules, COALESCE(SUM(latency_s), 0) AS seconds "
        "FROM calls WHERE evaluation_id = ? GROUP BY role ORDER BY role", (evaluation_id,)).fetchall()


def screen_task_rows(store: Store, study: str) -> list[sqlite3.Row]:
    """Every task result of the screens of a study's evaluated trials (baseline, keeps and discards; a pruned
    screen is partial), with the trial's number: what a per-task Pareto front of parents is made from."""
    models, by = store.by_these_models()
    return store.conn.execute(
        "SELECT t.number, r.task_id, r.score_r1, r.criteria_passed, r.criteria_total, r.failed "
        "FROM trials t JOIN task_results r ON r.evaluation_id = t.evaluation_id "
        "JOIN evaluations e ON e.id = t.evaluation_id "
        f"WHERE t.study = ? AND t.status IN ('baseline', 'keep', 'discard'){models} ORDER BY t.number, r.id",
        (study, *by)).fetchall()
