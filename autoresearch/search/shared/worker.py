"""One worker of a shared study: the incumbent comes from the ledger, a keep is a compare-and-set, and the
commit of every accepted improvement reaches the shared git remote exactly once.

The supported set-up: every worker has its own clone of one repository, and every clone has a remote
(`origin` unless --remote says otherwise) that all workers can push to, a bare repository on a shared
path or an ssh URL. The study branch (autoresearch/<study>) lives on that remote. A worker without the
remote is refused; two workers in one workspace are refused by its run lock.

The order of a keep: insert incumbent version v + 1 (the compare-and-set; the losers stop here), commit on
the local branch brought up to the remote's tip, record the commit, end the transaction, push. A worker
stopped between its transaction and its push leaves the ledger one keep ahead of the remote; the next
worker to keep replays that commit from the ledger (its message and text are stored there) first, so the
remote's history stays linear with one commit per keep.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from ...errors import WorkspaceError
from ...workspace.config import ROLES, Portfolio
from ...workspace.versioning import STUDY_TRAILER, TRIAL_TRAILER, InstructionRepo
from ...workspace.workspace import INSTRUCTIONS_DIR
from ..knobs import knob_files
from .ledger import KeepRecord, Ledger, LostRace, safe_url

# How long a keeper waits for the previous keeper's push before replaying it: that push normally follows
# its transaction by milliseconds; a ledger version older than this without its commit was never pushed.
PUSH_GRACE_S = 30.0
# Optuna's trial heartbeat: a trial whose worker has not beaten for TRIAL_GRACE_S (its machine died) is
# failed by the next worker that asks for a trial, so the study's trial count stays whole.
TRIAL_HEARTBEAT_S = 60
TRIAL_GRACE_S = 600
# RoleConfig fields that change scores; base_url, keep_alive, n_threads and the backend are where and how a
# worker runs the model, which may differ from machine to machine.
SCORING_FIELDS = ("model", "temperature", "max_tokens", "top_p", "seed", "n_ctx")


def scoring_identity(portfolio: Portfolio) -> dict[str, Any]:
    """Per role, the settings that make two workers' scores comparable (repeat_penalty only where set, so a
    study created before it existed still admits its workers)."""
    identity: dict[str, Any] = {}
    for role in ROLES:
        config = portfolio.role(role)
        identity[role] = {f: getattr(config, f) for f in SCORING_FIELDS}
        if config.repeat_penalty is not None:
            identity[role]["repeat_penalty"] = config.repeat_penalty
    return identity


class SharedWorker:
    """This process's side of a shared study: its ledger, its remote and its heartbeat."""

    def __init__(self, ledger: Ledger, repo: InstructionRepo, *, remote: str, branch: str, worker: str,
                 workspace: str, portfolio: str, note: Callable[[str], None],
                 models: Callable[[], str | None] = lambda: None):
        self.ledger, self.repo, self.remote, self.branch = ledger, repo, remote, branch
        self.worker, self.workspace, self.portfolio = worker, workspace, portfolio
        self.note = note
        self.models = models  # the identity its scores come from now (Store.models), for the workers table
        self.trials = self.keeps = 0
        self.state = "running"  # what the workers table shows; the last beat of a run says why it stopped

    def check_remote(self) -> None:
        """Refuse a workspace whose repository cannot meet the other workers at a shared remote."""
        url = self.repo.remote_url(self.remote)
        if url is None:
            raise WorkspaceError(
                f"{self.repo.root}: a study shared through --storage needs a git remote that every worker can push "
                f"to, and this repository has no remote {self.remote!r} (git remote add {self.remote} URL, or "
                "--remote NAME); workers sharing one directory are not supported: give each its own clone")

    def sync(self) -> str | None:
        """Bring the local study branch to the remote's tip (nothing to do when the remote lacks it)."""
        tip = self.repo.fetch_branch(self.remote, self.branch)
        if tip is not None:
            self.repo.move_branch_to(tip)
        return tip

    def push_pending(self) -> None:
        """At start-up, before sync: push this clone's keep that was recorded but never pushed (the run
        stopped, or the network failed), so that moving to the remote's tip does not drop it. If the remote
        moved on meanwhile (another worker replayed it), the push is refused and sync takes the replay."""
        keeps = self.ledger.keeps()
        latest = keeps[-1] if keeps else None
        if latest is None or latest.version == 0 or not self._holds(self.repo.head_sha(), latest):
            return
        if self.repo.fetch_branch(self.remote, self.branch) == self.repo.head_sha():
            return
        try:
            self.repo.push(self.remote, self.branch)
            self.note(f"pushed trial {latest.trial}, kept by this worker's previous run but not pushed then")
        except WorkspaceError:
            pass

    # --- the incumbent -------------------------------------------------------------------------

    def claim_baseline(self, record: KeepRecord) -> KeepRecord:
        """Make this worker's baseline version 0, unless another worker's already is; the study's version 0."""
        try:
            with self.ledger.claim(record) as claim:
                self.sync()
                claim.set_commit(self.repo.head_sha())
                self.repo.push(self.remote, self.branch)  # the branch every keep builds on
        except LostRace:
            pass
        current = self.ledger.keeps()
        return current[0]

    def commit_keep(self, record: KeepRecord, rel: str) -> str:
        """Claim version record.version and commit it; LostRace when another worker kept first."""
        before = None
        try:
            with self.ledger.claim(record) as claim:
                self._catch_up(claim, record.version - 1)
                before = self.repo.head_sha()
                commit = self.repo.commit_instruction(rel, record.instructions[record.file], record.subject,
                                                      record.trailers, knob_files(record.knobs))
                claim.set_commit(commit.sha)
        except BaseException:
            if before is not None and self.repo.head_sha() != before:
                self.repo.move_branch_to(before)  # the claim was rolled back, so its commit goes too
            raise
        self.keeps += 1
        try:
            self.repo.push(self.remote, self.branch)
        except WorkspaceError as exc:  # kept all the same: the next keeper replays the commit
            self.note(f"trial {record.trial}: kept, but not pushed yet ({exc}); the next keep pushes it")
        return commit.sha

    def _catch_up(self, claim, version: int) -> None:
        """Make the local branch the remote's tip with incumbent `version` committed on it, replaying a keep
        whose worker stopped before its push."""
        keeps = {k.version: k for k in self.ledger.keeps()}
        latest = keeps[version]
        deadline = time.monotonic() + PUSH_GRACE_S + 30
        while True:
            tip = self.sync()
            if self._holds(tip, latest):
                return
            previous = keeps.get(version - 1)
            if version == 0 or previous is None or not self._holds(tip, previous):
                raise WorkspaceError(
                    f"{self.remote}/{self.branch} ({(tip or 'missing')[:10]}) is not where study "
                    f"{self.ledger.study} left it (version {version}, trial {latest.trial}, commit "
                    f"{(latest.commit_sha or '?')[:10]}): the branch was changed outside autoresearch")
            if time.time() - latest.created_at < PUSH_GRACE_S and time.monotonic() < deadline:
                time.sleep(1.0)  # its worker is most likely pushing right now
                continue
            commit = self.repo.commit_instruction(f"{INSTRUCTIONS_DIR}/{latest.file}", latest.instructions[latest.file],
                                                  latest.subject, latest.trailers, knob_files(latest.knobs))
            try:
                self.repo.push(self.remote, self.branch)
            except WorkspaceError:
                if time.monotonic() > deadline:
                    raise
                continue  # someone else pushed it meanwhile: fetch again
            claim.set_commit(commit.sha, version=version)
            self.note(f"trial {latest.trial} of worker {latest.worker} was kept but never pushed; "
                      f"pushed it as {commit.sha[:10]}")
            return

    def _holds(self, tip: str | None, record: KeepRecord) -> bool:
        """Whether the remote's tip is the commit of this incumbent version (or a replay of it)."""
        if tip is None:
            return False
        if tip == record.commit_sha:
            return True
        if record.version == 0:
            return False
        trailers = self.repo.trailers(tip)
        return (trailers.get(STUDY_TRAILER) == self.ledger.study
                and trailers.get(TRIAL_TRAILER) == str(record.trial))

    # --- the heartbeat ---------------------------------------------------------------------------

    def beat(self, *, quiet: bool = False) -> None:
        """Tell the workers table this worker is alive, with its counts and state."""
        try:
            self.ledger.heartbeat(self.worker, workspace=self.workspace, portfolio=self.portfolio,
                                  trials=self.trials, keeps=self.keeps, state=self.state, models=self.models())
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat must not stop a night's work
            if not quiet:
                self.note(f"heartbeat to {safe_url(self.ledger.url)} failed: {type(exc).__name__}")


class Pulse:
    """While a shared run lasts, a background thread calls `beat` every interval, so that a worker busy
    with one long model call still shows as alive (to Optuna for its trial, to `autoresearch status`)."""

    def __init__(self, interval_s: float, beat: Callable[[], None]):
        self.interval_s, self.beat = interval_s, beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autoresearch-heartbeat", daemon=True)

    def __enter__(self) -> "Pulse":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - the next beat tries again; the run itself must go on
                pass
