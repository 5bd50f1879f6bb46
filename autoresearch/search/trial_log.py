"""How each trial ended, recorded in the order a restart relies on."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable

from ..pipeline.runner import SuiteResult
from ..store import Store
from . import records
from .incumbents import LocalIncumbents
from .keep_rule import Verdict
from .recovery import Recovery, deferred_signals
from .results import ResultsFile, TrialOutcome


class TrialLog:
    """Records a finished trial: the store, then its results.tsv row, then Optuna, then the study's shared
    memory (the order Recovery.reconcile relies on); a Ctrl-C in between is held until all are done."""

    def __init__(self, store: Store, study: str, results: ResultsFile, recovery: Recovery,
                 incumbents: LocalIncumbents, emit: Callable[[str, dict[str, Any]], None]):
        self.store, self.study = store, study
        self.results, self.recovery, self.incumbents = results, recovery, incumbents
        self.emit = emit

    def finish(self, outcome: TrialOutcome, suite: SuiteResult | None = None,
               holdout_id: int | None = None, evidence: Verdict | None = None) -> TrialOutcome:
        """Record how a trial ended, with the keep rule's evidence where it decided; the outcome as recorded."""
        extra = {}
        if evidence is not None:
            outcome = replace(outcome, evidence=evidence)
            extra["evidence_json"] = json.dumps(evidence.to_json(), sort_keys=True)
        with deferred_signals():
            self.store.finish_trial(self.study, outcome.number, outcome.status,
                                    **records.outcome_fields(outcome, suite, holdout_id), **extra)
            row = self.store.trial(self.study, outcome.number)
            self.results.write(row)
            self.recovery.tell(row)
            self.incumbents.record(row)  # the study's shared memory, where it has one
        self.emit("trial_finished", {"outcome": outcome})
        return outcome
