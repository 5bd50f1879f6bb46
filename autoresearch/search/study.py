"""The optimization loop: one Study owns it, from baseline to the last kept commit."""

from __future__ import annotations

import importlib.util
import json
import random
import socket
import time
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import optuna
import sqlalchemy

from ..errors import ConfigError, HeadMoved, StorageError, Terminated
from ..evaluation.paired import seeds_changed_nothing
from ..lm import outages
from ..lm.replies import replies_for
from ..pipeline.harness import backend_of, reuses_replies
from ..pipeline.program import prompt_format
from ..store import Store
from ..store.queries import screen_task_rows
from ..store.replies import StoredReplies
from ..text import one_line
from ..workspace.config import PIPELINE_ROLES
from ..workspace.lock import RunLock
from ..workspace.versioning import InstructionRepo
from ..workspace.workspace import (
    CONFIG_NAME,
    INSTRUCTIONS_DIR,
    Workspace,
    text_hash,
)
from . import identity, near_miss, operators, strategies
from .baseline import Baseline
from .evaluating import Evaluator
from .forecast import reused_shares
from .incumbents import LocalIncumbents, SharedIncumbents
from .keep_rule import PairedKeepRule
from .keeping import Keeper
from .knobs import KNOBS_PATH, searches_knobs
from .model_watch import ModelWatch, changing_message, swap_note
from .portfolios import PortfolioHistory
from .proposer import Proposer, proposer_seeds
from .proposing import TrialProposer
from .race import Race
from .recovery import Recovery, recover_instruction_files
from .results import Incumbent, ResultsFile, StopReason, TrialOutcome
from .run_forecast import RunForecast
from .run_so_far import RunSoFar
from .screens import screen_scores
from .shared.ledger import safe_url, worker_id
from .shared.outage import database_back
from .streaks import FailureStreaks
from .summary import StudySummary, summarize
from .trial import TrialRunner
from .trial_log import TrialLog

RESULTS_NAME = "results.tsv"

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI shows progress; Optuna's INFO lines are noise
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # WilcoxonPruner is stable enough
Observer = Callable[[str, dict[str, Any]], None]


