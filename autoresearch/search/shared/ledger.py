"""A study shared by workers on several machines: its incumbents and its workers, in the study's database.

Workers share the Optuna study through its RDB storage (Optuna's own mechanism). What Optuna does not
hold lives beside it, in four tables of the same database:

  autoresearch_shared_studies  what makes the workers' scores comparable (evaluation hash, models, search
                               space); a worker whose differ is refused
  autoresearch_keeps           the study's incumbents, version 0 (the baseline) upwards; the highest version
                               is the incumbent. Keeping is a compare-and-set: the insert of version v + 1
                               succeeds for one worker only (the primary key); every other worker that read
                               version v has lost the race
  autoresearch_tried           every worker's finished trials: the ideas tried, the variants evaluated or
                               pruned (with the incumbent they were pruned against and the models that
                               scored them), the trials since a keep
  autoresearch_workers         who works on the study: heartbeat, trial and keep counts (`autoresearch status`)
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa

from ...errors import AutoresearchError, StorageError, WorkspaceError
from ...text import one_line
from ..proposer import Feedback

OWNER_ATTR = "autoresearch_workspace"  # Optuna user attribute of a shared trial: host:path of its workspace
_metadata = sa.MetaData()
STUDIES = sa.Table(
    "autoresearch_shared_studies", _metadata,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("identity_json", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
KEEPS = sa.Table(
    "autoresearch_keeps", _metadata,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("trial", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(256), nullable=False),
    sa.Column("file", sa.String(512)),  # the instruction file the keep changed (none for the baseline)
    sa.Column("composite", sa.Float, nullable=False),
    sa.Column("objective", sa.Float, nullable=False),
    sa.Column("holdout_composite", sa.Float),
    sa.Column("instructions_json", sa.Text, nullable=False),
    sa.Column("knobs_json", sa.Text, nullable=False),
    sa.Column("feedback_json", sa.Text, nullable=False),
    sa.Column("message_json", sa.Text, nullable=False),  # [subject, trailers]: a lost push is replayed from it
    sa.Column("commit_sha", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    # The keep rule's evidence (Verdict.to_json) and the trial's idea, so that every worker's `log` shows another
    # worker's keep as its own worker's does. Added after the table's first version (see _add_missing_columns).
    sa.Column("evidence_json", sa.Text),
    sa.Column("idea", sa.Text),
)
# Every finished trial of every worker, so that all of them share one memory: the ideas already tried, the
# variants already evaluated (or pruned against an incumbent), the trials since the last keep (--plateau).
TRIED = sa.Table(
    "autoresearch_tried", _metadata,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("trial", sa.Integer, primary_key=True, autoincrement=False),  # Optuna's number: study-wide
    sa.Column("worker", sa.String(256), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("file", sa.String(512)),
    sa.Column("idea", sa.Text),
    sa.Column("delta", sa.Float),
    sa.Column("variant_hash", sa.String(64)),
    sa.Column("composite", sa.Float),
    sa.Column("objective", sa.Float),
    sa.Column("finished_at", sa.Float, nullable=False),
    # The incumbent's objective the trial was judged against: a variant pruned against the current one is
    # not screened again by any worker. Added after the table's first version (see _add_missing_columns).
    sa.Column("incumbent_before", sa.Float),
    # The models and prompt format that made its scores (Store.models, search/model_watch.py): another worker's
    # score is reused only by a worker whose models are the same. Added later too.
    sa.Column("models", sa.Text),
)
WORKERS = sa.Table(
    "autoresearch_workers", _metadata,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("worker", sa.String(256), primary_key=True),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("workspace", sa.Text, nullable=False),
    sa.Column("portfolio", sa.String(256), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("trials", sa.Integer, nullable=False),
    sa.Column("keeps", sa.Integer, nullable=False),
    sa.Column("state", sa.String(64), nullable=False),
    # The identity of the models this worker's scores come from (Store.models): `status` says which workers differ,
    # as they share no scores. Added later (see _add_missing_columns).
    sa.Column("models", sa.Text),
)


# Columns added after their table's first version, nullable so that old rows stay valid: a worker opening an
# older ledger adds them (Ledger._add_missing_columns); `status`, which only reads, selects those it finds.
ADDED_LATER: tuple[tuple[sa.Table, tuple[str, ...]], ...] = ((TRIED, ("incumbent_before", "models")),
                                                             (KEEPS, ("evidence_json", "idea")),
                                                             (WORKERS, ("models",)))


class LostRace(Exception):
    """Another worker recorded the incumbent version this worker wanted to write."""

    def __init__(self, version: int):
        super().__init__(f"version {version} of the incumbent was written by another worker first")
        self.version = version


@dataclass(frozen=True)
class KeepRecord:
    """One version of a shared study's incumbent."""

    version: int
    trial: int
    worker: str
    composite: float
    objective: float
    holdout_composite: float | None
    instructions: dict[str, str]
    knobs: dict[str, Any]
    feedback: Feedback
    file: str | None = None
    subject: str = ""
    trailers: dict[str, str] = field(default_factory=dict)
    commit_sha: str | None = None
    created_at: float = 0.0
    evidence: dict[str, Any] | None = None  # the keep rule's (None for the baseline, or a keep of an older version)
    idea: str = ""  # what the trial tried, as its worker's results.tsv says it

    @property
    def kept_at(self) -> str:
        """When it was kept, as the store writes times (UTC ISO)."""
        return datetime.fromtimestamp(self.created_at, timezone.utc).isoformat(timespec="seconds")


