"""A trial's variant: the parent's file as the trial's operator changes it, never one the loop must refuse."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Sequence

import optuna

from ..evaluation import guard
from ..lm.calls import CallRecorder, recording
from ..lm.engine import backend_error_in
from ..store import Store
from ..store.statuses import NO_VARIANT
from . import records
from .evaluating import Evaluator
from .incumbents import LocalIncumbents
from .operators import MutationOperator
from .proposer import Proposal, feedback_from, propose_usable
from .results import Incumbent, TrialOutcome
from .trial_log import TrialLog


class TrialProposer:
    """Asks the proposer (model or mechanical edit) for a trial's variant, with the study's memory: the ideas
    already tried and the variants already evaluated, in a shared study every worker's."""

    def __init__(self, *, store: Store, incumbents: LocalIncumbents, evaluator: Evaluator, log: TrialLog,
                 operators: Sequence[MutationOperator], prompts: dict[str, str], dimensions: tuple[str, ...],
                 rng: random.Random):
        self.store, self.incumbents, self.evaluator, self.log = store, incumbents, evaluator, log
        self.operators, self.prompts, self.rng = operators, prompts, rng
        self.dimensions = dimensions  # the rubric's: the guard refuses variants that grade against them

    def variant(self, trial: optuna.Trial, failed: TrialOutcome, parent: Incumbent, other: str,
                op: MutationOperator, recorder: CallRecorder, incumbent: Incumbent,
                knobs: dict[str, Any]) -> Proposal | TrialOutcome:
        """The variant of the parent's file that the trial's operator proposes (`other`: the second version of
        the file a crossover draws on, "" for none); if none, the trial's failed outcome, recorded.

        A junk proposal (an echo of the proposer's prompt or of the ideas already tried, a text that lost its
        content: proposer.junk_reason) or a variant that tells the producer to write for the judge
        (guard.instruction_directed) is never evaluated: the proposer is asked again with another operator
        (proposer.propose_usable). A mechanical edit that gives a variant already evaluated with these knobs
        (the same edit of the same parent) leaves the operator to the proposer model."""
        file = failed.file

        def seen(text: str) -> bool:
            variant = records.variant_hash({**incumbent.instructions, file: text}, knobs)
            return self.incumbents.evaluated(variant, incumbent) is not None

        tried = self.incumbents.tried_ideas(file)  # in a shared study, every worker's
        feedback = parent.feedback or feedback_from(
            self.store.task_results(parent.evaluation_id) if parent.evaluation_id else (), self.prompts)
        try:
            with recording(recorder):
                proposal, rejected = propose_usable(
                    self.evaluator.proposer(), parent.instructions[file], op, self.operators, feedback, tried,
                    other=other, temperature=trial.params["proposer_temperature"], rng=self.rng,
                    refuse=lambda text: guard.instruction_directed(text, self.dimensions), file=file, seen=seen)
        except Exception as exc:  # a proposer whose model call failed gives no variant; the loop goes on
            error = backend_error_in(exc)
            if error is None:
                raise
            return self.log.finish(replace(failed, joules=self.evaluator.joules(recorder),
                                           description=f"the proposer's model call failed: {error.failure_mode}"))
        if proposal is None:  # the recipe's doing (recovery.optuna_outcome): the sampler learns from it
            return self.log.finish(replace(failed, joules=self.evaluator.joules(recorder), failure=NO_VARIANT,
                                           description="the proposer gave no usable variant: " + "; ".join(rejected)))
        return proposal
