"""The SQLite store under runs/: every evaluation, task result and model call, append-only."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .filesystem import network_filesystem
from .migrations import migrate
from .statuses import INCUMBENT_STATUSES, TrialStatus

if TYPE_CHECKING:
    from ..lm.calls import CallRecord
    from ..pipeline.harness import TaskResult

STORE_NAME = "autoresearch.db"
# Opening a store in WAL mode writes its shared-memory index (32 KiB) even to read; with less room than this,
# SQLite says only "disk I/O error".
_ROOM_TO_OPEN = 64 * 1024


def _no_room(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < _ROOM_TO_OPEN
    except OSError:
        return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# A trial whose evaluation lost no task to a backend fault (its score is the variant's, not the fault's).
_WITHOUT_FAILED_TASKS = (" AND evaluation_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM task_results r"
                         " WHERE r.evaluation_id = trials.evaluation_id AND r.failed = 1)")


class Store:
    """One connection to the store; each write is its own committed transaction."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # What answers the run's calls, and how its prompts are rendered (search/model_watch.py, as JSON): stamped
        # on every evaluation begun, and the only evaluations whose scores a run reuses (a twin, the incumbent's
        # scores, the noise, the front). None (the read side: log, show, report; eval): every evaluation's.
        self.models: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            # The write-ahead log needs every process on one host; a network share may have others (filesystem.py).
            self.network_fs = network_filesystem(self.path.parent)
            self.conn.execute(f"PRAGMA journal_mode={'DELETE' if self.network_fs else 'WAL'}")
            self.conn.execute("PRAGMA foreign_keys=ON")
            migrate(self.conn)
        except sqlite3.Error as exc:
            full = "; the disk is full: free some space and run the same command" if _no_room(self.path.parent) else ""
            raise StoreError(f"{self.path}: cannot open the store: {exc}{full}") from None

    @classmethod
    def for_workspace(cls, runs_dir: Path) -> "Store":
        return cls(runs_dir / STORE_NAME)

    def close(self) -> None:
        self.conn.close()

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.conn:
            cur = self.conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))
        return int(cur.lastrowid)

    def begin_evaluation(self, *, kind: str, portfolio: str, portfolio_json: str, instructions_hash: str,
                         evaluation_hash: str, split: str, study: str | None = None,
                         trial: int | None = None, variant_hash: str | None = None, repeat: int = 0) -> int:
        return self._insert("evaluations", dict(
            created_at=_now(), kind=kind, study=study, trial=trial, portfolio=portfolio,
            portfolio_json=portfolio_json, instructions_hash=instructions_hash,
            evaluation_hash=evaluation_hash, split=split, status="running", variant_hash=variant_hash,
            repeat=repeat, models=self.models,
        ))

    def adopt_unstamped(self, study: str) -> int:
        """Where none of a study's evaluations records its models (stores before m012), stamp them with the
        models now answering (Store.models), so that the study goes on reusing its scores; how many were."""
        if self.models is None or self.conn.execute(
                "SELECT 1 FROM evaluations WHERE study=? AND models IS NOT NULL LIMIT 1", (study,)).fetchone():
            return 0
        with self.conn:
            return self.conn.execute("UPDATE evaluations SET models=? WHERE study=? AND models IS NULL",
                                     (self.models, study)).rowcount

    def restamp(self, study: str, was: str | None) -> int:
        """Stamp the study's evaluations that record `was` (the same models, as an older autoresearch wrote their
        identity) with the models now answering (Store.models); how many were."""
        if self.models is None or was is None or was == self.models:
            return 0
        with self.conn:
            return self.conn.execute("UPDATE evaluations SET models=? WHERE study=? AND models=?",
                                     (self.models, study, was)).rowcount

    def latest_models(self, study: str) -> str | None:
        """The models that made the study's latest stamped evaluation in this store; None before any."""
        row = self.conn.execute("SELECT models FROM evaluations WHERE study=? AND models IS NOT NULL"
                                " ORDER BY id DESC LIMIT 1", (study,)).fetchone()
        return None if row is None else row["models"]

    def _trial_by_these_models(self) -> tuple[str, tuple[Any, ...]]:
        """by_these_models for a query of the trials table: its row's evaluation made by them."""
        models, by = self.by_these_models("m")
        return (f" AND EXISTS (SELECT 1 FROM evaluations m WHERE m.id = trials.evaluation_id{models})", by) \
            if models else ("", ())

    def by_these_models(self, alias: str = "e") -> tuple[str, tuple[Any, ...]]:
        """The SQL condition (" AND …", its parameters) that an evaluation (table alias `alias`) was made by the
        models now answering; nothing when they are not known (Store.models)."""
        return ("", ()) if self.models is None else (f" AND {alias}.models IS ?", (self.models,))

    def finish_evaluation(self, evaluation_id: int, *, status: str, composite: float | None,
                          judge_mean: float | None, criteria_rate: float | None, joules: float,
                          energy_source: str, seconds: float) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE evaluations SET status=?, composite=?, judge_mean=?, criteria_rate=?, joules=?,"
                " energy_source=?, seconds=?, finished_at=? WHERE id=?",
                (status, composite, judge_mean, criteria_rate, joules, energy_source, seconds, _now(), evaluation_id),
            )

    def record_call(self, evaluation_id: int | None, call: "CallRecord", *, study: str | None = None,
                    trial: int | None = None) -> int:
        return self._insert("calls", dict(
            evaluation_id=evaluation_id, study=study, trial=trial, task_id=call.task_id, role=call.role, backend=call.backend,
            model=call.model, prompt_hash=call.prompt_hash, prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens, latency_s=call.latency_s, load_s=call.load_s,
            joules=call.joules, load_joules=call.load_joules, energy_source=call.energy_source,
            attribution=call.attribution, status=call.status, seed=call.seed, dialect=call.dialect,
            failure_mode=call.failure_mode, error=call.error, response=call.response, reused=int(call.reused),
            request_key=call.request_key, finish_reason=call.finish_reason,
            created_at=_now(),
        ))

    def record_task(self, evaluation_id: int, result: "TaskResult") -> int:
        return self._insert("task_results", dict(
            evaluation_id=evaluation_id, task_id=result.task_id, split=result.split,
            score_r1=result.score_r1, score_final=result.score_final, revisions=result.revisions,
            dimensions_json=json.dumps(result.dimensions),
            criteria_json=json.dumps([c.__dict__ for c in result.checks]),
            criteria_passed=result.criteria_passed, criteria_total=len(result.checks),
            critique=result.critique, plan=result.plan, output=result.output, output_r1=result.output_r1,
            tokens=result.tokens, seconds=result.seconds, joules=result.joules,
            energy_source=result.energy_source, failed=int(result.failed), failure_mode=result.failure_mode,
            flags=",".join(result.flags),
        ))

    def variant_task_results(self, study: str, variant_hash: str, split: str, repeat: int) -> list[sqlite3.Row]:
        """Every task result of a variant's finished evaluations on a split under one seed set, oldest first
        (pruned evaluations count: their tasks were scored)."""
        models, by = self.by_these_models()
        return self.conn.execute(
            "SELECT t.* FROM task_results t JOIN evaluations e ON t.evaluation_id = e.id WHERE e.study=? AND "
            f"e.variant_hash=? AND e.split=? AND e.repeat=? AND e.status IN ('complete', 'pruned'){models} "
            "ORDER BY t.id", (study, variant_hash, split, repeat, *by)).fetchall()

    def evaluation(self, evaluation_id: int) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM evaluations WHERE id=?", (evaluation_id,)).fetchone()

    def calls(self, evaluation_id: int) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM calls WHERE evaluation_id=? ORDER BY id", (evaluation_id,)).fetchall()

    def task_results(self, evaluation_id: int) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM task_results WHERE evaluation_id=? ORDER BY id", (evaluation_id,)).fetchall()

    # --- studies and trials (m002) -------------------------------------------------------------

    def ensure_study(self, *, name: str, workspace: str, portfolio: str, portfolio_json: str,
                     evaluation_hash: str, branch: str, storage: str) -> bool:
        """Record a study once; True when it is new."""
        with self.conn:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO studies (name, created_at, workspace, portfolio, portfolio_json,"
                " evaluation_hash, branch, storage) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, _now(), workspace, portfolio, portfolio_json, evaluation_hash, branch, storage),
            )
        return cur.rowcount == 1

    def study(self, name: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM studies WHERE name=?", (name,)).fetchone()

    def record_study_baseline(self, name: str, baseline: dict[str, Any]) -> None:
        """Record a shared study's baseline that another worker ran (studies.baseline_json, m010)."""
        with self.conn:
            self.conn.execute("UPDATE studies SET baseline_json=? WHERE name=?", (json.dumps(baseline), name))

    def study_baseline(self, name: str) -> dict[str, Any] | None:
        """The baseline record_study_baseline kept for a study; None without one."""
        row = self.conn.execute("SELECT baseline_json FROM studies WHERE name=?", (name,)).fetchone()
        return json.loads(row["baseline_json"]) if row is not None and row["baseline_json"] else None

    def record_study_keep(self, name: str, keep: dict[str, Any]) -> None:
        """Record (or update: a replayed keep gets a new commit) another worker's keep of a shared study (m011)."""
        with self.conn:
            self.conn.execute(
                "INSERT INTO study_keeps (study, version, trial, worker, file, composite, holdout_composite, subject,"
                " idea, trailers_json, evidence_json, commit_sha, kept_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (study, version) DO UPDATE SET commit_sha=excluded.commit_sha",
                (name, keep["version"], keep["trial"], keep["worker"], keep["file"], keep["composite"],
                 keep["holdout_composite"], keep["subject"], keep["idea"], json.dumps(keep["trailers"]),
                 None if keep["evidence"] is None else json.dumps(keep["evidence"]), keep["commit_sha"],
                 keep["kept_at"]))

    def study_keeps(self, name: str) -> list[sqlite3.Row]:
        """Other workers' keeps of a shared study that record_study_keep recorded, by version."""
        return self.conn.execute("SELECT * FROM study_keeps WHERE study=? ORDER BY version", (name,)).fetchall()

    def legacy_noise(self, name: str) -> list[float] | None:
        """The noise composites an older autoresearch stored in studies.noise_json (no longer written: the noise
        is read from the baseline's evaluations, store/queries.noise_composites); None without."""
        row = self.conn.execute("SELECT noise_json FROM studies WHERE name=?", (name,)).fetchone()
        return json.loads(row[0])["values"] if row is not None and row[0] else None

    def set_warm_start(self, name: str, source: str) -> None:
        with self.conn:
            self.conn.execute("UPDATE studies SET warm_start=? WHERE name=?", (source, name))

    def related_studies(self, *, workspace: str, evaluation_hash: str, other_than_portfolio: str) -> list[sqlite3.Row]:
        """Studies of the same workspace and evaluation but another portfolio, the most recently active first."""
        return self.conn.execute(
            "SELECT s.*, (SELECT MAX(t.id) FROM trials t WHERE t.study = s.name) AS last_trial_id FROM studies s"
            " WHERE s.workspace=? AND s.evaluation_hash=? AND s.portfolio != ?"
            " ORDER BY last_trial_id IS NULL, last_trial_id DESC, s.rowid DESC",
            (workspace, evaluation_hash, other_than_portfolio)).fetchall()

    def begin_trial(self, study: str, number: int, **fields: Any) -> None:
        row = dict(study=study, number=number, created_at=_now(), status="running", **fields)
        with self.conn:
            # A trial number left "running" by a killed process is replaced, never duplicated.
            self.conn.execute("DELETE FROM trials WHERE study=? AND number=? AND status='running'", (study, number))
        self._insert("trials", row)

    def update_trial(self, study: str, number: int, **fields: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        with self.conn:
            self.conn.execute(f"UPDATE trials SET {sets} WHERE study=? AND number=?",
                              (*fields.values(), study, number))

    def finish_trial(self, study: str, number: int, status: str, **fields: Any) -> None:
        self.update_trial(study, number, status=status, finished_at=_now(), **fields)

    def trials(self, study: str) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM trials WHERE study=? ORDER BY number", (study,)).fetchall()

    def trial(self, study: str, number: int) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM trials WHERE study=? AND number=?", (study, number)).fetchone()

    def find_variant(self, study: str, variant_hash: str, *, without_failed_tasks: bool = False) -> sqlite3.Row | None:
        """An earlier finished trial that evaluated exactly this instruction set and knobs; with
        without_failed_tasks, only one whose evaluation had no failed task (no backend fault in its score)."""
        clean = _WITHOUT_FAILED_TASKS if without_failed_tasks else ""
        models, by = self._trial_by_these_models()
        return self.conn.execute(
            "SELECT * FROM trials WHERE study=? AND variant_hash=? AND composite IS NOT NULL"
            f" AND status IN ('baseline', 'keep', 'discard'){clean}{models} ORDER BY number LIMIT 1",
            (study, variant_hash, *by),
        ).fetchone()

    def find_pruned_variant(self, study: str, variant_hash: str, incumbent_before: float) -> sqlite3.Row | None:
        """An earlier trial that evaluated exactly this variant, without a failed task, and was pruned against
        an incumbent of this objective."""
        models, by = self._trial_by_these_models()
        return self.conn.execute(
            "SELECT * FROM trials WHERE study=? AND variant_hash=? AND status='pruned'"
            f" AND incumbent_before IS NOT NULL AND ABS(incumbent_before - ?) < 1e-9{_WITHOUT_FAILED_TASKS}{models}"
            " ORDER BY number LIMIT 1",
            (study, variant_hash, incumbent_before, *by),
        ).fetchone()

    def trial_evaluations(self, study: str, number: int) -> list[sqlite3.Row]:
        """The evaluations (search and holdout) a trial ran, oldest first."""
        return self.conn.execute("SELECT * FROM evaluations WHERE study=? AND trial=? ORDER BY id",
                                 (study, number)).fetchall()

    def interrupt_evaluations(self, study: str) -> int:
        """Mark a study's evaluations that a killed process left running as interrupted; return how many."""
        with self.conn:
            cur = self.conn.execute(
                "UPDATE evaluations SET status='interrupted', finished_at=? WHERE study=? AND status='running'",
                (_now(), study))
        return cur.rowcount

    def instruction_texts(self, statuses: tuple[str, ...] = (TrialStatus.RUNNING, *INCUMBENT_STATUSES)) -> set[str]:
        """Every instruction text the loop evaluated as a whole set (any study) in trials with these statuses:
        what autoresearch itself may have written to, or checked out into, an instruction file."""
        marks = ", ".join("?" for _ in statuses)
        texts: set[str] = set()
        for row in self.conn.execute(
                f"SELECT variant_text, instructions_json FROM trials WHERE status IN ({marks})", statuses):
            if row["variant_text"]:
                texts.add(row["variant_text"])
            if row["instructions_json"]:
                texts.update(str(t) for t in json.loads(row["instructions_json"]).values())
        return texts

    def call_totals(self, study: str) -> tuple[int, float, int]:
        """What a study spent, its model calls made and their joules, and the replies it reused instead of calls
        (lm/replies.py)."""
        row = self.conn.execute("SELECT COALESCE(SUM(reused = 0), 0), COALESCE(SUM(CASE WHEN reused = 0 THEN joules "
                                "END), 0), COALESCE(SUM(reused), 0) FROM calls WHERE study=?", (study,)).fetchone()
        return int(row[0]), float(row[1]), int(row[2])