def worker_id() -> str:
    """This process, as the workers table names it: host, pid and a few random characters."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def safe_url(url: str) -> str:
    """The storage URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot read is shown as given, minus nothing secret
        return url.split("@")[-1]


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names where it does not exist; None for any other URL (or an in-memory one)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None  # not a URL at all: opening it says so
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def database_error(url: str, exc: BaseException, doing: str) -> AutoresearchError:
    """The typed error for a database that cannot be used: a missing driver or an unreadable URL is the user's
    to fix (exit 2); a database that refuses or does not answer is a storage fault (exit 1)."""
    message = database_problem(url, exc, doing)
    if isinstance(exc, (ModuleNotFoundError, sa.exc.ArgumentError)):
        return WorkspaceError(message)
    return StorageError(message)


def database_problem(url: str, exc: BaseException, doing: str) -> str:
    """One line for a database that cannot be used: its driver is missing, or what the database said."""
    if isinstance(exc, ModuleNotFoundError):
        return (f"--storage {safe_url(url)}: the database driver is not installed ({exc.name}); "
                "for PostgreSQL: pip install 'autoresearch[postgres]'")
    said = one_line(str(getattr(exc, "orig", None) or exc), 200)
    return f"--storage {safe_url(url)}: cannot {doing} the database: {said}"


