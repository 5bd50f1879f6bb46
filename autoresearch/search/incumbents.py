"""Where a study's incumbent lives and how a keep becomes it: the one strategy behind which a study run by
one worker and a study shared by several differ.

    LocalIncumbents   the store's trials and this workspace's git branch
    SharedIncumbents  the shared ledger (a compare-and-set per keep) and the remote every worker pushes to

The Study asks the same questions of either: the incumbent now, the parents of a variant, how to record
the baseline and commit a keep, and how Optuna's trials are stored, asked for and kept alive.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Callable

import optuna
import sqlalchemy

from ..store import Store
from ..store.queries import (
    incumbent_before,
    trials_since_incumbent,
    tried_ideas,
)
from ..store.statuses import INCUMBENT_STATUSES
from ..workspace.versioning import InstructionRepo
from .records import variant_hash
from .results import KNOBS, Incumbent, row_objective
from .shared.ledger import OWNER_ATTR, KeepRecord, Ledger, safe_url
from .shared.worker import (
    TRIAL_GRACE_S,
    TRIAL_HEARTBEAT_S,
    Pulse,
    SharedWorker,
    scoring_identity,
)

Note = Callable[[str], None]


class LocalIncumbents:
    """A study run by this worker alone: the incumbent is the last keep (else the baseline) in the store."""

    shared = False
    worker: str | None = None  # the summary's counts and front are the whole study's

    def __init__(self, store: Store, repo: InstructionRepo, study: str):
        self.store, self.repo, self.study = store, repo, study

    # --- Optuna ------------------------------------------------------------------------------

    def optuna_storage(self, url: str) -> str | optuna.storages.BaseStorage:
        return url

    def retry_create(self, attempt: int) -> bool:
        """Whether creating the Optuna study may be tried again after a database error."""
        return False

    def ask(self, study: optuna.Study, distributions: dict[str, Any] | None = None) -> optuna.Trial:
        return study.ask(distributions)

    def owns(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Whether crash recovery may close this running trial: every trial of a local study is ours."""
        return True

    def trial_finished(self) -> None:
        pass

    def running(self) -> AbstractContextManager[Any]:
        """What lasts while trials run (a shared worker's heartbeat)."""
        return contextlib.nullcontext()

    def stopped(self, reason: str) -> None:
        pass

    def storage_fault(self, exc: sqlalchemy.exc.OperationalError) -> bool:
        """Whether a database error means "the study's database is gone" (a stop) rather than a bug."""
        return False

    # --- the incumbent -----------------------------------------------------------------------

    def current(self) -> Incumbent | None:
        """The last kept trial, else the baseline; None when the study has no baseline yet."""
        row = incumbent_before(self.store.trials(self.study))
        if row is None:
            return None
        params = json.loads(row["params_json"])
        return Incumbent(row["number"], row["composite"], json.loads(row["instructions_json"]),
                         {k: params[k] for k in KNOBS if k in params}, row["evaluation_id"],
                         row["holdout_composite"], row_objective(row))

    def refresh(self, incumbent: Incumbent) -> Incumbent:
        """Between trials: nobody else keeps in a local study."""
        return incumbent

    def parents(self, incumbent: Incumbent, limit: int, front: Sequence[int] = ()) -> list[Incumbent]:
        """The incumbent first, then the per-task Pareto front's other members (trial numbers, in order: see
        search/screens.py), then earlier kept variants (and the baseline) by objective."""
        trials = {r["number"]: r for r in self.store.trials(self.study)}
        kept = sorted((r for r in trials.values() if r["status"] in INCUMBENT_STATUSES), key=row_objective,
                      reverse=True)
        numbers = dict.fromkeys([*(n for n in front if n in trials), *(r["number"] for r in kept)])
        others = [parent_of(trials[n]) for n in numbers if n != incumbent.trial]
        return [incumbent, *others][:limit]

    # --- what the study has tried (one memory: in a shared study, every worker's trials) ---------------

    def record(self, row: Any) -> None:
        """A trial finished (its store row): the store holds it already."""

    def tried_ideas(self, file: str) -> list[str]:
        """The latest ideas tried on file, with how they ended (the proposer's "already tried")."""
        return tried_ideas(self.store.trials(self.study), file)

    def twin(self, variant_hash: str) -> Any | None:
        """A finished trial that evaluated this very variant (without a failed task), or None."""
        return self.store.find_variant(self.study, variant_hash, without_failed_tasks=True)

    def pruned_twin(self, variant_hash: str, incumbent: Incumbent) -> Any | None:
        """A trial of this worker's that evaluated this very variant and was pruned against this incumbent, or
        None: under the same seeds it would be pruned again."""
        return self.store.find_pruned_variant(self.study, variant_hash, incumbent.objective)

    def evaluated(self, variant_hash: str, incumbent: Incumbent) -> Any | None:
        """The earlier trial that makes evaluating this variant again pointless: its twin (scored), else one
        pruned against this incumbent (status 'pruned'); None when there is neither."""
        return self.twin(variant_hash) or self.pruned_twin(variant_hash, incumbent)

    def since_keep(self) -> int:
        """Trials since the last keep or baseline (what --plateau counts)."""
        return trials_since_incumbent(self.store.trials(self.study))

    def claim_baseline(self, record: KeepRecord) -> str:
        """Make this evaluation the study's baseline; returns what to add to its description."""
        return ""

    def commit_keep(self, record: KeepRecord, rel: str, also: dict[str, str] | None = None) -> str:
        """Commit a keep (and the files in `also`: its knobs); its sha."""
        return self.repo.commit_instruction(rel, record.instructions[record.file], record.subject,
                                            record.trailers, also).sha

    def after_keep(self, ours: Incumbent) -> Incumbent:
        """The incumbent after this worker's keep (or baseline): its own."""
        return ours


