"""`autoresearch status --storage URL`: the shared studies of a database, their incumbents and workers."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna

from ...errors import UsageError
from ...lm.model_identity import changes
from .ledger import (
    KeepRecord,
    Ledger,
    database_error,
    missing_sqlite_file,
    safe_url,
    studies,
    workers,
)


@dataclass
class StudyStatus:
    study: str
    incumbent: KeepRecord | None
    baseline: KeepRecord | None
    keeps: int  # versions after the baseline
    # Every worker's finished trials by how they ended, as `log` and results.tsv say it (the ledger), and those
    # running now (Optuna's), in STATUS_ORDER.
    trials: dict[str, int]
    workers: list[dict[str, Any]]  # seen within the window, most recent first
    quiet_workers: int  # seen before the window
    window_s: float = 600.0
    now: float = field(default_factory=time.time)
    versions: list[KeepRecord] = field(default_factory=list)  # every version of the incumbent, the baseline first


def shared_status(url: str, study: str | None = None, window_s: float = 600.0) -> list[StudyStatus]:
    """Every shared study in the database (or the named one), with workers seen in the last window_s."""
    missing = missing_sqlite_file(url)
    if missing is not None:  # opening it would create an empty file where a path was mistyped
        raise UsageError(f"--storage {safe_url(url)}: no such database file {missing}")
    try:
        names = studies(url)
    except Exception as exc:  # noqa: BLE001 - any failure to open the database is one line for the user
        raise database_error(url, exc, "read") from None
    if study is not None:
        if study not in names:
            known = ", ".join(names) or "none"
            raise UsageError(f"--study {study}: no such shared study in {safe_url(url)} (known: {known})")
        names = [study]
    now = time.time()
    out = []
    for name in names:
        ledger = Ledger(url, name, create=False)
        try:
            keeps = ledger.keeps()
            seen = workers(ledger)
            finished = ledger.tried_counts()
        finally:
            ledger.close()
        recent = [w for w in seen if now - w["last_seen"] <= window_s]
        out.append(StudyStatus(study=name, incumbent=keeps[-1] if keeps else None, baseline=keeps[0] if keeps else None,
                               keeps=max(len(keeps) - 1, 0), trials=_trial_counts(url, name, finished), workers=recent,
                               quiet_workers=len(seen) - len(recent), window_s=window_s, now=now, versions=keeps))
    return out


def model_groups(workers: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """Where the workers' models differ (another GGUF, build or Ollama digest under the same names): a label per
    worker ("A", "B", …, A the most recently seen worker's), and a line per other label saying how its models
    differ from A's; nothing when they are all the same (or not known: a worker of an older autoresearch)."""
    identities = list(dict.fromkeys(w["models"] for w in workers if w.get("models")))
    if len(identities) < 2:
        return {}, []
    label = {identity: chr(ord("A") + i) if i < 26 else str(i) for i, identity in enumerate(identities)}
    lines = [f"models {label[other]}: {'; '.join(changes(identities[0], other))}" for other in identities[1:]]
    return {w["worker"]: label.get(w.get("models"), "?") for w in workers}, lines


STATUS_ORDER = ("baseline", "keep", "discard", "pruned", "failed", "running")


def _trial_counts(url: str, name: str, finished: dict[str, int]) -> dict[str, int]:
    """The study's finished trials by status (the ledger's, Ledger.tried_counts), not Optuna's states: Optuna is told
    a trial without a usable variant, or an identical twin's discard, as pruned (what its sampler learns from),
    which `log` calls failed or discard. Then the trials running now, which only Optuna knows."""
    counts = Counter({str(status): n for status, n in finished.items()})
    try:
        running = optuna.load_study(study_name=name, storage=url).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    except KeyError:  # registered, but the Optuna study is not created yet
        running = []
    if running:
        counts["running"] = len(running)
    order = {status: i for i, status in enumerate(STATUS_ORDER)}
    return dict(sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))
