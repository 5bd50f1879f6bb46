"""The Study's side of a shared study: joining it, trial ownership and heartbeats, the Optuna storage."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

import optuna
import sqlalchemy

from .results import Incumbent
from .shared import OWNER_ATTR, KeepRecord, Ledger, safe_url
from .worker import TRIAL_GRACE_S, TRIAL_HEARTBEAT_S, Pulse, SharedWorker, scoring_identity

if TYPE_CHECKING:
    from .study import StudySummary

# Optuna expects trial heartbeats from Study.optimize; the loop uses ask/tell and beats itself (Pulse).
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


class SharingMixin:
    """The Study's methods that differ when other workers share its study (self.shared is set); with no
    --study they reduce to the single-worker behaviour."""

    def _create_optuna_study(self, pruner: optuna.pruners.BasePruner) -> optuna.Study:
        """Create or load the Optuna study. Workers that start together on an empty database race to create
        Optuna's tables (one gets a duplicate-key error from the database): the losers try again."""
        for attempt in range(5):  # the last attempt's error is raised
            try:
                storage: str | optuna.storages.RDBStorage = self.storage
                if self.shared is not None:  # with trial heartbeats: see worker.TRIAL_GRACE_S
                    storage = optuna.storages.RDBStorage(self.storage, heartbeat_interval=TRIAL_HEARTBEAT_S,
                                                         grace_period=TRIAL_GRACE_S)
                return optuna.create_study(
                    study_name=self.name, storage=storage, load_if_exists=True, direction="maximize",
                    sampler=optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=5), pruner=pruner)
            except sqlalchemy.exc.SQLAlchemyError:
                if self.shared is None or attempt == 4:
                    raise
                time.sleep(0.2 + self.rng.random() * (attempt + 1))
        raise AssertionError("unreachable")  # for the type checker: every path above returns or raises

    def _join_shared_study(self) -> None:
        """Check the remote and the study's identity, and bring the study branch to the remote's tip."""
        self.shared = SharedWorker(Ledger(self.storage, self.name), self.repo, remote=self.remote,
                                   branch=self.branch, worker=self.worker, workspace=str(self.ws.root),
                                   portfolio=self.portfolio_name, note=self._note)
        self.shared.check_remote()
        self.shared.ledger.register({"evaluation": self.ws.evaluation_hash(), "search": self.search_space(),
                                     "optimizable": self.settings.workspace.optimizable,
                                     "models": scoring_identity(self.portfolio)})
        self.shared.push_pending()
        self.shared.sync()
        self.shared.beat()
        current = self.shared.ledger.incumbent()
        self._note(f"worker {self.worker} of shared study {self.name} in {safe_url(self.storage)}; "
                   + ("no baseline yet" if current is None else
                      f"incumbent: trial {current.trial}, composite {current.composite:.3f} (version {current.version})"))

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        """Pass an event on to the observer; a finished trial is also counted in the workers table at once."""
        if self.shared is not None and kind == "trial_finished":
            self.shared.trials += 1
            self._current_trial = None
            self.shared.beat()
        self.observer(kind, data)

    def _ask(self, distributions: dict[str, Any] | None = None) -> optuna.Trial:
        """A new trial; in a shared study marked with this workspace, so that crash recovery on one machine
        never touches another worker's running trials."""
        if self.shared is not None:  # first fail the trials of workers that died (no heartbeat for the grace)
            optuna.storages.fail_stale_trials(self.optuna)
        trial = self.optuna.ask(distributions)
        if self.shared is not None:
            trial.set_user_attr(OWNER_ATTR, self.owner)
            self._current_trial = trial
            self._pulse()
        return trial

    def _pulse(self) -> None:
        """The background heartbeat of a shared run: Optuna's for the current trial, and the workers table."""
        trial = self._current_trial
        if trial is not None:
            self.optuna._storage.record_heartbeat(trial._trial_id)  # Optuna's own mechanism (optuna 5.0 pinned)
        self.shared.beat(quiet=True)

    def _loop(self, n_trials: int | None, timeout_s: float | None, plateau: int | None) -> StudySummary:
        if self.shared is None:
            return self._trials(n_trials, timeout_s, plateau)
        with Pulse(TRIAL_HEARTBEAT_S / 2, self._pulse):  # a worker busy in a long model call is still alive
            summary = self._trials(n_trials, timeout_s, plateau)
        self.shared.state = f"stopped: {summary.stop_reason}"  # after the pulse, so no beat says running again
        self.shared.beat()
        return summary


def from_record(record: KeepRecord) -> Incumbent:
    """A shared study's incumbent version; its evaluation is in the store of the worker that kept it."""
    return Incumbent(record.trial, record.composite, record.instructions, record.knobs, None,
                     record.holdout_composite, record.objective, record.version, record.feedback)
