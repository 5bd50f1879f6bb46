"""Start-up recovery after a killed run, and the closing of trials a stop abandons: the Study's crash safety."""

from __future__ import annotations

import json
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

import optuna
from optuna.trial import TrialState

from ..errors import WorkspaceError
from ..store import STORE_NAME, Store
from ..store.queries import incumbent_before
from ..store.statuses import NO_VARIANT, SCORED_STATUSES, TrialStatus
from ..workspace.versioning import InstructionRepo, dirty_message
from ..workspace.workspace import Workspace
from .results import ResultsFile, objective, row_objective

if TYPE_CHECKING:
    from .incumbents import LocalIncumbents


def recover_instruction_files(workspace: Workspace, repo: InstructionRepo, crashed: bool, store: Store | None,
                              note: Callable[[str], None]) -> Store | None:
    """Instruction files that differ from HEAD: restored when a killed run left them so, else refused.

    Only a stale run lock (a run was killed) together with the store's record of the texts the loop
    evaluated proves that autoresearch wrote them (mid-commit or mid-checkout); anything else is the
    user's edit, which is never touched.
    """
    dirty = repo.dirty_instructions()
    if not dirty:
        return store
    if crashed and (workspace.runs_dir / STORE_NAME).exists():
        store = store or Store.for_workspace(workspace.runs_dir)
        ours = store.instruction_texts()
        if all(_written_by_us(repo, rel, ours) for rel in dirty):
            repo.restore_paths(dirty)
            note(f"restored {', '.join(dirty)} to HEAD: the stopped run left it half-committed")
            return store
    raise WorkspaceError(dirty_message(dirty))


def _written_by_us(repo: InstructionRepo, rel: str, ours: set[str]) -> bool:
    try:
        head = repo.read_head(rel)
    except (KeyError, WorkspaceError):
        head = None
    texts = (repo.worktree_text(rel), repo.index_text(rel))
    return all(t is not None and (t == head or t in ours) for t in texts)