class Ledger:
    """The shared tables of one study in one database; create=False only reads (`autoresearch status`)."""

    def __init__(self, url: str, study: str, create: bool = True):
        self.url, self.study = url, study
        self._missing: dict[str, set[str]] | None = None  # per table, the ADDED_LATER columns it lacks (select)
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
            if create:
                self._create_tables()
        except (ModuleNotFoundError, sa.exc.SQLAlchemyError) as exc:
            raise database_error(url, exc, "open") from None

    def _create_tables(self) -> None:
        for attempt in range(3):  # workers starting together may race to create the same table
            try:
                _metadata.create_all(self.engine, checkfirst=True)
                break
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """A ledger made by an older version lacks the columns added since (create_all never alters a table)."""
        for table, names in ADDED_LATER:
            for name in names:
                self._add_column(table, table.c[name])

    def _add_column(self, table: sa.Table, column: sa.Column) -> None:
        def present() -> bool:
            return column.name in {c["name"] for c in sa.inspect(self.engine).get_columns(table.name)}

        if present():
            return
        kind = column.type.compile(dialect=self.engine.dialect)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
        except sa.exc.DBAPIError:
            if not present():  # else another worker starting at the same time added it first
                raise

    def close(self) -> None:
        self.engine.dispose()

    def select(self, table: sa.Table) -> sa.Select:
        """SELECT of the table's columns that the database has: a ledger an older autoresearch made, read without
        being altered (`status`), lacks the columns added since (ADDED_LATER); its rows read them as None."""
        if self._missing is None:
            inspector = sa.inspect(self.engine)
            self._missing = {t.name: {n for n in names if n not in {c["name"] for c in inspector.get_columns(t.name)}}
                             for t, names in ADDED_LATER if inspector.has_table(t.name)}
        return sa.select(*(c for c in table.c if c.name not in self._missing.get(table.name, ())))

    # --- what makes scores comparable --------------------------------------------------------

    def register(self, identity: dict[str, Any]) -> None:
        """Record the study's identity, or refuse a worker whose evaluation, models or search space differ."""
        blob = json.dumps(identity, sort_keys=True)
        query = sa.select(STUDIES.c.identity_json).where(STUDIES.c.study == self.study)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(query).first()
                if row is None:
                    conn.execute(STUDIES.insert().values(study=self.study, identity_json=blob, created_at=time.time()))
                    return
        except sa.exc.IntegrityError:  # another worker registered it between our read and our insert
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        theirs = json.loads(row[0])
        differs = sorted(k for k in set(identity) | set(theirs) if identity.get(k) != theirs.get(k))
        if differs:
            key = differs[0]
            raise WorkspaceError(
                f"study {self.study} in {safe_url(self.url)} was started with a different {key} "
                f"({_short(theirs.get(key))}; this worker: {_short(identity.get(key))}): every worker of a shared "
                "study needs the same workspace commit, evaluation and models")

    # --- every worker's trials -----------------------------------------------------------------

    def record_trial(self, worker: str, row: Any, models: str | None = None) -> None:
        """Add a finished trial (a store trials row, scored by `models`: Store.models) to the study's shared
        memory; once per trial number."""
        values = {k: row[k] for k in ("status", "file", "idea", "delta", "variant_hash", "composite", "objective",
                                      "incumbent_before")}
        try:
            with self.engine.begin() as conn:
                conn.execute(TRIED.insert().values(study=self.study, trial=row["number"], worker=worker,
                                                   finished_at=time.time(), models=models, **values))
        except sa.exc.IntegrityError:
            pass  # told again after a restart: the first record stands

    def tried(self) -> list[dict[str, Any]]:
        """Every worker's finished trials, by trial number, as rows with the store's column names."""
        return self._tried()

    def tried_counts(self) -> dict[str, int]:
        """Every worker's finished trials by status, counted in the database (`status`)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(TRIED.c.status, sa.func.count()).where(TRIED.c.study == self.study)
                                .group_by(TRIED.c.status)).all()
        return {status: n for status, n in rows}

    def tried_variant(self, variant_hash: str) -> list[dict[str, Any]]:
        """Every worker's finished trials of this one variant, by trial number (tried(), filtered in SQL)."""
        return self._tried(TRIED.c.variant_hash == variant_hash)

    def _tried(self, *where: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(self.select(TRIED).where(TRIED.c.study == self.study, *where)
                                .order_by(TRIED.c.trial)).mappings().all()
        return [{"incumbent_before": None, "models": None, **r, "number": r["trial"]} for r in rows]

    # --- the incumbent -----------------------------------------------------------------------

    def keeps(self) -> list[KeepRecord]:
        """Every version of the incumbent, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(self.select(KEEPS).where(KEEPS.c.study == self.study)
                                .order_by(KEEPS.c.version)).mappings().all()
        return [_record(r) for r in rows]

    def incumbent(self) -> KeepRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.select(KEEPS).where(KEEPS.c.study == self.study)
                               .order_by(KEEPS.c.version.desc()).limit(1)).mappings().first()
        return _record(row) if row else None

    @contextmanager
    def claim(self, record: KeepRecord) -> Iterator["Claim"]:
        """Write `record` as incumbent version record.version if no worker has, else raise LostRace.

        The row is inserted in a transaction that stays open while the block runs (the git commit), so a
        worker that wants the same version waits, then loses; the block's error rolls the claim back.
        """
        conn = self.engine.connect()
        try:
            tx = conn.begin()
            try:
                conn.execute(KEEPS.insert().values(**_row(self.study, record)))
            except sa.exc.IntegrityError:
                tx.rollback()
                raise LostRace(record.version) from None
            try:
                yield Claim(conn, self.study, record.version)
            except BaseException:
                tx.rollback()
                raise
            tx.commit()
        finally:
            conn.close()

    # --- workers -----------------------------------------------------------------------------

    def heartbeat(self, worker: str, *, workspace: str, portfolio: str, trials: int, keeps: int,
                  state: str, models: str | None = None) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            values = dict(last_seen=now, trials=trials, keeps=keeps, state=state, models=models)
            done = conn.execute(WORKERS.update().where(WORKERS.c.study == self.study, WORKERS.c.worker == worker)
                                .values(**values)).rowcount
            if not done:
                host, pid = worker.split(":")[:2]
                conn.execute(WORKERS.insert().values(study=self.study, worker=worker, host=host, pid=int(pid),
                                                     workspace=workspace, portfolio=portfolio, started_at=now,
                                                     **values))


class Claim:
    """The open compare-and-set of one incumbent version, while its commit is made."""

    def __init__(self, conn: sa.Connection, study: str, version: int):
        self.conn, self.study, self.version = conn, study, version

    def set_commit(self, sha: str, version: int | None = None) -> None:
        """Record the commit of this version (or of an earlier one whose push was replayed)."""
        self.conn.execute(KEEPS.update().where(KEEPS.c.study == self.study,
                                               KEEPS.c.version == (self.version if version is None else version))
                          .values(commit_sha=sha))


def studies(url: str) -> list[str]:
    """The shared studies a database holds, by name."""
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).has_table(STUDIES.name):
            return []
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(STUDIES.c.study).order_by(STUDIES.c.study))]
    finally:
        engine.dispose()


def workers(ledger: Ledger) -> list[dict[str, Any]]:
    """The study's workers, the most recently seen first."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(ledger.select(WORKERS).where(WORKERS.c.study == ledger.study)
                            .order_by(WORKERS.c.last_seen.desc())).mappings().all()
    return [{"models": None, **r} for r in rows]