class SharedIncumbents(LocalIncumbents):
    """A study shared through one database: the incumbent is the ledger's latest version, whoever kept it."""

    shared = True

    def __init__(self, store: Store, repo: InstructionRepo, study: str, worker: SharedWorker, storage: str,
                 owner: str):
        super().__init__(store, repo, study)
        self.shared_worker, self.storage, self.owner = worker, storage, owner
        self.worker = worker.worker
        self._trial: optuna.Trial | None = None
        self._optuna: optuna.Study | None = None
        self._recorded: dict[int, str | None] = {}  # other workers' versions in this store: their commits

    @classmethod
    def join(cls, *, store: Store, repo: InstructionRepo, study: str, storage: str, remote: str, branch: str,
             worker: str, workspace: Any, portfolio: str, identity: dict[str, Any], owner: str,
             note: Note) -> SharedIncumbents:
        """Check the remote and the study's identity, and bring the study branch to the remote's tip."""
        shared = SharedWorker(Ledger(storage, study), repo, remote=remote, branch=branch, worker=worker,
                              workspace=str(workspace.root), portfolio=portfolio, note=note,
                              models=lambda: store.models)
        shared.check_remote()
        shared.ledger.register({**identity, "models": scoring_identity(workspace.portfolio(portfolio))})
        shared.push_pending()
        shared.sync()
        shared.beat()
        current = shared.ledger.incumbent()
        note(f"worker {worker} of shared study {study} in {safe_url(storage)}; "
             + ("no baseline yet" if current is None else
                f"incumbent: trial {current.trial}, composite {current.composite:.3f} (version {current.version})"))
        return cls(store, repo, study, shared, storage, owner)

    # --- Optuna ------------------------------------------------------------------------------

    def optuna_storage(self, url: str) -> optuna.storages.BaseStorage:
        # With trial heartbeats: a dead worker's trial is failed by the next worker that asks (worker.TRIAL_GRACE_S).
        # pool_pre_ping: after the database restarts (an upgrade, a failover) every pooled connection is dead; Optuna
        # pings only MySQL's, so the next query through one failed and the run stopped with the server back.
        return optuna.storages.RDBStorage(url, heartbeat_interval=TRIAL_HEARTBEAT_S, grace_period=TRIAL_GRACE_S,
                                          engine_kwargs={"pool_pre_ping": True})

    def retry_create(self, attempt: int) -> bool:
        # Workers starting together on an empty database race to create Optuna's tables: the losers retry.
        return True

    def ask(self, study: optuna.Study, distributions: dict[str, Any] | None = None) -> optuna.Trial:
        """A new trial marked with this workspace, so that crash recovery on one machine never touches another
        worker's running trials; first fail the trials of workers that died (no heartbeat for the grace)."""
        self._optuna = study
        optuna.storages.fail_stale_trials(study)
        with warnings.catch_warnings():  # Optuna warns that its heartbeat expects Study.optimize; the loop asks
            # and tells itself, and beats for its trial itself (Pulse): the warning says nothing to a user
            warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
            trial = study.ask(distributions)
        trial.set_user_attr(OWNER_ATTR, self.owner)
        self._trial = trial
        self._pulse()
        return trial

    def owns(self, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.user_attrs.get(OWNER_ATTR) == self.owner

    def trial_finished(self) -> None:
        """Count it in the workers table at once."""
        self.shared_worker.trials += 1
        self._trial = None
        self.shared_worker.beat()

    def running(self) -> AbstractContextManager[Any]:
        return Pulse(TRIAL_HEARTBEAT_S / 2, self._pulse)  # a worker busy in a long model call is still alive

    def stopped(self, reason: str) -> None:
        self.shared_worker.state = f"stopped: {reason}"  # after the pulse, so no beat says running again
        self.shared_worker.beat()

    def storage_fault(self, exc: sqlalchemy.exc.OperationalError) -> bool:
        return True

    def _pulse(self) -> None:
        """The background heartbeat: Optuna's for the current trial, and the workers table."""
        trial = self._trial
        if trial is not None and self._optuna is not None:
            self._optuna._storage.record_heartbeat(trial._trial_id)  # Optuna's own mechanism (optuna 5.0 pinned)
        self.shared_worker.beat(quiet=True)

    # --- the incumbent -----------------------------------------------------------------------

    def current(self) -> Incumbent | None:
        keeps = self.shared_worker.ledger.keeps()
        if not keeps:
            return None
        self._record_study(keeps)
        return from_record(keeps[-1])

    def refresh(self, incumbent: Incumbent) -> Incumbent:
        """Another worker may have kept since the last trial."""
        return self.current() or incumbent

    def parents(self, incumbent: Incumbent, limit: int, front: Sequence[int] = ()) -> list[Incumbent]:
        """The incumbent, then the per-task Pareto front's members among this worker's own trials (their texts
        are in its store; the front is made of its screens and its own evaluation of the incumbent, as screens
        compare task by task on one machine), then the study's other keeps by objective (the ledger holds
        every worker's)."""
        own = {r["number"]: r for r in self.store.trials(self.study)}
        members = [parent_of(own[n]) for n in front if n in own and n != incumbent.trial]
        seen = {incumbent.trial, *(m.trial for m in members)}
        records = sorted((r for r in self.shared_worker.ledger.keeps() if r.trial not in seen),
                         key=lambda r: r.objective, reverse=True)
        return [incumbent, *members, *map(from_record, records)][:limit]

    def record(self, row: Any) -> None:
        self.shared_worker.ledger.record_trial(self.worker, row, self.store.models)

    def tried_ideas(self, file: str) -> list[str]:
        return tried_ideas(self.shared_worker.ledger.tried(), file)

    def twin(self, variant_hash: str) -> Any | None:
        """This worker's twin from its store (its scores are here), else another worker's from the ledger that the
        same models scored."""
        mine = super().twin(variant_hash)
        if mine is not None:
            return mine
        return next((r for r in self._ledger_twins(variant_hash)
                     if r["composite"] is not None and r["status"] in ("baseline", "keep", "discard")), None)

    def pruned_twin(self, variant_hash: str, incumbent: Incumbent) -> Any | None:
        """This worker's pruned twin from its store, else another worker's from the ledger that the same models
        screened."""
        mine = super().pruned_twin(variant_hash, incumbent)
        if mine is not None:
            return mine
        return next((r for r in self._ledger_twins(variant_hash)
                     if r["status"] == "pruned" and r["incumbent_before"] is not None
                     and abs(r["incumbent_before"] - incumbent.objective) < 1e-9), None)

    def _ledger_twins(self, variant_hash: str) -> list[dict[str, Any]]:
        """Every worker's trials of this variant whose scores the models answering here made (Store.models): a
        worker on another machine, another GGUF or llama.cpp build, or before an `ollama pull`, scores the same
        instructions otherwise (a trial recorded before the ledger kept models says none, and is not reused)."""
        return [r for r in self.shared_worker.ledger.tried_variant(variant_hash) if r["models"] == self.store.models]

    def since_keep(self) -> int:
        return trials_since_incumbent(self.shared_worker.ledger.tried())

    def claim_baseline(self, record: KeepRecord) -> str:
        study_baseline = self.shared_worker.claim_baseline(record)
        if study_baseline.worker != self.worker:
            return f" (the study's baseline is trial {study_baseline.trial}, another worker's)"
        return ""

    def _record_study(self, keeps: list[KeepRecord]) -> None:
        """Record in this store what other workers' versions of the incumbent say, so that log, report, show and
        the study's noise read them here: the study's baseline (version 0, studies.baseline_json) and their
        keeps (study_keeps); each once, and a keep again when its commit changed (a replay)."""
        for keep in keeps:
            if keep.worker == self.worker or self._recorded.get(keep.version, "") == keep.commit_sha:
                continue
            if keep.version == 0:
                self.store.record_study_baseline(self.study, {
                    "trial": keep.trial, "worker": keep.worker, "composite": keep.composite,
                    "holdout_composite": keep.holdout_composite, "objective": keep.objective,
                    "variant_hash": variant_hash(keep.instructions, keep.knobs)})
            else:
                self.store.record_study_keep(self.study, {
                    "version": keep.version, "trial": keep.trial, "worker": keep.worker, "file": keep.file,
                    "composite": keep.composite, "holdout_composite": keep.holdout_composite,
                    "subject": keep.subject, "idea": keep.idea, "trailers": keep.trailers, "evidence": keep.evidence,
                    "commit_sha": keep.commit_sha,
                    "kept_at": keep.kept_at})
            self._recorded[keep.version] = keep.commit_sha

    def commit_keep(self, record: KeepRecord, rel: str, also: dict[str, str] | None = None) -> str:
        """Claim the next version and commit it; LostRace when another worker kept first."""
        return self.shared_worker.commit_keep(record, rel)

    def after_keep(self, ours: Incumbent) -> Incumbent:
        return self.current() or ours


def parent_of(row: Any) -> Incumbent:
    """A trial of this store as a possible parent: its instructions and scores (a parent's knobs are not
    used: a variant takes the incumbent's)."""
    return Incumbent(row["number"], row["composite"], json.loads(row["instructions_json"]), {}, row["evaluation_id"],
                     row["holdout_composite"], row_objective(row))


def from_record(record: KeepRecord) -> Incumbent:
    """A shared study's incumbent version; its evaluation is in the store of the worker that kept it."""
    return Incumbent(record.trial, record.composite, record.instructions, record.knobs, None,
                     record.holdout_composite, record.objective, record.version, record.feedback)

