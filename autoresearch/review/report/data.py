"""The figures of a study report, gathered from the store, git and Optuna; nothing here renders."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ...search.pareto import TrialPoint, pareto_front, trial_point
from ...search.shared.ledger import missing_sqlite_file
from ...store import Store
from ...store.queries import role_usage_rows
from ..study_log import StudyLog, study_log
from ..trial_detail import TrialDetail, trial_detail


@dataclass(frozen=True)
class RoleUsage:
    """Model calls of one role and model over the whole study."""

    role: str
    model: str
    calls: int
    completed: float
    prompt_tokens: int
    completion_tokens: int
    joules: float
    latency_s: float
    load_s: float
    energy_source: str

    @property
    def mean_latency_s(self) -> float:
        return self.latency_s / self.calls if self.calls else 0.0

    @property
    def joules_per_1k_output(self) -> float | None:
        return self.joules / self.completion_tokens * 1000 if self.completion_tokens else None


@dataclass(frozen=True)
class Importances:
    """Optuna's parameter importances, or why there are none."""

    values: dict[str, float] = field(default_factory=dict)
    unavailable: str = ""
    caveat: str = ""


@dataclass(frozen=True)
class ReportData:
    study: str
    branch: str
    workspace: str
    portfolio: str
    models: dict[str, str]  # role → backend/model
    storage: str
    generated_at: str
    trials: list[TrialPoint]
    pareto: list[int]  # trial numbers on the front, by joules per task
    log: StudyLog
    commits: list[TrialDetail]  # the kept trials, newest first
    roles: list[RoleUsage]
    operators: dict[str, dict[str, int]]  # operator → status → trials
    acceptance: dict[str, dict[str, tuple[int, int]]]  # operator → file → (keeps, trials that ran)
    importances: Importances
    total_joules: float
    total_calls: int  # made; the replies reused instead of calls (lm/replies.py) are counted apart
    reused_replies: int = 0


def gather(store: Store, root: Path, study: str) -> ReportData:
    """Every figure the report shows, for one study."""
    meta = store.study(study)
    rows = store.trials(study)
    points = [trial_point(store, rows, r) for r in rows]
    portfolio = json.loads(meta["portfolio_json"])
    calls = store.call_totals(study)
    log = study_log(store, study)
    return ReportData(
        study=study, branch=meta["branch"], workspace=meta["workspace"], portfolio=meta["portfolio"],
        models={role: f"{cfg.get('backend')}/{cfg.get('model')}" for role, cfg in sorted(portfolio.items())},
        storage=meta["storage"], generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        trials=points, pareto=pareto_front(points), log=log,
        commits=[trial_detail(store, root, study, e.trial) for e in log.entries if not e.worker],
        roles=role_usage(store, study), operators=operator_outcomes(rows),
        acceptance=acceptance_rates(rows),
        importances=importances(meta["storage"], study), total_calls=calls[0], total_joules=calls[1],
        reused_replies=calls[2])


def role_usage(store: Store, study: str) -> list[RoleUsage]:
    """Calls, tokens, energy and latency per role and model, proposer calls included."""
    rows = role_usage_rows(store, study)
    return [RoleUsage(r["role"], r["model"], r["calls"], r["completed"] or 0.0, r["prompt_tokens"] or 0,
                      r["completion_tokens"] or 0, r["joules"] or 0.0, r["latency_s"] or 0.0, r["load_s"] or 0.0,
                      "+".join(sorted(set((r["sources"] or "").split(","))))) for r in rows]


def operator_outcomes(rows: list) -> dict[str, dict[str, int]]:
    """How each mutation operator's trials ended: which ones produced keeps."""
    table: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["operator"] and r["operator"] != "baseline" and r["status"] != "baseline":  # baselines mutate nothing
            by_status = table.setdefault(r["operator"], {})
            by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    return dict(sorted(table.items(), key=lambda kv: (-kv[1].get("keep", 0), kv[0])))


def acceptance_rates(rows: list) -> dict[str, dict[str, tuple[int, int]]]:
    """Per operator and instruction file: keeps out of the trials that ran (an abandoned one did not)."""
    table: dict[str, dict[str, tuple[int, int]]] = {}
    for r in rows:
        if not r["operator"] or "baseline" in (r["operator"], r["status"]) or r["status"] in ("interrupted", "running"):
            continue
        by_file = table.setdefault(r["operator"], {})
        keeps, trials = by_file.get(r["file"] or "", (0, 0))
        by_file[r["file"] or ""] = (keeps + (r["status"] == "keep"), trials + 1)
    return dict(sorted(table.items()))


def importances(storage: str, study: str) -> Importances:
    """Optuna's importances of the recipe parameters; a reason instead when it cannot compute them."""
    gone = missing_sqlite_file(storage)
    if gone is not None:  # opening it would leave an empty database behind
        return Importances(unavailable=f"unavailable: the study's Optuna storage {gone} is gone")
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO lines would land in the CLI's output
        loaded = optuna.load_study(study_name=study, storage=storage)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values = optuna.importance.get_param_importances(loaded)
    except Exception as exc:  # too few trials, one value per parameter, storage gone: say which, chart nothing
        return Importances(unavailable=f"unavailable: {' '.join(str(exc).split()) or type(exc).__name__}")
    if not values:
        return Importances(unavailable="unavailable: no finished trial has parameters yet")
    caveat = "few trials per parameter value: treat these as a hint" if caught else ""
    return Importances(values={k: float(v) for k, v in values.items()}, caveat=caveat)

