"""The optimization loop: one Study owns it, from baseline to the last kept commit."""

from __future__ import annotations

import json
import random
import socket
import time
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import optuna
import sqlalchemy
from optuna.distributions import CategoricalDistribution, IntDistribution

from ..errors import ConfigError
from ..lm.calls import CallRecord, CallRecorder, energy_source_of, recording, role_rows
from ..lm.engine import backend_error_in
from ..pipeline.runner import SuiteResult
from ..store import Store
from ..store.statuses import INCUMBENT_STATUSES, TrialStatus
from ..workspace.lock import RunLock
from ..workspace.versioning import InstructionRepo
from ..workspace.workspace import CONFIG_NAME, INSTRUCTIONS_DIR, Workspace, text_hash
from . import identity, operators, pareto, strategies
from .evaluating import EvaluationMixin
from .incumbents import LocalIncumbents, SharedIncumbents
from .pareto import FrontPoint
from .portfolios import PortfolioMixin, PortfolioRow
from .proposer import Proposal, Proposer, feedback_from
from .recovery import RecoveryMixin, deferred_sigint
from .results import KNOBS, Incumbent, StopReason, TrialOutcome, row_objective
from .shared.ledger import KeepRecord, LostRace, safe_url, worker_id

RESULTS_NAME = "results.tsv"

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI shows progress; Optuna's INFO lines are noise
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # WilcoxonPruner is stable enough
Observer = Callable[[str, dict[str, Any]], None]


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
    calls: int
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


