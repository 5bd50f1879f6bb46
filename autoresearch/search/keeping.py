"""Committing a variant that won its race, and re-judging one that another worker's keep beat to the commit."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable

import optuna

from ..errors import HeadMoved
from ..lm.calls import CallRecorder
from ..pipeline.runner import SuiteResult
from ..store import Store
from ..store.queries import measured_noise
from ..store.statuses import TrialStatus
from ..workspace.suite import Task
from ..workspace.workspace import INSTRUCTIONS_DIR
from . import records
from .evaluating import Evaluator
from .incumbents import LocalIncumbents
from .keep_rule import Verdict
from .knobs import knob_files
from .proposer import feedback_from
from .race import Race
from .recovery import deferred_signals
from .results import Incumbent, TrialOutcome
from .shared.ledger import KeepRecord, LostRace
from .trial_log import TrialLog

MAX_RACES = 3  # a keep re-judged after this many lost races in a row is discarded


class Keeper:
    """Commits kept variants. Git is the source of truth for keeps: the variant's figures are stored first,
    then committed, then marked keep (TrialLog), so a kill at any point is completed or rolled back on the
    next start (Recovery.reconcile)."""

    def __init__(self, *, store: Store, study: str, portfolio: str, worker: str, incumbents: LocalIncumbents,
                 evaluator: Evaluator, race: Race, log: TrialLog, search_tasks: list[Task],
                 prompts: dict[str, str], energy_weight: float, moved: Callable[[Incumbent], str | None]):
        self.store, self.study, self.portfolio, self.worker = store, study, portfolio, worker
        self.moved = moved  # why HEAD no longer holds the incumbent on the study branch (Baseline.moved_during_run)
        self.incumbents, self.evaluator, self.race, self.log = incumbents, evaluator, race, log
        self.search_tasks, self.prompts = search_tasks, prompts
        self.energy_weight = energy_weight

    def keep(self, trial: optuna.Trial, incumbent: Incumbent, outcome: TrialOutcome, suite: SuiteResult,
             instructions: dict[str, str], knobs: dict[str, Any], verdict: Verdict, recorder: CallRecorder,
             races: int = 0) -> tuple[TrialOutcome, Incumbent]:
        """Commit a variant that won the race; the trial's outcome and the incumbent after it."""
        file = outcome.file
        moved = self.moved(incumbent)  # a `git checkout` or a commit in the workspace since the trial began
        if moved:
            raise HeadMoved(f"trial {trial.number} passed the keep rule ({verdict.reason}) and was not committed: "
                            f"{moved}")
        holdout, holdout_id = verdict.extra.get("holdout_composite"), verdict.extra.get("holdout_evaluation_id")
        outcome = replace(outcome, status=TrialStatus.KEEP, holdout_composite=holdout, evidence=verdict)
        with deferred_signals():  # the commit and its record are made together or not at all
            # 1. The figures first (status still running), so a kill right after the commit can be completed.
            self.store.update_trial(self.study, trial.number, **records.outcome_fields(outcome, suite, holdout_id),
                                    evidence_json=json.dumps(verdict.to_json(), sort_keys=True))
            # 2. The commit: from here on, git says this trial is kept (see Recovery.reconcile).
            record = KeepRecord(
                incumbent.version + 1, trial.number, self.worker, suite.composite, outcome.objective, holdout,
                instructions, knobs, feedback_from(self.store.task_results(suite.evaluation_id), self.prompts),
                file=file, subject=records.commit_subject(file, outcome, verdict),
                trailers=records.commit_trailers(outcome, suite, knobs, portfolio=self.portfolio, study=self.study,
                                                 energy_weight=self.energy_weight,
                                                 noise=measured_noise(self.store, self.study),
                                                 evidence=verdict),
                evidence=verdict.to_json(), idea=outcome.description)
            try:
                sha = self.incumbents.commit_keep(record, f"{INSTRUCTIONS_DIR}/{file}", knob_files(knobs))
            except LostRace:
                sha = None
            if sha is not None:
                outcome = replace(outcome, commit=sha)
                # 3. keep in the store, then results.tsv, then Optuna.
                self.log.finish(outcome, suite, holdout_id=holdout_id, evidence=verdict)
        if sha is None:  # outside deferred_signals: re-judging evaluates, and Ctrl-C must be able to stop it
            return self._rejudge(trial, incumbent, self.incumbents.current(), outcome, instructions, knobs, verdict,
                                 suite, recorder, races + 1)
        return outcome, self.incumbents.after_keep(Incumbent(
            trial.number, suite.composite, instructions, knobs, suite.evaluation_id, holdout, outcome.objective))

    def _rejudge(self, trial: optuna.Trial, incumbent: Incumbent, winner: Incumbent, outcome: TrialOutcome,
                 instructions: dict[str, str], knobs: dict[str, Any], verdict: Verdict, suite: SuiteResult,
                 recorder: CallRecorder, races: int) -> tuple[TrialOutcome, Incumbent]:
        """A keep that another worker's keep beat to the commit: the variant's file on top of the new incumbent
        (re-based where the winner changed another file) is judged against the winner by the same rule, on
        this machine, and kept if it still wins; MAX_RACES lost in a row end it as a discard."""
        file = outcome.file
        lost = (f"lost the race to trial {winner.trial} of another worker (this beat trial {incumbent.trial} by "
                f"{outcome.delta:+.2f})")
        rebased = {**winner.instructions, file: instructions[file]}
        searched = {k: v for k, v in knobs.items() if k in trial.params}
        rebased_knobs = {**winner.knobs, **searched}
        fields = records.variant_fields(rebased, rebased_knobs)
        if races > MAX_RACES or (rebased == winner.instructions and rebased_knobs == winner.knobs):
            why = "identical to the new incumbent" if races <= MAX_RACES else f"{races} races lost in a row"
            return self.log.finish(replace(outcome, status=TrialStatus.DISCARD, evidence=None,
                                           description=f"{lost}; {why}; {outcome.description}"), suite), winner
        self.store.update_trial(self.study, trial.number, variant_text=rebased[file], **fields)
        if fields["variant_hash"] == records.variant_hash(instructions, knobs):
            screen = suite  # the winner changed this very file: the variant is unchanged, so are its scores
        else:
            screen = self.evaluator.repeat(trial.number, rebased, self.search_tasks, 0, recorder,
                                           knobs=rebased_knobs, variant_hash=fields["variant_hash"], kind="rejudge")
        verdict = self.race.run(trial.number, winner, rebased, rebased_knobs, fields["variant_hash"], screen, recorder)
        value = self.evaluator.suite_objective(screen)
        outcome = replace(outcome, composite=screen.composite, objective=value, delta=verdict.comparison.mean,
                          incumbent_objective=winner.objective, joules=self.evaluator.joules(recorder),
                          description=f"{lost}, re-judged against it: {verdict.reason}; {outcome.description}")
        if not verdict.keep:
            return self.log.finish(replace(outcome, status=TrialStatus.DISCARD), screen, evidence=verdict,
                                   holdout_id=verdict.extra.get("holdout_evaluation_id")), winner
        return self.keep(trial, winner, outcome, screen, rebased, rebased_knobs, verdict, recorder, races)