def _row(study: str, r: KeepRecord) -> dict[str, Any]:
    return dict(study=study, version=r.version, trial=r.trial, worker=r.worker, file=r.file,
                composite=r.composite, objective=r.objective, holdout_composite=r.holdout_composite,
                instructions_json=json.dumps(r.instructions, sort_keys=True),
                knobs_json=json.dumps(r.knobs, sort_keys=True), feedback_json=json.dumps(r.feedback.to_json()),
                message_json=json.dumps([r.subject, r.trailers]), commit_sha=r.commit_sha,
                created_at=r.created_at or time.time(),
                evidence_json=None if r.evidence is None else json.dumps(r.evidence, sort_keys=True), idea=r.idea)


def _record(row: Any) -> KeepRecord:
    fb = json.loads(row["feedback_json"])
    subject, trailers = json.loads(row["message_json"])
    return KeepRecord(
        version=row["version"], trial=row["trial"], worker=row["worker"], composite=row["composite"],
        objective=row["objective"], holdout_composite=row["holdout_composite"],
        instructions=json.loads(row["instructions_json"]), knobs=json.loads(row["knobs_json"]),
        feedback=Feedback.from_json(fb),
        file=row["file"], subject=subject, trailers=trailers, commit_sha=row["commit_sha"],
        created_at=row["created_at"],
        evidence=json.loads(row["evidence_json"]) if row.get("evidence_json") else None, idea=row.get("idea") or "")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return one_line(text, 60)