class Study(EvaluationMixin, RecoveryMixin, PortfolioMixin):
    """Proposes instruction variants with Optuna, evaluates them, and commits those that beat the incumbent.

    Crash safety: git is the source of truth for keeps. A kept variant is written to the store with its
    figures, then committed, then marked keep; results.tsv and Optuna are told last. Whatever a kill
    interrupts, the next start (under the workspace lock) completes or rolls back each step: see _reconcile.
    """

    def __init__(self, workspace: Workspace, *, portfolio: str | None = None, storage: str | None = None,
                 store: Store | None = None, backend_factory=None, seed: int | None = None,
                 observer: Observer | None = None, retries: int = 2, backoff_s: float = 1.0,
                 warm_start: bool = True, study_name: str | None = None, remote: str = "origin",
                 sampler: optuna.samplers.BaseSampler | None = None, pruner: optuna.pruners.BasePruner | None = None):
        self.ws = workspace
        self.settings = workspace.settings
        self.portfolio_name = portfolio or self.settings.workspace.portfolio
        self.portfolio = workspace.portfolio(self.portfolio_name)
        self.store = store  # opened in optimize(), after the checks, so a refused run writes nothing
        self.storage = storage or f"sqlite:///{workspace.runs_dir / 'optuna.db'}"
        self.backend_factory = backend_factory
        self.retries, self.backoff_s = retries, backoff_s
        # A named study is shared by every worker that names it in the same --storage (search/incumbents.py).
        self.study_name, self.remote = study_name, remote
        # Set up by optimize(), once the workspace checks passed and the run lock is held.
        self.repo: InstructionRepo | None = None
        self.optuna: optuna.Study | None = None
        self.incumbents: LocalIncumbents | None = None  # or SharedIncumbents: where the incumbent lives
        self.warm_start = warm_start and study_name is None
        self.energy_weight = self.settings.scoring.energy_weight
        self.worker = worker_id()
        self.owner = f"{socket.gethostname()}:{workspace.root}"  # this workspace, across restarts
        if study_name is not None and seed is not None:  # workers given one seed must not draw one sequence
            seed = seed * 1_000_003 + int(text_hash(self.worker)[:8], 16)
        self.rng = random.Random(seed)
        self.seed = seed
        # Strategies as Optuna takes them; by default TPE and the [search] pruner (search/strategies.py).
        self.sampler = sampler or strategies.default_sampler(seed)
        self.pruner = pruner or strategies.default_pruner(self.settings.search)
        self.observer = observer or (lambda kind, data: None)
        try:
            self.operators = operators.select(self.settings.search.operators)
        except ValueError as exc:
            raise ConfigError(str(workspace.root / CONFIG_NAME), "search.operators", str(exc)) from None
        self.search_tasks = workspace.suite.split("search")
        self.holdout_tasks = workspace.suite.split("holdout")
        self.stop_requested = False
        self.session_calls: list = []
        self.notes: list[str] = []
        self._proposer_cache: Proposer | None = None
        self._trial_recorder: CallRecorder | None = None
        self._tsv_lines: set[str] | None = None

    # --- identity ------------------------------------------------------------------------------

    @cached_property  # settings and portfolio are fixed for a Study's life; the hash is not cheap
    def name(self) -> str:
        """The name given for a shared study; else the one its settings make (search/identity.py)."""
        return self.study_name if self.study_name is not None else identity.study_name(self.ws, self.portfolio_name)

    def search_space(self) -> dict[str, Any]:
        return identity.search_space(self.settings)

    @property
    def branch(self) -> str:
        return identity.branch_of(self.name)

    @property
    def results_path(self) -> Path:
        return self.ws.runs_dir / RESULTS_NAME

    def distributions(self) -> dict[str, Any]:
        """The fixed parameter space of a trial's recipe; it never changes inside a study."""
        search = self.settings.search
        space: dict[str, Any] = {
            "file": CategoricalDistribution(self.settings.workspace.optimizable),
            "operator": CategoricalDistribution([op.name for op in self.operators]),
            "parent": IntDistribution(0, search.parents - 1),
            "proposer_temperature": CategoricalDistribution(search.proposer_temperatures),
        }
        if search.producer_temperatures:
            space["producer_temperature"] = CategoricalDistribution(search.producer_temperatures)
        if search.revision_rounds:
            space["revision_rounds"] = CategoricalDistribution(search.revision_rounds)
        return space

    # --- the loop ------------------------------------------------------------------------------

    def optimize(self, *, n_trials: int | None = None, timeout_s: float | None = None,
                 plateau: int | None = None) -> StudySummary:
        """Run trials until a stop condition; every finished trial is in the store before the next starts."""
        repo = InstructionRepo(self.ws.root, [f"{INSTRUCTIONS_DIR}/{f}" for f in self.settings.workspace.optimizable])
        repo.check_head()
        self.notes = []
        with RunLock(self.ws.runs_dir) as lock:  # one run per workspace; a killed run's lock is stale
            crashed = lock.stale is not None
            if lock.note:
                self._note(lock.note)
            if crashed:
                for path in repo.clear_stale_git_locks():
                    self._note(f"removed {path}, left by a git command the stopped run did not finish")
                for path in repo.remove_temp_files():
                    self._note(f"removed {path}, a half-written instruction file of the stopped run")
            self._recover_instruction_files(repo, crashed)
            self.store = self.store or Store.for_workspace(self.ws.runs_dir)
            repo.use_branch(self.branch)
            self.repo = repo
            self.incumbents = self._incumbents(repo)
            self.store.ensure_study(
                name=self.name, workspace=str(self.ws.root), portfolio=self.portfolio_name,
                portfolio_json=json.dumps(self.portfolio.model_dump(), sort_keys=True),
                evaluation_hash=self.ws.evaluation_hash(), branch=self.branch, storage=self.storage)
            self.optuna = self._create_optuna_study()
            self._reconcile()
            with self.incumbents.running():
                summary = self._trials(n_trials, timeout_s, plateau)
            self.incumbents.stopped(summary.stop_reason)
            return summary

    def _incumbents(self, repo: InstructionRepo) -> LocalIncumbents:
        """This workspace's own study, or (with a study name) a study shared through --storage."""
        if self.study_name is None:
            return LocalIncumbents(self.store, repo, self.name)
        identity = {"evaluation": self.ws.evaluation_hash(), "search": self.search_space(),
                    "optimizable": self.settings.workspace.optimizable}
        return SharedIncumbents.join(store=self.store, repo=repo, study=self.name, storage=self.storage,
                                     remote=self.remote, branch=self.branch, worker=self.worker, workspace=self.ws,
                                     portfolio=self.portfolio_name, identity=identity, owner=self.owner,
                                     note=self._note)

    def _create_optuna_study(self) -> optuna.Study:
        """Create or load the Optuna study (a shared study's creation is retried: workers race to create it)."""
        for attempt in range(5):  # the last attempt's error is raised
            try:
                return optuna.create_study(
                    study_name=self.name, storage=self.incumbents.optuna_storage(self.storage), load_if_exists=True,
                    direction="maximize", sampler=self.sampler, pruner=self.pruner)
            except sqlalchemy.exc.SQLAlchemyError:
                if not self.incumbents.retry_create(attempt):
                    raise
                time.sleep(0.2 + self.rng.random() * (attempt + 1))
        raise AssertionError("unreachable")  # for the type checker: every path above returns or raises

    def _ask(self, distributions: dict[str, Any] | None = None) -> optuna.Trial:
        return self.incumbents.ask(self.optuna, distributions)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        """Pass an event on to the observer; a finished trial is also counted (a shared worker's table)."""
        if kind == "trial_finished" and self.incumbents is not None:
            self.incumbents.trial_finished()
        self.observer(kind, data)

    def _trials(self, n_trials: int | None, timeout_s: float | None, plateau: int | None) -> StudySummary:
        outcomes: list[TrialOutcome] = []
        commits: list[tuple[str, str]] = []
        failed_streak: list[tuple[CallRecord, ...]] = []
        started, since_keep, stop_reason, message = time.monotonic(), self._trials_since_keep(), StopReason.TRIALS, ""
        limit = self.settings.search.max_consecutive_failed
        incumbent = self.incumbents.current()
        try:
            if incumbent is None:
                if self.warm_start:
                    self._warm_start()
                incumbent = self._baseline()
                if incumbent is None:  # the baseline itself failed: nothing to compare variants with
                    stop_reason, message = self._down("the baseline failed", [self._trial_calls()])
            while incumbent is not None:
                incumbent = self.incumbents.refresh(incumbent)  # another worker's keep?
                if n_trials is not None and len(outcomes) >= n_trials:
                    stop_reason = StopReason.TRIALS
                    break
                if timeout_s is not None and time.monotonic() - started >= timeout_s:
                    stop_reason = StopReason.TIMEOUT
                    break
                if plateau is not None and since_keep >= plateau:
                    stop_reason = StopReason.PLATEAU
                    break
                if self.stop_requested:
                    stop_reason = StopReason.STOPPED
                    break
                outcome, incumbent = self._run_trial(incumbent)
                outcomes.append(outcome)
                since_keep = 0 if outcome.status == TrialStatus.KEEP else since_keep + 1
                if outcome.commit:
                    commits.append((outcome.commit, self.repo.repo.commit(outcome.commit).summary))
                failed_streak = failed_streak + [self._trial_calls()] if outcome.status == TrialStatus.FAILED else []
                if len(failed_streak) >= limit:
                    stop_reason, message = self._down(f"{len(failed_streak)} trials in a row failed", failed_streak)
                    break
        except KeyboardInterrupt:
            stop_reason = StopReason.INTERRUPTED
        except sqlalchemy.exc.OperationalError as exc:
            if not self.incumbents.storage_fault(exc):
                raise
            # The shared database went away: finished trials are safe (here and there); stop with one line.
            stop_reason = StopReason.STORAGE_DOWN
            message = (f"the study's database at {safe_url(self.storage)} is unreachable "
                       f"({' '.join(str(exc.orig or exc).split())[:120]}) — run the same command to resume once it "
                       "is back")
        return self._summary(stop_reason, message, outcomes, commits, incumbent)

    def _summary(self, stop_reason: str, message: str, outcomes: list[TrialOutcome],
                 commits: list[tuple[str, str]], incumbent: Incumbent | None) -> StudySummary:
        rows = self.store.trials(self.name)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        baseline = next((r for r in rows if r["status"] == TrialStatus.BASELINE), None)
        points = pareto.front(self.store, self.name)
        pareto.write_tsv(points, self.ws.runs_dir / "pareto.tsv")
        comparison = [row for row in (self._portfolio_row(name) for name in
                                      (self.name, self._previous_study_name())) if row is not None]
        return StudySummary(
            study=self.name, branch=self.branch, stop_reason=stop_reason, outcomes=outcomes, counts=counts,
            baseline_composite=baseline["composite"] if baseline else None,
            best_composite=incumbent.composite if incumbent else None,
            baseline_holdout=baseline["holdout_composite"] if baseline else None,
            best_holdout=incumbent.holdout_composite if incumbent else None,
            joules=sum(c.joules for c in self.session_calls), energy_source=energy_source_of(self.session_calls),
            calls=len(self.session_calls), commits=commits, stop_message=message,
            roles=role_rows(tuple(self.session_calls)), notes=list(self.notes), pareto=points,
            energy_weight=self.energy_weight, baseline_objective=row_objective(baseline) if baseline else None,
            best_objective=incumbent.objective if incumbent else None, comparison=comparison,
            worker=self.incumbents.worker)

    def request_stop(self) -> None:
        """Finish the trial in progress, then stop (the CLI's first Ctrl-C)."""
        self.stop_requested = True

    # --- trials --------------------------------------------------------------------------------

    def _baseline(self) -> Incumbent | None:
        """The committed instructions, evaluated on search and holdout tasks; None when too many tasks failed."""
        trial = self._ask()
        # The instructions at HEAD of the study branch (the files the loop may change are read from git).
        instructions = dict(self.ws.instructions)
        for file in self.settings.workspace.optimizable:
            instructions[file] = self.repo.read_head(f"{INSTRUCTIONS_DIR}/{file}")
        self.store.begin_trial(self.name, trial.number, operator="baseline", **self._variant_fields(instructions, {}))
        self._emit("trial_started", {"trial": trial.number, "file": "", "operator": "baseline"})
        recorder = self._recorder(trial.number)
        try:
            suite = self._evaluate(trial, instructions, {}, self.search_tasks, "baseline", recorder)
            value = self._suite_objective(suite)
            if suite.score.failed_share > self.settings.search.max_failed_share:
                self._finish(TrialOutcome(
                    trial.number, TrialStatus.FAILED, operator="baseline", composite=suite.composite, objective=value,
                    description=f"baseline: {suite.score.failed_tasks} of {len(suite.tasks)} tasks failed",
                    joules=self._joules(recorder), energy_source=suite.energy_source), suite)
                return None
            holdout, holdout_id = self._holdout(trial.number, instructions, {}, recorder)
            description = "the committed instructions" + self.incumbents.claim_baseline(KeepRecord(
                0, trial.number, self.worker, suite.composite, value, holdout, instructions, {},
                feedback_from(self.store.task_results(suite.evaluation_id))))
            outcome = TrialOutcome(trial.number, TrialStatus.BASELINE, operator="baseline",
                                   description=description, composite=suite.composite,
                                   joules=self._joules(recorder), energy_source=suite.energy_source,
                                   commit=self.repo.head_sha(), holdout_composite=holdout, objective=value)
            self._finish(outcome, suite, holdout_id=holdout_id)
        except KeyboardInterrupt:
            self._abandon(trial.number)
            raise
        except Exception as exc:
            self._abandon_quietly(trial.number, f"stopped by an error: {type(exc).__name__}")
            raise
        return self.incumbents.after_keep(
            Incumbent(trial.number, suite.composite, instructions, {}, suite.evaluation_id, holdout, value))

    def _run_trial(self, incumbent: Incumbent) -> tuple[TrialOutcome, Incumbent]:
        """One trial; Ctrl-C abandons it cleanly: "interrupted" in the store, failed in Optuna, nothing committed."""
        trial = self._ask(self.distributions())
        try:
            return self._trial(trial, incumbent)
        except KeyboardInterrupt:
            self._abandon(trial.number)
            raise
        except Exception as exc:  # an error ends the run; the trial is closed now, not at the next start
            self._abandon_quietly(trial.number, f"stopped by an error: {type(exc).__name__}")
            raise

    def _trial(self, trial: optuna.Trial, incumbent: Incumbent) -> tuple[TrialOutcome, Incumbent]:
        """Propose a variant, evaluate it on the search tasks, and keep it if it beats the incumbent."""
        params = trial.params
        file, op = params["file"], operators.BY_NAME[params["operator"]]
        knobs = {**incumbent.knobs, **{k: params[k] for k in KNOBS if k in params}}
        parents = self.incumbents.parents(incumbent, self.settings.search.parents)
        parent = parents[min(params["parent"], len(parents) - 1)]
        self.store.begin_trial(self.name, trial.number, file=file, operator=op.name, parent_trial=parent.trial,
                               params_json=json.dumps(params, sort_keys=True))
        self._emit("trial_started", {"trial": trial.number, "file": file, "operator": op.name})
        recorder = self._recorder(trial.number)
        base = TrialOutcome(trial.number, TrialStatus.FAILED, file=file, operator=op.name)
        other = next((p for p in parents if p is not parent), None)
        proposal = self._propose(trial, base, parent, other, op, recorder)
        if isinstance(proposal, TrialOutcome):  # no usable variant
            return proposal, incumbent
        idea = ("[rule] " if proposal.source == "rule" else "") + proposal.idea
        instructions = {**incumbent.instructions, file: proposal.text}
        fields = self._variant_fields(instructions, knobs)
        self.store.update_trial(self.name, trial.number, idea=idea, variant_text=proposal.text, **fields)
        base = replace(base, description=idea)
        # Identical variants are not evaluated twice, unless the earlier score lost tasks to a backend fault.
        twin = self.store.find_variant(self.name, fields["variant_hash"], without_failed_tasks=True)
        if twin is not None:
            return self._finish(replace(base, status=TrialStatus.DISCARD, composite=twin["composite"],
                                        objective=row_objective(twin),
                                        delta=row_objective(twin) - incumbent.objective, joules=self._joules(recorder),
                                        description=f"identical to trial {twin['number']}, not re-evaluated")), incumbent
        suite = self._evaluate(trial, instructions, knobs, self.search_tasks, "trial", recorder)
        value = self._suite_objective(suite)
        outcome = replace(base, composite=suite.composite, objective=value, delta=value - incumbent.objective,
                          joules=self._joules(recorder), energy_source=suite.energy_source)
        if suite.status == "pruned":
            return self._finish(replace(outcome, status=TrialStatus.PRUNED, composite=None, objective=None, delta=None),
                                suite), incumbent
        if suite.score.failed_share > self.settings.search.max_failed_share:
            failed = f"{suite.score.failed_tasks} of {len(suite.tasks)} tasks failed; {idea}"
            return self._finish(replace(outcome, status=TrialStatus.FAILED, description=failed), suite), incumbent
        # "Beats by more than the threshold", with float noise (7.7 − 7.0 = 0.70000…01) not counting as more.
        # The delta is of the objective: the composite itself unless [scoring] energy_weight > 0.
        if outcome.delta <= self.settings.scoring.keep_threshold + 1e-9:
            return self._finish(replace(outcome, status=TrialStatus.DISCARD), suite), incumbent
        return self._keep(trial, incumbent, outcome, suite, instructions, knobs, recorder)

    def _propose(self, trial: optuna.Trial, failed: TrialOutcome, parent: Incumbent, other: Incumbent | None,
                 op: operators.MutationOperator, recorder: CallRecorder) -> Proposal | TrialOutcome:
        """The variant of the parent that the trial's operator proposes; if none, the trial's failed outcome."""
        file = failed.file
        try:
            with recording(recorder):
                proposal = self._proposer().propose(
                    parent.instructions[file], op, parent.feedback or feedback_from(
                        self.store.task_results(parent.evaluation_id) if parent.evaluation_id else ()),
                    self._tried(file), other=other.instructions[file] if other and op.needs_second_parent else "",
                    temperature=trial.params["proposer_temperature"], rng=self.rng)
        except Exception as exc:  # a proposer whose model call failed gives no variant; the loop goes on
            error = backend_error_in(exc)
            if error is None:
                raise
            return self._finish(replace(failed, joules=self._joules(recorder),
                                        description=f"the proposer's model call failed: {error.failure_mode}"))
        if proposal is None:
            return self._finish(replace(failed, description="the proposer gave no usable variant",
                                        joules=self._joules(recorder)))
        return proposal

    def _keep(self, trial: optuna.Trial, incumbent: Incumbent, outcome: TrialOutcome, suite: SuiteResult,
              instructions: dict[str, str], knobs: dict[str, Any],
              recorder: CallRecorder) -> tuple[TrialOutcome, Incumbent]:
        """A variant that beat the incumbent: its holdout figures, then its commit, recorded so that a kill at
        any point is completed or rolled back on the next start (see _reconcile)."""
        file = outcome.file
        holdout, holdout_id = self._holdout(trial.number, instructions, knobs, recorder)
        outcome = replace(outcome, status=TrialStatus.KEEP, holdout_composite=holdout, joules=self._joules(recorder))
        with deferred_sigint():  # the commit and its record are made together or not at all
            # 1. The figures first (status still running), so a kill right after the commit can be completed.
            self.store.update_trial(self.name, trial.number, **self._outcome_fields(outcome, suite, holdout_id))
            # 2. The commit: from here on, git says this trial is kept (see _reconcile).
            record = KeepRecord(
                incumbent.version + 1, trial.number, self.worker, suite.composite, outcome.objective, holdout,
                instructions, knobs, feedback_from(self.store.task_results(suite.evaluation_id)), file=file,
                subject=self._subject(file, outcome, incumbent), trailers=self._trailers(outcome, suite, knobs))
            try:
                sha = self.incumbents.commit_keep(record, f"{INSTRUCTIONS_DIR}/{file}")
            except LostRace:
                winner = self.incumbents.current()
                # The race first: the live view shows the first 80 characters of a description.
                lost = (f"lost the race: trial {winner.trial} of another worker was kept first (this beat trial "
                        f"{incumbent.trial} by {outcome.delta:+.2f}; the incumbent is now {winner.objective:.2f}); "
                        f"{outcome.description}")
                return self._finish(replace(outcome, status=TrialStatus.DISCARD, description=lost), suite,
                                    holdout_id=holdout_id), winner
            outcome = replace(outcome, commit=sha)
            # 3. keep in the store, then results.tsv, then Optuna.
            self._finish(outcome, suite, holdout_id=holdout_id)
        return outcome, self.incumbents.after_keep(Incumbent(
            trial.number, suite.composite, instructions, knobs, suite.evaluation_id, holdout, outcome.objective))

    # --- helpers -------------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self._emit("note", {"text": text})

    def _variant_fields(self, instructions: dict[str, str], knobs: dict[str, Any]) -> dict[str, Any]:
        return {"instructions_json": json.dumps(instructions, sort_keys=True),
                "variant_hash": text_hash(json.dumps([instructions, knobs], sort_keys=True))}

    def _outcome_fields(self, outcome: TrialOutcome, suite: SuiteResult | None,
                        holdout_id: int | None) -> dict[str, Any]:
        score = suite.score if suite else None
        return dict(
            composite=outcome.composite, delta=outcome.delta, judge_mean=score.judge_mean if score else None,
            criteria_rate=score.criteria_rate if score else None, holdout_composite=outcome.holdout_composite,
            joules=outcome.joules, energy_source=outcome.energy_source,
            evaluation_id=suite.evaluation_id if suite else None, holdout_evaluation_id=holdout_id,
            commit_sha=outcome.commit or None, note=outcome.description, objective=outcome.objective,
            # delta and incumbent_before are in objective units (the composite's when energy_weight is 0).
            incumbent_before=None if outcome.delta is None or outcome.objective is None
            else outcome.objective - outcome.delta)

    def _finish(self, outcome: TrialOutcome, suite: SuiteResult | None = None,
                holdout_id: int | None = None) -> TrialOutcome:
        """Record how a trial ended: the store, then its results.tsv row, then Optuna (the order _reconcile
        relies on); a Ctrl-C in between is held until all three are done."""
        with deferred_sigint():
            self.store.finish_trial(self.name, outcome.number, outcome.status,
                                    **self._outcome_fields(outcome, suite, holdout_id))
            row = self.store.trial(self.name, outcome.number)
            self._write_result(row)
            self._tell(row)
        self._emit("trial_finished", {"outcome": outcome})
        return outcome

    def _subject(self, file: str, outcome: TrialOutcome, incumbent: Incumbent) -> str:
        if self.energy_weight:
            return (f"autoresearch: {file} {outcome.delta:+.2f} "
                    f"(objective {incumbent.objective:.2f} → {outcome.objective:.2f})")
        return (f"autoresearch: {file} {outcome.delta:+.2f} "
                f"({incumbent.composite:.2f} → {outcome.composite:.2f})")

    def _trailers(self, outcome: TrialOutcome, suite: SuiteResult, knobs: dict[str, Any]) -> dict[str, str]:
        trailers = {
            "Autoresearch-Trial": str(outcome.number),
            "Autoresearch-Operator": outcome.operator,
            "Autoresearch-Composite": f"{outcome.composite:.3f}",
            "Autoresearch-Delta": f"{outcome.delta:+.3f}",
            "Autoresearch-Judge-Mean": f"{suite.score.judge_mean:.3f}",
            "Autoresearch-Criteria-Rate": f"{suite.score.criteria_rate:.3f}",
            "Autoresearch-Holdout-Composite": _fmt(outcome.holdout_composite),
            "Autoresearch-Joules": f"{outcome.joules:.1f} ({outcome.energy_source})",
            "Autoresearch-Portfolio": self.portfolio_name,
            "Autoresearch-Study": self.name,
        }
        if self.energy_weight:
            trailers["Autoresearch-Objective"] = f"{outcome.objective:.3f}"
            trailers["Autoresearch-Joules-Per-Task"] = (f"{suite.joules / max(len(suite.tasks), 1):.1f} "
                                                        f"({suite.energy_source})")
        if knobs:
            trailers["Autoresearch-Knobs"] = ", ".join(f"{k}={v}" for k, v in sorted(knobs.items()))
        return trailers

    def _tried(self, file: str) -> list[str]:
        rows = [r for r in self.store.trials(self.name) if r["file"] == file and r["idea"]][-12:]
        return [f"{r['idea']} ({r['status']}" + (f", {r['delta']:+.2f})" if r["delta"] is not None else ")")
                for r in rows]

    def _trials_since_keep(self) -> int:
        n = 0
        for row in reversed(self.store.trials(self.name)):
            if row["status"] in INCUMBENT_STATUSES:
                break
            n += 1
        return n

def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"
