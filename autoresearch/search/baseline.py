"""The study's first trial: the committed instructions evaluated, their noise measured, the shape queued."""

from __future__ import annotations

import json
from typing import Any, Callable

import optuna

from ..lm.calls import CallRecorder
from ..pipeline.repeats import same_replies
from ..pipeline.runner import SuiteResult
from ..store import Store
from ..store.statuses import TrialStatus
from ..workspace.config import Settings
from ..workspace.suite import Task
from ..workspace.versioning import InstructionRepo
from ..workspace.workspace import INSTRUCTIONS_DIR, Workspace
from . import records
from .evaluating import Evaluator
from .incumbents import LocalIncumbents
from .knobs import KNOBS_PATH, head_knobs, searches_knobs
from .mechanical import shape_trial
from .proposer import Feedback, feedback_from
from .recovery import Recovery
from .results import Incumbent, TrialOutcome
from .shared.ledger import KeepRecord
from .trial_log import TrialLog


class Baseline:
    """Evaluates the instructions at HEAD of the study branch: the incumbent every variant is raced against."""

    def __init__(self, *, ws: Workspace, settings: Settings, store: Store, study: str, repo: InstructionRepo,
                 evaluator: Evaluator, log: TrialLog, incumbents: LocalIncumbents, recovery: Recovery,
                 worker: str, search_tasks: list[Task], prompts: dict[str, str], operators: list[str],
                 emit: Callable[[str, dict[str, Any]], None], note: Callable[[str], None]):
        self.ws, self.settings, self.store, self.study, self.repo = ws, settings, store, study, repo
        self.evaluator, self.log, self.incumbents, self.recovery = evaluator, log, incumbents, recovery
        self.worker, self.search_tasks, self.prompts, self.operators = worker, search_tasks, prompts, operators
        self.emit, self.note = emit, note

    def run(self, trial: optuna.Trial, optuna_study: optuna.Study) -> Incumbent | None:
        """The baseline trial; None when too many tasks failed. With [search] shape_first, the answer's shape
        is queued in optuna_study as the next trial."""
        # The instructions at HEAD of the study branch (the files the loop may change are read from git).
        instructions = dict(self.ws.instructions)
        for file in self.settings.workspace.optimizable:
            instructions[file] = self.repo.read_head(f"{INSTRUCTIONS_DIR}/{file}")
        # A study started from a branch whose keeps set knobs starts from them.
        knobs = head_knobs(self.repo, self.ws) if searches_knobs(self.settings) else {}
        fields = records.variant_fields(instructions, knobs)
        self.store.begin_trial(self.study, trial.number, operator="baseline", params_json=json.dumps(knobs),
                               **fields)
        self.emit("trial_started", {"trial": trial.number, "file": "", "operator": "baseline"})
        recorder = self.evaluator.recorder(trial.number)
        try:
            suite = self.evaluator.evaluate(trial, instructions, knobs, self.search_tasks, "baseline", recorder,
                                            variant_hash=fields["variant_hash"])
            value = self.evaluator.suite_objective(suite)
            if suite.score.failed_share > self.settings.search.max_failed_share:
                self.log.finish(TrialOutcome(
                    trial.number, TrialStatus.FAILED, operator="baseline", composite=suite.composite, objective=value,
                    description=f"baseline: {suite.score.failed_tasks} of {len(suite.tasks)} tasks failed",
                    joules=self.evaluator.joules(recorder), energy_source=suite.energy_source), suite)
                return None
            holdout_suite, holdout_id = self.evaluator.holdout(trial.number, instructions, knobs, recorder,
                                                               variant_hash=fields["variant_hash"])
            holdout = holdout_suite.composite if holdout_suite else None
            self.measure_noise(trial.number, instructions, knobs, fields["variant_hash"], suite, recorder)
            feedback = feedback_from(self.store.task_results(suite.evaluation_id), self.prompts)
            description = "the committed instructions" + self.incumbents.claim_baseline(KeepRecord(
                0, trial.number, self.worker, suite.composite, value, holdout, instructions, knobs, feedback))
            outcome = TrialOutcome(trial.number, TrialStatus.BASELINE, operator="baseline",
                                   description=description, composite=suite.composite,
                                   joules=self.evaluator.joules(recorder), energy_source=suite.energy_source,
                                   commit=self.repo.head_sha(), holdout_composite=holdout, objective=value)
            self.log.finish(outcome, suite, holdout_id=holdout_id)
        except KeyboardInterrupt:
            self.recovery.abandon(trial.number)
            raise
        except Exception as exc:
            self.recovery.abandon_quietly(trial.number, f"stopped by an error: {type(exc).__name__}")
            raise
        incumbent = self.incumbents.after_keep(
            Incumbent(trial.number, suite.composite, instructions, knobs, suite.evaluation_id, holdout, value))
        if self.settings.search.shape_first:
            self.enqueue_shape(optuna_study, feedback, incumbent.instructions)
        return incumbent

    def edited_since(self, incumbent: Incumbent) -> str | None:
        """Why HEAD of the study branch is not the incumbent's instructions (a commit of the user's: an edit, a
        revert), as a note; None when it is. A run that raced variants of the incumbent would commit one over
        that edit, and claim a gain against instructions HEAD no longer holds; evaluating HEAD as a new baseline
        makes it the incumbent instead. Not in a shared study, whose incumbent is the ledger's."""
        changed = self._changed_at_head(incumbent)
        if not changed:
            return None
        return (f"{', '.join(changed)} at HEAD ({self._head()}) differs from the study's incumbent (trial "
                f"{incumbent.trial}): evaluated as a new baseline, the incumbent from here on")

    def moved_during_run(self, incumbent: Incumbent) -> str | None:
        """Why a keep may not be committed now, or None: HEAD left the study branch (a `git checkout` in the
        workspace during the run: a keep would land on that branch), or a commit the run did not make changed
        the incumbent's files there (a keep would be committed over it, its gain claimed against instructions
        HEAD no longer holds)."""
        branch = self.repo.run_branch
        off = self.repo.off_branch()
        if off:
            return (f"{off} during the run; keeps are committed only on the study's branch {branch}: "
                    f"`git checkout {branch}` and run the same command to resume")
        changed = self._changed_at_head(incumbent)
        if changed:
            return (f"{', '.join(changed)} at HEAD ({self._head()}) changed during the run and differs from the "
                    f"incumbent it measured; run the same command: it evaluates HEAD as a new baseline, so no keep "
                    f"is committed over that commit")
        return None

    def _changed_at_head(self, incumbent: Incumbent) -> list[str]:
        """The optimizable files (and knobs) HEAD holds otherwise than the incumbent; none in a shared study."""
        if self.incumbents.shared:
            return []
        changed = [f"{INSTRUCTIONS_DIR}/{file}" for file in self.settings.workspace.optimizable
                   if self.repo.read_head(f"{INSTRUCTIONS_DIR}/{file}") != incumbent.instructions.get(file)]
        if searches_knobs(self.settings) and head_knobs(self.repo, self.ws) != incumbent.knobs:
            changed.append(KNOBS_PATH)
        return changed

    def _head(self) -> str:
        head = self.repo.repo.head.commit
        return f"{head.hexsha[:10]} \"{head.summary}\""

    def enqueue_shape(self, optuna_study: optuna.Study, feedback: Feedback, instructions: dict[str, str]) -> None:
        """Queue the trial that lays out the answer's shape for the baseline's shared failing checks (search/
        mechanical.py: shape_trial); Optuna hands it to the next ask, in a shared study to whichever worker."""
        recipe = shape_trial(feedback, instructions, self.settings.workspace.optimizable, self.operators)
        if recipe is not None:
            optuna_study.enqueue_trial(recipe, skip_if_exists=True)
            self.note(f"the first trial lays out the answer's shape for the checks failed on several tasks "
                      f"({recipe['operator']} on {recipe['file']})")

    def measure_noise(self, number: int, instructions: dict[str, str], knobs: dict[str, Any], variant_hash: str,
                      suite: SuiteResult, recorder: CallRecorder) -> None:
        """The baseline's search evaluation repeated with the next seeds ([search] noise_repeats_upfront in all,
        at most noise_repeats; repeat 0 is the baseline itself): the study's noise, read back from these
        evaluations (store/queries.noise_composites), and the incumbent's scores that the first contender is
        confirmed against (its later seed sets are evaluated when a contender reaches them: Evaluator.scores).
        When the first repeat reproduces every reply, the backend ignores the seed: the rest would be copies."""
        search = self.settings.search
        repeats = min(search.noise_repeats_upfront, search.noise_repeats)
        for repeat in range(1, repeats):
            result = self.evaluator.repeat(number, instructions, self.search_tasks, repeat, recorder,
                                           knobs=knobs, variant_hash=variant_hash)
            if repeat == 1 and same_replies(suite, result):
                self.note(f"the seeds changed no reply: repeat 1 reproduced all {len(suite.tasks)} search tasks' "
                          f"replies (a backend that ignores the seed, e.g. temperature 0), so the noise is "
                          f"measured over 2 seed sets, not {search.noise_repeats}; a contender is confirmed on one "
                          f"more, and each task counts once in its bound")
                break
