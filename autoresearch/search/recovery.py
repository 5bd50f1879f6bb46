"""Start-up recovery after a killed run, and results.tsv rows written once: the Study's crash safety."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from optuna.trial import TrialState

from ..errors import WorkspaceError
from ..store import STORE_NAME, Store
from ..store.queries import incumbent_before
from ..store.statuses import SCORED_STATUSES, TrialStatus
from ..workspace.versioning import InstructionRepo, dirty_message, write_atomic
from .results import COLUMNS, objective, row_objective, tsv_line


class RecoveryMixin:
    """The Study's methods that make git, the store, results.tsv and Optuna agree after a kill.

    Kept apart from the loop so each file reads as one concern; they use the Study's state (store,
    repo, optuna, name, branch) and are only ever called by it.
    """

    def _recover_instruction_files(self, repo: InstructionRepo, crashed: bool) -> None:
        """Instruction files that differ from HEAD: restored when a killed run left them so, else refused.

        Only a stale run lock (a run was killed) together with the store's record of the texts the loop
        evaluated proves that autoresearch wrote them (mid-commit or mid-checkout); anything else is the
        user's edit, which is never touched.
        """
        dirty = repo.dirty_instructions()
        if not dirty:
            return
        if crashed and (self.ws.runs_dir / STORE_NAME).exists():
            self.store = self.store or Store.for_workspace(self.ws.runs_dir)
            ours = self.store.instruction_texts()
            if all(self._written_by_us(repo, rel, ours) for rel in dirty):
                repo.restore_paths(dirty)
                self._note(f"restored {', '.join(dirty)} to HEAD: the stopped run left it half-committed")
                return
        raise WorkspaceError(dirty_message(dirty))

    @staticmethod
    def _written_by_us(repo: InstructionRepo, rel: str, ours: set[str]) -> bool:
        try:
            head = repo.read_head(rel)
        except (KeyError, WorkspaceError):
            head = None
        texts = (repo.worktree_text(rel), repo.index_text(rel))
        return all(t is not None and (t == head or t in ours) for t in texts)

    def _reconcile(self) -> None:
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
                self._complete_keep(row, sha)
                self._note(f"trial {number}: committed as {sha[:10]} before the run stopped; recorded as keep")
            elif status == TrialStatus.KEEP and sha != row["commit_sha"]:
                if sha:  # the branch was rewritten (rebased): its commit is the one that counts
                    self.store.update_trial(name, number, commit_sha=sha)
                else:
                    self.store.finish_trial(name, number, TrialStatus.INTERRUPTED, commit_sha=None,
                                            note=f"kept, but its commit {(row['commit_sha'] or '')[:10]} is not on "
                                                 f"{self.branch}")
                    self._note(f"trial {number}: its commit is not on {self.branch}; marked interrupted")
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
            self._tell(row)
        self._sync_results()

    def _complete_keep(self, row, sha: str) -> None:
        """Record a committed trial as keep; figures missing from its row come from its evaluations."""
        fields: dict[str, Any] = {"commit_sha": sha}
        if row["composite"] is None:
            evaluations = self.store.trial_evaluations(self.name, row["number"])
            search = [e for e in evaluations if e["kind"] in ("trial", "baseline") and e["composite"] is not None]
            holdout = [e for e in evaluations if e["kind"] == "holdout" and e["composite"] is not None]
            if search:
                e = search[-1]
                before = self._objective_before(row["number"])
                value = objective(e["composite"], e["joules"] or 0.0, len(self.store.task_results(e["id"])),
                                  self.settings.scoring.energy_weight)
                fields.update(composite=e["composite"], judge_mean=e["judge_mean"], criteria_rate=e["criteria_rate"],
                              evaluation_id=e["id"], energy_source=e["energy_source"], incumbent_before=before,
                              objective=value, delta=None if before is None else value - before)
            if holdout:
                fields.update(holdout_composite=holdout[-1]["composite"], holdout_evaluation_id=holdout[-1]["id"])
            fields["joules"] = sum(e["joules"] or 0.0 for e in evaluations)
        if not row["note"]:
            fields["note"] = row["idea"] or ""
        self.store.finish_trial(self.name, row["number"], TrialStatus.KEEP, **fields)

    def _objective_before(self, number: int) -> float | None:
        """The objective of the incumbent a trial was judged against (the composite at energy_weight 0)."""
        row = incumbent_before(self.store.trials(self.name), number)
        return row_objective(row) if row is not None else None

    def _abandon(self, number: int, note: str = "stopped by the user") -> None:
        """A trial stopped by Ctrl-C: interrupted unless it had finished; Optuna told; nothing committed."""
        row = self.store.trial(self.name, number)
        if row is None:
            self.store.begin_trial(self.name, number)
        if row is None or row["status"] == TrialStatus.RUNNING:
            self.store.finish_trial(self.name, number, TrialStatus.INTERRUPTED, note=note)
        row = self.store.trial(self.name, number)
        self._write_result(row)
        self._tell(row)

    def _abandon_quietly(self, number: int, note: str) -> None:
        """_abandon for a trial an error stopped; if that fails too (a broken store), the next start does it."""
        try:
            with deferred_sigint():
                self._abandon(number, note)
        except Exception:  # noqa: BLE001 - the error that stopped the trial is the one to report
            pass

    def _tell(self, row) -> None:
        """Tell Optuna how a trial ended, if it does not know yet: the one mapping of store status to state."""
        number, status = row["number"], row["status"]
        trial = next((t for t in self.optuna.get_trials(deepcopy=False) if t.number == number), None)
        if trial is None or trial.state != TrialState.RUNNING:
            return
        evaluated = row["composite"] is not None and (status != TrialStatus.DISCARD or row["evaluation_id"] is not None)
        if status in SCORED_STATUSES and evaluated:
            self.optuna.tell(number, row_objective(row))  # what the keep rule compared
        elif status in (TrialStatus.PRUNED, TrialStatus.DISCARD):  # a discard not evaluated is an identical twin of an earlier one
            self.optuna.tell(number, state=TrialState.PRUNED)
        else:
            self.optuna.tell(number, state=TrialState.FAIL)

    # --- results.tsv ---------------------------------------------------------------------------

    def _sync_results(self) -> None:
        """Repair a row cut off by a kill and append the rows of finished trials that are missing."""
        path = self.results_path
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                data = data[: data.rfind(b"\n") + 1]
                write_atomic(path, data.decode("utf-8", errors="replace"))
                self._note(f"{path}: removed a row cut off by the stopped run")
            if not data.strip():
                path.unlink()  # created, then killed before anything was written: start it afresh
        self._tsv_lines = set(path.read_text(encoding="utf-8").splitlines()[1:]) if path.exists() else set()
        for row in self.store.trials(self.name):
            if row["status"] != TrialStatus.RUNNING:
                self._write_result(row)

    def _write_result(self, row) -> None:
        """Append a finished trial's row to results.tsv once: a row already there is not written again."""
        if self._tsv_lines is None:
            self._sync_results()
        line = tsv_line(row)
        if line in self._tsv_lines:
            return
        path = self.results_path
        header = "\t".join(COLUMNS) + "\n" if not path.exists() or path.stat().st_size == 0 else ""
        with path.open("a", encoding="utf-8") as f:
            f.write(header + line + "\n")  # one write: a kill leaves a whole row or a cut one (repaired on start)
        self._tsv_lines.add(line)


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, so a keep is never half-made; a no-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:  # deliver the held Ctrl-C to whoever was handling it before
            if callable(previous):
                previous(signal.SIGINT, None)
            else:
                raise KeyboardInterrupt
