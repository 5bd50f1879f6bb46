"""`autoresearch status --storage URL`: the shared studies of a database, their incumbents and workers."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from rich.table import Table

from ..errors import UsageError
from .shared import KeepRecord, Ledger, database_problem, safe_url, studies, workers


@dataclass
class StudyStatus:
    study: str
    incumbent: KeepRecord | None
    baseline: KeepRecord | None
    keeps: int  # versions after the baseline
    trials: dict[str, int]  # Optuna's trials by state
    workers: list[dict[str, Any]]  # seen within the window, most recent first
    quiet_workers: int  # seen before the window
    window_s: float = 600.0
    now: float = field(default_factory=time.time)


def shared_status(url: str, study: str | None = None, window_s: float = 600.0) -> list[StudyStatus]:
    """Every shared study in the database (or the named one), with workers seen in the last window_s."""
    try:
        names = studies(url)
    except Exception as exc:  # noqa: BLE001 - any failure to open the database is one line for the user
        raise UsageError(database_problem(url, exc, "read")) from None
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
        finally:
            ledger.close()
        recent = [w for w in seen if now - w["last_seen"] <= window_s]
        out.append(StudyStatus(study=name, incumbent=keeps[-1] if keeps else None, baseline=keeps[0] if keeps else None,
                               keeps=max(len(keeps) - 1, 0), trials=_trial_counts(url, name), workers=recent,
                               quiet_workers=len(seen) - len(recent), window_s=window_s, now=now))
    return out


def _trial_counts(url: str, name: str) -> dict[str, int]:
    try:
        trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    except KeyError:  # registered, but the Optuna study is not created yet
        return {}
    return dict(Counter(t.state.name.lower() for t in trials))


def status_table(status: StudyStatus) -> Table:
    """One study: the incumbent line as the title, one row per worker seen in the window."""
    inc, base = status.incumbent, status.baseline
    trials = ", ".join(f"{n} {state}" for state, n in sorted(status.trials.items())) or "no trials yet"
    if inc is None:
        head = "no baseline yet"
    else:
        head = (f"incumbent: trial {inc.trial} (version {inc.version}), composite {inc.composite:.3f}"
                + (f", holdout {inc.holdout_composite:.3f}" if inc.holdout_composite is not None else "")
                + (f", commit {inc.commit_sha[:10]}" if inc.commit_sha else "")
                + f"; baseline {base.composite:.3f}; {status.keeps} keeps")
    table = Table(title=f"study {status.study}: {head}\n{trials}", title_justify="left")
    for column in ("worker", "host", "portfolio", "trials", "keeps", "last seen", "state"):
        table.add_column(column, justify="right" if column in ("trials", "keeps", "last seen") else "left")
    for w in status.workers:
        table.add_row(w["worker"], w["host"], w["portfolio"], str(w["trials"]), str(w["keeps"]),
                      f"{status.now - w['last_seen']:.0f}s ago", w["state"])
    if not status.workers:
        table.add_row(f"no worker seen in the last {status.window_s / 60:.0f} min", "", "", "", "", "", "")
    if status.quiet_workers:
        table.caption = f"{status.quiet_workers} more worker(s) seen earlier"
    return table
