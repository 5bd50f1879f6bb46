"""One trial of the loop: a variant proposed from a parent, screened on the search tasks (the pruner may stop it),
raced against the incumbent under the keep rule, and kept or discarded; an identical variant is not evaluated
twice. The Study (search/study.py) owns the loop and composes this from its parts."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable

import optuna

from ..evaluation.paired import sd_by_task
from ..store import Store
from ..store.queries import screen_task_rows
from ..store.statuses import TrialStatus
from ..workspace.config import Settings
from ..workspace.suite import Task
from . import near_miss, operators, records
from .evaluating import Evaluator
from .incumbents import LocalIncumbents
from .keeping import Keeper
from .proposing import TrialProposer
from .race import Race
from .results import KNOBS, Incumbent, TrialOutcome, row_objective
from .screens import pareto_front, quiet_first, screen_scores
from .trial_log import TrialLog


def twin_delta(twin: Any, incumbent: Incumbent) -> float | None:
    """An identical variant's delta: the one its twin's race measured against this same incumbent (its confirmed
    paired mean, not the screen's composite minus the incumbent's); None when the twin raced another incumbent
    or none (a new comparison would need an evaluation, which the twin check exists to save)."""
    keys = twin.keys()
    before = twin["incumbent_before"] if "incumbent_before" in keys else None
    if twin["delta"] is None or before is None or abs(before - incumbent.objective) > 1e-9:
        return None
    return twin["delta"]


class TrialRunner:
    """Runs one trial against the current incumbent, with the Study's parts."""

    def __init__(self, *, settings: Settings, store: Store, study: str, worker: str, search_tasks: list[Task],
                 incumbents: LocalIncumbents, evaluator: Evaluator, proposing: TrialProposer, race: Race,
                 keeper: Keeper, log: TrialLog, pruner: optuna.pruners.BasePruner,
                 emit: Callable[[str, dict[str, Any]], None]):
        self.settings, self.store, self.study, self.worker = settings, store, study, worker
        self.search_tasks, self.incumbents, self.evaluator = search_tasks, incumbents, evaluator
        self.proposing, self.race, self.keeper, self.log = proposing, race, keeper, log
        self.pruner, self.emit = pruner, emit

    def screens(self, incumbent: Incumbent) -> dict[int, dict[str, float]]:
        """Per trial, its composite on each search task (screens.screen_scores): this store's whole screens,
        and the incumbent's where it is another worker's trial and this worker evaluated it (its screen
        reference), so the front weighs this worker's variants against the incumbent too."""
        ids = [t.id for t in self.search_tasks]
        screens = screen_scores(screen_task_rows(self.store, self.study), ids, self.settings.scoring)
        if incumbent.trial not in screens:
            rows = self.store.variant_task_results(
                self.study, incumbent.variant_hash, "search", 0)
            screens.update(screen_scores([{**dict(r), "number": incumbent.trial} for r in rows], ids,
                                         self.settings.scoring))
        return screens

    def run(self, trial: optuna.Trial, incumbent: Incumbent) -> tuple[TrialOutcome, Incumbent]:
        """Propose a variant, evaluate it on the search tasks, and keep it if it beats the incumbent."""
        params = trial.params
        file, op = params["file"], operators.BY_NAME[params["operator"]]
        knobs = {**incumbent.knobs, **{k: params[k] for k in KNOBS if k in params}}
        front = pareto_front(self.screens(incumbent))
        parents = self.incumbents.parents(incumbent, self.settings.search.parents, front)
        parent = parents[min(params["parent"], len(parents) - 1)]
        self.store.begin_trial(self.study, trial.number, file=file, operator=op.name, parent_trial=parent.trial,
                               params_json=json.dumps(params, sort_keys=True), incumbent_trial=incumbent.trial,
                               incumbent_hash=incumbent.variant_hash,
                               incumbent_text=incumbent.instructions.get(file))
        self.emit("trial_started", {"trial": trial.number, "file": file, "operator": op.name})
        recorder = self.evaluator.recorder(trial.number)
        base = TrialOutcome(trial.number, TrialStatus.FAILED, file=file, operator=op.name)
        # A crossover's second version: the near-miss this trial was queued to follow, else the next parent.
        follows = near_miss.followed(trial)
        second = next((p for p in parents if p is not parent), None)
        other = follows.text if follows else second.instructions[file] if second else ""
        proposal = self.proposing.variant(trial, base, parent, other, op, recorder, incumbent, knobs)
        if isinstance(proposal, TrialOutcome):  # no usable variant
            return proposal, incumbent
        # A variant made by another operator after refused proposals is that operator's, in the row, the log,
        # the commit and the report's acceptance rates; Optuna keeps the sampled one (its fallbacks included).
        made_by = proposal.operator or op.name
        idea = ("[rule] " if proposal.source == "rule" else "") + proposal.idea
        if follows and made_by == "crossover":
            idea = near_miss.described(idea, follows)
        instructions = {**incumbent.instructions, file: proposal.text}
        fields = records.variant_fields(instructions, knobs)
        self.store.update_trial(self.study, trial.number, idea=idea, variant_text=proposal.text, operator=made_by,
                                **fields)
        base = replace(base, description=idea, operator=made_by)
        # Identical variants are not evaluated twice, unless the earlier score lost tasks to a backend fault;
        # nor is one pruned against this incumbent: under the same seeds the pruner would stop it again.
        twin = self.incumbents.evaluated(fields["variant_hash"], incumbent)  # a scored twin: any worker's
        if twin is not None and twin["status"] == TrialStatus.PRUNED:
            return self.log.finish(replace(
                base, status=TrialStatus.PRUNED, incumbent_objective=incumbent.objective,
                joules=self.evaluator.joules(recorder),
                description=f"identical to trial {twin['number']}, pruned against this incumbent; "
                            "not re-evaluated")), incumbent
        if twin is not None:
            whose = f" (worker {twin['worker']})" if "worker" in twin.keys() and twin["worker"] != self.worker else ""
            return self.log.finish(replace(
                base, status=TrialStatus.DISCARD, composite=twin["composite"], objective=row_objective(twin),
                delta=twin_delta(twin, incumbent), incumbent_objective=incumbent.objective,
                joules=self.evaluator.joules(recorder),
                description=f"identical to trial {twin['number']}{whose}, not re-evaluated")), incumbent
        # The incumbent's noise (measured here first where this store lacks it), read once: for the order and
        # the pruner. The screen runs the tasks with the least seed noise first; the pruner still sees each
        # task at its suite index (its step), whatever order the tasks run in.
        noise = self.evaluator.incumbent_noise(trial.number, incumbent, self.search_tasks, recorder)
        order = quiet_first(sd_by_task(noise), [t.id for t in self.search_tasks])
        screen_tasks = sorted(self.search_tasks, key=lambda t: order.index(t.id))
        against = getattr(self.pruner, "against", None)  # a pruner that compares with the incumbent
        if against is not None:
            against(self.evaluator.screen_reference(trial.number, incumbent, self.search_tasks, recorder, noise))
        suite = self.evaluator.evaluate(trial, instructions, knobs, screen_tasks, "trial", recorder,
                                        variant_hash=fields["variant_hash"])
        value = self.evaluator.suite_objective(suite)
        outcome = replace(base, composite=suite.composite, objective=value, delta=value - incumbent.objective,
                          joules=self.evaluator.joules(recorder), energy_source=suite.energy_source)
        if suite.status == "pruned":
            return self.log.finish(replace(outcome, status=TrialStatus.PRUNED, composite=None, objective=None,
                                           delta=None, incumbent_objective=incumbent.objective), suite), incumbent
        if suite.score.failed_share > self.settings.search.max_failed_share:
            failed = f"{suite.score.failed_tasks} of {len(suite.tasks)} tasks failed; {idea}"
            return self.log.finish(replace(outcome, status=TrialStatus.FAILED, description=failed), suite), incumbent
        verdict = self.race.run(trial.number, incumbent, instructions, knobs, fields["variant_hash"], suite, recorder)
        # The delta is the mean paired difference the rule decided on (objective units: see results.objective).
        outcome = replace(outcome, delta=verdict.comparison.mean, joules=self.evaluator.joules(recorder),
                          incumbent_objective=incumbent.objective)
        if not verdict.keep:
            queued = self.settings.search.follow_near_miss and near_miss.follow(
                trial, verdict.stage, file, proposal.text, [o.name for o in self.proposing.operators])
            next_up = near_miss.NEXT_UP if queued else ""
            return self.log.finish(replace(outcome, status=TrialStatus.DISCARD, crossover_next=queued,
                                           description=f"{verdict.reason}; {idea}{next_up}"), suite,
                                   evidence=verdict, holdout_id=verdict.extra.get("holdout_evaluation_id")), incumbent
        return self.keeper.keep(trial, incumbent, outcome, suite, instructions, knobs, verdict, recorder)