class Recovery:
    """Makes git, the store, results.tsv and Optuna agree after a kill, and closes the trials a stop abandons."""

    def __init__(self, *, store: Store, repo: InstructionRepo, optuna_study: optuna.Study, study: str, branch: str,
                 incumbents: LocalIncumbents, results: ResultsFile, energy_weight: float,
                 note: Callable[[str], None], optuna_storage: str = "Optuna's storage"):
        self.store, self.repo, self.optuna, self.name, self.branch = store, repo, optuna_study, study, branch
        self.optuna_path = optuna_storage  # where Optuna keeps the study, as a user may read it (no password)
        self.incumbents, self.results, self.energy_weight, self.note = incumbents, results, energy_weight, note

    def reconcile(self) -> None:
        """Make the store, results.tsv and Optuna agree with git after a run that was killed.

        git is the source of truth for keeps: a commit of this study whose trial is not recorded as keep
        is completed as keep (its evaluation is already in the store); a keep whose commit is not on the
        study branch never happened and becomes interrupted. Trials left running become interrupted,
        finished trials Optuna was not told about are told, and missing results.tsv rows are appended.
        """
        name = self.name
        commits = self.repo.study_commits(self.branch, name)
        for row in self.store.trials(name):
            number, status = row["number"], row["status"]
            sha = commits.get(number)
            if sha and status != TrialStatus.KEEP:
                self.complete_keep(row, sha)
                self.note(f"trial {number}: committed as {sha[:10]} before the run stopped; recorded as keep")
            elif status == TrialStatus.KEEP and sha != row["commit_sha"]:
                if sha:  # the branch was rewritten (rebased): its commit is the one that counts
                    self.store.update_trial(name, number, commit_sha=sha)
                else:
                    self.store.finish_trial(name, number, TrialStatus.INTERRUPTED, commit_sha=None,
                                            note=f"kept, but its commit {(row['commit_sha'] or '')[:10]} is not on "
                                                 f"{self.branch}")
                    self.note(f"trial {number}: its commit is not on {self.branch}; marked interrupted")
            elif status == TrialStatus.RUNNING:
                self.store.finish_trial(name, number, TrialStatus.INTERRUPTED, note="abandoned by a stopped run")
        self.store.interrupt_evaluations(name)
        for t in self.optuna.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not self.incumbents.owns(t):
                continue  # another worker's trial, most likely running right now
            row = self.store.trial(name, t.number)
            if row is None:  # asked for, then killed before it was recorded: keep the numbers contiguous
                self.store.begin_trial(name, t.number)
                self.store.finish_trial(name, t.number, TrialStatus.INTERRUPTED, note="abandoned by a stopped run")
                row = self.store.trial(name, t.number)
            self.tell(row)
        self.results.sync()

    def complete_keep(self, row, sha: str) -> None:
        """Record a committed trial as keep; figures missing from its row come from its evaluations."""
        fields: dict[str, Any] = {"commit_sha": sha}
        if row["composite"] is None:
            evaluations = self.store.trial_evaluations(self.name, row["number"])
            search = [e for e in evaluations if e["kind"] in ("trial", "baseline") and e["composite"] is not None]
            holdout = [e for e in evaluations if e["kind"] == "holdout" and e["composite"] is not None]
            if search:
                e = search[-1]
                before = self.objective_before(row["number"])
                value = objective(e["composite"], e["joules"] or 0.0, len(self.store.task_results(e["id"])),
                                  self.energy_weight)
                fields.update(composite=e["composite"], judge_mean=e["judge_mean"], criteria_rate=e["criteria_rate"],
                              evaluation_id=e["id"], energy_source=e["energy_source"], incumbent_before=before,
                              objective=value, delta=None if before is None else value - before)
            if holdout:
                fields.update(holdout_composite=holdout[-1]["composite"], holdout_evaluation_id=holdout[-1]["id"])
            fields["joules"] = sum(e["joules"] or 0.0 for e in evaluations)
        if not row["note"]:
            fields["note"] = row["idea"] or ""
        self.store.finish_trial(self.name, row["number"], TrialStatus.KEEP, **fields)

    def objective_before(self, number: int) -> float | None:
        """The objective of the incumbent a trial was judged against (the composite at energy_weight 0)."""
        row = incumbent_before(self.store.trials(self.name), number)
        return row_objective(row) if row is not None else None

    def abandon(self, number: int, note: str = "stopped by the user") -> None:
        """A trial stopped by Ctrl-C: interrupted unless it had finished; Optuna told; nothing committed."""
        row = self.store.trial(self.name, number)
        if row is None:
            self.store.begin_trial(self.name, number)
        if row is None or row["status"] == TrialStatus.RUNNING:
            self.store.finish_trial(self.name, number, TrialStatus.INTERRUPTED, note=note)
        row = self.store.trial(self.name, number)
        self.results.write(row)
        self.tell(row)

    def abandon_quietly(self, number: int, note: str) -> None:
        """_abandon for a trial an error stopped; if that fails too (a broken store), the next start does it."""
        try:
            with deferred_signals():
                self.abandon(number, note)
        except Exception:  # noqa: BLE001 - the error that stopped the trial is the one to report
            pass

    def tell(self, row) -> None:
        """Tell Optuna how a trial ended, if it does not know yet."""
        number = row["number"]
        trial = next((t for t in self.optuna.get_trials(deepcopy=False) if t.number == number), None)
        if trial is None or trial.state != TrialState.RUNNING:
            return
        state, value = optuna_outcome(row)
        if value is None:
            self.optuna.tell(number, state=state)
        else:
            self.optuna.tell(number, value)

    def give_optuna_back_its_trials(self, distributions: dict[str, Any],
                                    screens: Callable[[], dict[int, dict[int, float]]]) -> None:
        """Where this worker's Optuna study lacks trials the store holds (runs/optuna.db deleted, or replaced by
        an older copy), add them back in order: trial numbers go on agreeing, and the sampler learns from them
        again (screens: per trial, the values its whole screen told the pruner, by step). A shared study's
        Optuna is the study's own record, never rebuilt from one worker's store."""
        if self.incumbents.worker is not None:
            return
        known = len(self.optuna.get_trials(deepcopy=False))
        missing = [row for row in self.store.trials(self.name) if row["number"] >= known]
        if not missing:
            return
        if [row["number"] for row in missing] != list(range(known, known + len(missing))):
            raise WorkspaceError(f"{self.optuna_path}: it knows {known} trials of study {self.name}, and the store's "
                                 f"next are not {known}, {known + 1}, …; restore it, or move runs/ aside to start over")
        told = screens()
        for row in missing:
            params = json.loads(row["params_json"] or "{}")
            state, value = optuna_outcome(row)
            outcome = {"state": state, "value": value, "intermediate_values": told.get(row["number"], {})}
            try:
                trial = optuna.trial.create_trial(params=params, distributions={k: distributions[k] for k in params},
                                                  **outcome)
            except (KeyError, ValueError):  # params outside today's search space: the outcome alone
                trial = optuna.trial.create_trial(params={}, distributions={}, **outcome)
            self.optuna.add_trial(trial)
        self.note(f"Optuna's record of this study lacked trials {known}–{known + len(missing) - 1} ({self.optuna_path}"
                  f" deleted or replaced?): given back from the store, so the sampler learns from them again")


def optuna_outcome(row) -> tuple[TrialState, float | None]:
    """The Optuna state and value of a trial's recorded outcome: the one mapping of store status to state.

    A trial whose proposer gave no usable variant is told as pruned without a value, as an identical twin's discard
    is: TPE ranks such trials below every scored and screened one, so a recipe (file, operator, parent,
    temperature) that keeps giving junk is sampled less. Told as failed, TPE would not see it at all, and sample
    that recipe as often as ever (a 120-trial run on SmolLM2: 12 of its 22 add_boundary trials failed so). A
    trial failed by a backend (a server down, tasks failed) says nothing of its recipe, and stays failed."""
    status = row["status"]
    evaluated = row["composite"] is not None and (status != TrialStatus.DISCARD or row["evaluation_id"] is not None)
    if status in SCORED_STATUSES and evaluated:
        return TrialState.COMPLETE, row_objective(row)  # what the keep rule compared
    if status in (TrialStatus.PRUNED, TrialStatus.DISCARD):  # a discard not evaluated is an identical twin of an earlier one
        return TrialState.PRUNED, None
    if status == TrialStatus.FAILED and "failure" in row.keys() and row["failure"] == NO_VARIANT:
        return TrialState.PRUNED, None
    return TrialState.FAIL, None


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and the stop signal of kill, systemd and schedulers


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends, so a keep is never half-made (a no-op off the main
    thread).

    SIGHUP (the terminal closed) is held only where nothing handles it, so that it would end the process: the
    CLI's handler moves the output off the closed terminal, which cannot wait (every write there fails), and
    stops a run only after its trial."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = HELD_SIGNALS + ((signal.SIGHUP,) if signal.getsignal(signal.SIGHUP) == signal.SIG_DFL else ())
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):  # deliver each held signal to whoever was handling it before
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif signum == signal.SIGINT:
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)  # no handler of ours: the signal's default, which ends the process