class Study:
    """Proposes instruction variants with Optuna, evaluates them, and commits those that beat the incumbent.

    Crash safety: git is the source of truth for keeps. A kept variant is written to the store with its
    figures, then committed, then marked keep; results.tsv and Optuna are told last. Whatever a kill
    interrupts, the next start (under the workspace lock) completes or rolls back each step: see
    Recovery.reconcile and search/keeping.py.
    """

    def __init__(self, workspace: Workspace, *, portfolio: str | None = None, storage: str | None = None,
                 store: Store | None = None, backend_factory=None, seed: int | None = None,
                 observer: Observer | None = None, retries: int = 2, backoff_s: float = 1.0,
                 warm_start: bool = True, study_name: str | None = None, remote: str = "origin",
                 sampler: optuna.samplers.BaseSampler | None = None, pruner: optuna.pruners.BasePruner | None = None,
                 proposer: Proposer | None = None):
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
        self.evaluator: Evaluator | None = None
        self.recovery: Recovery | None = None
        self.models: ModelWatch | None = None  # which models answer, and whether they changed (search/model_watch.py)
        self.portfolios: PortfolioHistory | None = None
        self.results: ResultsFile | None = None
        self.race: Race | None = None  # the keep rule's race against the incumbent (search/race.py)
        self.log: TrialLog | None = None  # records each finished trial (search/trial_log.py)
        self.baseline: Baseline | None = None  # evaluates the committed instructions (search/baseline.py)
        self.keeper: Keeper | None = None  # commits the variants that win their race (search/keeping.py)
        self.proposing: TrialProposer | None = None  # a trial's variant (search/proposing.py)
        self.runner: TrialRunner | None = None  # one trial, proposal to keep (search/trial.py)
        self.warm_start = warm_start and study_name is None
        self.energy_weight = self.settings.scoring.energy_weight
        self.worker = worker_id()
        self.owner = f"{socket.gethostname()}:{workspace.root}"  # this workspace, across restarts
        if study_name is not None and seed is not None:  # workers given one seed must not draw one sequence
            # (kept under 2**32: numpy's generator behind Optuna's samplers refuses larger seeds)
            seed = (seed * 1_000_003 + int(text_hash(self.worker)[:8], 16)) % 2**32
        self.rng = random.Random(seed)
        self.seed = seed
        # Strategies as Optuna takes them; by default the [search] sampler and pruner (search/strategies.py).
        # The sampler is made in optimize(), once the run's trial budget is known; a given one is used as is.
        self.sampler = sampler
        if sampler is None and self.settings.search.sampler == "gp" and importlib.util.find_spec("torch") is None:
            raise ConfigError(str(workspace.root / CONFIG_NAME), "search.sampler",
                              '"gp" needs torch (pip install torch); or use "tpe" or "random"')
        self.pruner = pruner or strategies.default_pruner(self.settings)
        self.search_tasks = workspace.suite.split("search")
        self.rule = PairedKeepRule.from_settings(self.settings.scoring, self.settings.search.noise_repeats)
        cannot = self._cannot_keep()
        if cannot:  # a night that could keep nothing: refused before anything is written
            raise ConfigError(str(workspace.root / CONFIG_NAME), "scoring.confidence", cannot)
        cannot = self.rule.cannot_keep_across_tasks(len(self.search_tasks))
        if cannot:
            raise ConfigError(str(workspace.root / CONFIG_NAME), "scoring.across_tasks", cannot)
        self.proposer = proposer  # None: the portfolio's proposer model (anything with Proposer.propose)
        self.observer = observer or (lambda kind, data: None)
        try:
            self.operators = operators.select(self.settings.search.operators)
        except ValueError as exc:
            raise ConfigError(str(workspace.root / CONFIG_NAME), "search.operators", str(exc)) from None
        self.prompts = {task.id: task.prompt for task in self.search_tasks}  # for the proposer's examples
        self.holdout_tasks = workspace.suite.split("holdout")
        self.stop_requested: StopReason | None = None  # why the run stops after the trial in progress
        self.session_calls: list = []
        # The pipeline's replies, reused for identical requests across the run's evaluations (lm/replies.py).
        self.replies = replies_for(self.settings.backends)
        self.forecast: RunForecast | None = None  # made with each run's parts (search/run_forecast.py)
        self.notes: list[str] = []

    def _cannot_keep(self) -> str | None:
        """Why a run could keep nothing on its search tasks, or None. With every pipeline role decoding greedily
        (temperature 0) and no producer temperature searched, the seeds change no reply: each task is one
        difference. (A baseline whose replies merely came out the same under two seeds proves less: a variant's
        may not, and the race then counts its pairs.)"""
        greedy = (all(self.portfolio.role(role).temperature == 0 for role in PIPELINE_ROLES)
                  and not self.settings.search.producer_temperatures)
        return self.rule.cannot_keep(len(self.search_tasks), copies=greedy)

    def _confirm_sets(self, incumbent: Incumbent) -> tuple[int, int]:
        """(the seed sets a contender is confirmed over in all, those of them the incumbent was evaluated under
        already): [search] noise_repeats, or 2 where the seeds changed no score of the incumbent's first two
        (the race stops there: more sets would copy)."""
        noise = self.evaluator.stored_noise(incumbent)
        measured = len({repeat for _, repeat in noise})
        copies = measured == 2 and seeds_changed_nothing(list(noise), noise)
        return (min(self.rule.repeats, 2) if copies else self.rule.repeats), measured

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

    # --- the loop ------------------------------------------------------------------------------

    def optimize(self, *, n_trials: int | None = None, timeout_s: float | None = None,
                 plateau: int | None = None) -> StudySummary:
        """Run trials until a stop condition; every finished trial is in the store before the next starts. A shared
        study's database that goes away is waited for ([backends] outage_wait_s); when it answers again the run
        goes on as the same command run again would, start-up repairs first."""
        self.notes = []
        so_far = RunSoFar(started=time.monotonic())
        summary = self._optimize(n_trials, timeout_s, plateau, so_far)
        while summary.stop_reason == StopReason.STORAGE_DOWN and self._storage_back(so_far.storage_lost):
            finished = len(so_far.outcomes)
            try:
                resumed = self._optimize(n_trials, timeout_s, plateau, so_far)
            except (sqlalchemy.exc.OperationalError, optuna.exceptions.StorageInternalError, StorageError) as exc:
                self._note(f"the resumed run could not start: {one_line(str(exc), 160)}")
                summary.notes = list(self.notes)  # the wait's notes besides the run's
                return summary  # its start-up met the database gone again: stop as if it had not answered
            summary = resumed
            if summary.stop_reason == StopReason.STORAGE_DOWN and len(so_far.outcomes) == finished:
                break  # lost again before a trial finished: another wait could go round for ever
        return summary

    def _storage_back(self, lost: str) -> bool:
        """After the shared study's database went away: whether it answers again within the wait."""
        wait_s = self.settings.backends.outage_wait_s
        if not wait_s or self.stop_requested is not None or self.storage is None:
            return False
        return database_back(self.storage, lost, wait_s, self._note, stopped=lambda: self.stop_requested is not None)

    def _optimize(self, n_trials: int | None, timeout_s: float | None, plateau: int | None,
                  so_far: RunSoFar) -> StudySummary:
        files = [f"{INSTRUCTIONS_DIR}/{f}" for f in self.settings.workspace.optimizable]
        if searches_knobs(self.settings):
            files.append(KNOBS_PATH)
        repo = InstructionRepo(self.ws.root, files)
        repo.check_head(self.branch)
        with RunLock(self.ws.runs_dir) as lock:  # one run per workspace; a killed run's lock is stale
            crashed = lock.stale is not None
            if lock.note:
                self._note(lock.note)
            if crashed:
                for path in repo.clear_stale_git_locks():
                    self._note(f"removed {path}, left by a git command the stopped run did not finish")
                for path in repo.remove_temp_files():
                    self._note(f"removed {path}, a half-written instruction file of the stopped run")
            self.store = recover_instruction_files(self.ws, repo, crashed, self.store, self._note)
            self.store = self.store or Store.for_workspace(self.ws.runs_dir)
            if self.replies is not None:  # and the replies the store's earlier runs got, by the same models
                self.replies.lookup = StoredReplies(self.store)
            left, differing = repo.branch, repo.changed_since_fork(self.branch)
            repo.use_branch(self.branch)
            if differing:  # the user's work on another branch is not what this run starts from: say so
                files = " ".join(differing)
                self._note(f"{', '.join(differing)} changed on {left} since {self.branch}, the study's branch, began "
                           f"there; this run continues that branch. To start from {left}'s: `git checkout {left} -- "
                           f"{files} && git commit -m 'start from {left}'` on {self.branch}; the next run evaluates it "
                           f"as a new baseline")
            self.repo = repo
            if not self.holdout_tasks:  # nothing tells a gain on the search tasks from one that generalises
                self._note(f"no holdout tasks in {self.settings.workspace.tasks}: a keep is judged on the search "
                           "tasks alone, with no check on tasks the search never saw (mark some `split = \"holdout\"`)")
            self.incumbents = self._incumbents(repo)
            self.store.ensure_study(
                name=self.name, workspace=str(self.ws.root), portfolio=self.portfolio_name,
                portfolio_json=json.dumps(self.portfolio.model_dump(), sort_keys=True),
                evaluation_hash=self.ws.evaluation_hash(), branch=self.branch, storage=self.storage)
            self.models = ModelWatch(self.portfolio, self.settings.backends, self.store, self.name,
                                     shared=self.incumbents.shared, prompt_format=prompt_format(self.ws),
                                     backend_of=self._backend_of, note=self._note)
            if self.sampler is None:
                self.sampler = self._default_sampler(n_trials)
            self.optuna = self._create_optuna_study()
            self._compose(repo)
            self.recovery.reconcile()
            self.recovery.give_optuna_back_its_trials(
                strategies.distributions(self.settings, [op.name for op in self.operators]), self._screen_values)
            with self.incumbents.running(), outages.listening(self._note):  # a server gone and back: the notes
                summary = self._trials(n_trials, timeout_s, plateau, so_far)
            self.incumbents.stopped(summary.stop_reason)
            return summary

    def _screen_values(self) -> dict[int, dict[int, float]]:
        """Per trial with a whole screen, what each task told the pruner (by step: the task's index). With an
        energy weight the pruner was told the objective, whose per-task joules this leaves out: none then."""
        if self.energy_weight:
            return {}
        steps = self.evaluator.steps  # the step each task reports at
        scores = screen_scores(screen_task_rows(self.store, self.name), list(steps), self.settings.scoring)
        return {number: {steps[task]: value for task, value in tasks.items()} for number, tasks in scores.items()}

    def close(self) -> None:
        """Close the store, when a run opened it; the Study is done with."""
        if self.store is not None:
            self.store.close()

    def _default_sampler(self, n_trials: int | None) -> optuna.samplers.BaseSampler:
        """The [search] sampler for a run of n_trials (torch, for "gp", was checked in __init__)."""
        return strategies.default_sampler(self.settings.search, self.seed, n_trials=n_trials,
                                          shared=self.study_name is not None)

    def _compose(self, repo: InstructionRepo) -> None:
        """The run's parts, once the store, the branch and the Optuna study exist."""
        self.results = ResultsFile(self.results_path, lambda: self.store.trials(self.name), self._note)
        self.evaluator = Evaluator(self.ws, self.portfolio_name, self.store, self.name,
                                   backend_factory=self.backend_factory, retries=self.retries,
                                   backoff_s=self.backoff_s, emit=self._emit, session_calls=self.session_calls,
                                   proposer_seeds=proposer_seeds(self.seed),
                                   proposer=self.proposer,
                                   prunes=not isinstance(self.pruner, optuna.pruners.NopPruner),
                                   replies=self.replies)
        self.recovery = Recovery(store=self.store, repo=repo, optuna_study=self.optuna, study=self.name,
                                 branch=self.branch, incumbents=self.incumbents, results=self.results,
                                 energy_weight=self.energy_weight, note=self._note,
                                 optuna_storage=safe_url(self.storage).removeprefix("sqlite:///"))
        self.portfolios = PortfolioHistory(self.ws, self.portfolio_name, self.store, self.name, repo, self._note)
        self.race = Race(self.evaluator, self.rule, self.search_tasks, self.holdout_tasks)
        self.log = TrialLog(self.store, self.name, self.results, self.recovery, self.incumbents, self._emit)
        self.baseline = Baseline(ws=self.ws, settings=self.settings, store=self.store, study=self.name, repo=repo,
                                 evaluator=self.evaluator, log=self.log, incumbents=self.incumbents,
                                 recovery=self.recovery, worker=self.worker, search_tasks=self.search_tasks,
                                 prompts=self.prompts, operators=[op.name for op in self.operators],
                                 emit=self._emit, note=self._note)
        self.proposing = TrialProposer(store=self.store, incumbents=self.incumbents, evaluator=self.evaluator,
                                       log=self.log, operators=self.operators, prompts=self.prompts,
                                       dimensions=tuple(d.name for d in self.ws.rubric.dimensions), rng=self.rng)
        self.keeper = Keeper(store=self.store, study=self.name, portfolio=self.portfolio_name, worker=self.worker,
                             incumbents=self.incumbents, evaluator=self.evaluator, race=self.race, log=self.log,
                             search_tasks=self.search_tasks, prompts=self.prompts, energy_weight=self.energy_weight,
                             moved=self.baseline.moved_during_run)
        self.forecast = RunForecast(self.store, self.name, self.session_calls, self._confirm_sets,
                                    self._reused_shares, self._emit,
                                    made=self.forecast.made if self.forecast is not None else None)
        self.runner = TrialRunner(settings=self.settings, store=self.store, study=self.name, worker=self.worker,
                                  search_tasks=self.search_tasks, incumbents=self.incumbents,
                                  evaluator=self.evaluator, proposing=self.proposing, race=self.race,
                                  keeper=self.keeper, log=self.log, pruner=self.pruner, emit=self._emit)

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
        return strategies.create_optuna_study(self.name, lambda: self.incumbents.optuna_storage(self.storage),
                                              self.sampler, self.pruner, retry=self.incumbents.retry_create,
                                              rng=self.rng)

    def _ask(self, distributions: dict[str, Any] | None = None) -> optuna.Trial:
        return self.incumbents.ask(self.optuna, distributions)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        """Pass an event on to the observer; a finished trial is also counted (a shared worker's table)."""
        if kind == "trial_finished" and self.incumbents is not None:
            self.incumbents.trial_finished()
        self.observer(kind, data)

    def _trials(self, n_trials: int | None, timeout_s: float | None, plateau: int | None,
                so_far: RunSoFar) -> StudySummary:
        outcomes, commits, started = so_far.outcomes, so_far.commits, so_far.started  # (before a database outage too)
        if so_far.first is None:
            so_far.first = 1 + max((row["number"] for row in self.store.trials(self.name)), default=-1)
        streaks = FailureStreaks(self.settings.search.max_consecutive_failed)  # stop when trials keep failing
        stop_reason, message = StopReason.TRIALS, ""
        rebased_at = None  # len(outcomes) when the models last changed during the run
        incumbent = self.incumbents.current()
        try:
            edited = self.baseline.edited_since(incumbent) if incumbent is not None else None
            if edited:  # the user's own commit on the study branch: the start of what follows, never overwritten
                self._note(edited)
            changed = self.models.changed_since(incumbent) if incumbent is not None and not edited else None
            if changed:  # another model (or build) under the same name: the stored scores are not its
                self._note(changed)
            if incumbent is None or edited or changed:
                if incumbent is None and self.warm_start:
                    self.portfolios.warm_start()
                incumbent = self._baseline()
                if incumbent is None:  # the baseline itself failed: nothing to compare variants with
                    stop_reason, message = self._baseline_failed()
            self.forecast.run_started(incumbent, n_trials, timeout_s)
            while incumbent is not None:
                incumbent = self.incumbents.refresh(incumbent)  # another worker's keep?
                if n_trials is not None and len(outcomes) >= n_trials:
                    stop_reason = StopReason.TRIALS
                    break
                if timeout_s is not None and time.monotonic() - started >= timeout_s:
                    stop_reason = StopReason.TIMEOUT
                    break
                if plateau is not None and self.incumbents.since_keep() >= plateau:  # every worker's trials
                    stop_reason = StopReason.PLATEAU
                    break
                if self.stop_requested:
                    stop_reason = self.stop_requested
                    break
                moved = self.baseline.moved_during_run(incumbent)  # no trial whose keep could not be committed
                if moved:
                    stop_reason, message = StopReason.HEAD_MOVED, moved
                    break
                swapped = self.models.swapped()  # an `ollama pull` by a timer, a server reloaded with another model
                if swapped and rebased_at == len(outcomes):  # again, with no trial between: nothing would compare
                    stop_reason, message = StopReason.MODELS_CHANGING, changing_message(swapped)
                    break
                if swapped:
                    self._note(swap_note(swapped, self.incumbents.shared))
                    if self.replies is not None:  # the old models' replies are not the new ones'
                        self.replies.clear()
                    rebased_at = len(outcomes)
                    if not self.incumbents.shared:  # a shared study's incumbent is the ledger's, scored again here
                        incumbent = self._baseline()
                        if incumbent is None:
                            stop_reason, message = self._baseline_failed()
                        continue
                outcome, incumbent = self._run_trial(incumbent)
                outcomes.append(outcome)
                self.forecast.trial_finished(incumbent, n_trials, timeout_s, time.monotonic() - started, len(outcomes))
                if outcome.commit:
                    commits.append((outcome.commit, self.repo.repo.commit(outcome.commit).summary))
                stop = streaks.add(outcome.status, self.evaluator.trial_calls())
                if stop is not None:
                    stop_reason, message = self.evaluator.down(*stop)
                    break
        except Terminated:
            stop_reason = StopReason.TERMINATED
        except HeadMoved as exc:  # at a keep's commit: the trial is closed, nothing committed
            stop_reason, message = StopReason.HEAD_MOVED, str(exc)
        except KeyboardInterrupt:
            stop_reason = StopReason.INTERRUPTED
        except (sqlalchemy.exc.OperationalError, optuna.exceptions.StorageInternalError) as exc:
            # Optuna wraps a lost connection met inside its own session in StorageInternalError ("…invalid data
            # in the commit…"); the OperationalError it came from says what happened.
            lost = exc if isinstance(exc, sqlalchemy.exc.OperationalError) else exc.__cause__
            if not isinstance(lost, sqlalchemy.exc.OperationalError) or not self.incumbents.storage_fault(lost):
                raise
            # The shared database went away: finished trials are safe (here and there); stop with one line (unless
            # optimize() waits for it and resumes).
            stop_reason = StopReason.STORAGE_DOWN
            so_far.database_lost(str(lost.orig or lost), self.store.trials(self.name),  # the local store, still there
                                 lambda sha: self.repo.repo.commit(sha).summary)
            message = (f"the study's database at {safe_url(self.storage)} is unreachable ({so_far.storage_lost}) — "
                       "run the same command to resume once it is back")
        return self._summary(stop_reason, message, outcomes, commits, incumbent)

    def _summary(self, stop_reason: StopReason, message: str, outcomes: list[TrialOutcome],
                 commits: list[tuple[str, str]], incumbent: Incumbent | None) -> StudySummary:
        comparison = [row for row in (self.portfolios.row(name) for name in
                                      (self.name, self.portfolios.previous_study_name())) if row is not None]
        summary = summarize(self.store, self.name, self.branch, stop_reason=stop_reason, message=message,
                            outcomes=outcomes, commits=commits, incumbent=incumbent,
                            session_calls=self.session_calls, notes=self.notes, energy_weight=self.energy_weight,
                            comparison=comparison, worker=self.incumbents.worker,
                            pareto_tsv=self.ws.runs_dir / "pareto.tsv")
        summary.forecast = self.forecast.check(outcomes)
        if stop_reason != StopReason.STORAGE_DOWN:  # with the study's database gone there is nothing to ask
            summary.queued_follow_ups = near_miss.waiting(self.optuna)
        return summary

    def _reused_shares(self) -> dict[str, float]:
        """What share of each role's calls a trial is expected to reuse (forecast.reused_shares): none where the
        planner's engine gets no reply cache (pipeline/harness.reuses_replies)."""
        planner = self._backend_of(self.portfolio.role("planner"), self.settings.backends)
        return reused_shares(self.settings.workspace.optimizable,
                             self.replies is not None and reuses_replies(planner))

    def _baseline_failed(self) -> tuple[StopReason, str]:
        """The stop when a baseline failed: nothing to compare variants with."""
        return self.evaluator.down("the baseline failed", [self.evaluator.trial_calls()])

    def _backend_of(self, config, backends):
        return backend_of(config, backends, self.backend_factory)

    def request_stop(self, reason: StopReason = StopReason.STOPPED) -> None:
        """Finish the trial in progress, then stop (the CLI's first Ctrl-C, or the terminal closing)."""
        self.stop_requested = reason

    # --- trials --------------------------------------------------------------------------------

    def _baseline(self) -> Incumbent | None:
        """The committed instructions' trial (search/baseline.py); None when too many tasks failed."""
        return self.baseline.run(self._ask(), self.optuna)

    def _run_trial(self, incumbent: Incumbent) -> tuple[TrialOutcome, Incumbent]:
        """One trial; Ctrl-C abandons it cleanly: "interrupted" in the store, failed in Optuna, nothing committed."""
        trial = self._ask(strategies.distributions(self.settings, [op.name for op in self.operators]))
        try:
            return self.runner.run(trial, incumbent)
        except KeyboardInterrupt:
            self.recovery.abandon(trial.number)
            raise
        except HeadMoved:
            self.recovery.abandon_quietly(trial.number,
                                          "passed the keep rule, not committed: HEAD moved during the run")
            raise
        except Exception as exc:  # an error ends the run; the trial is closed now, not at the next start
            self.recovery.abandon_quietly(trial.number, f"stopped by an error: {type(exc).__name__}")
            raise

    # --- helpers -------------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self._emit("note", {"text": text})
