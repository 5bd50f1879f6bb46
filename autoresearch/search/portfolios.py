"""Portfolios of one workspace: a new portfolio's study starts from the previous one's best instructions
(warm start), and the summary compares the two studies' incumbents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from ..store import Store
from ..store.queries import incumbent_before, producer_tokens
from ..workspace.versioning import InstructionRepo
from ..workspace.workspace import INSTRUCTIONS_DIR, Workspace
from .recovery import deferred_signals


@dataclass(frozen=True)
class PortfolioRow:
    """One study's best (its incumbent) as the summary compares portfolios: quality, energy, latency."""

    portfolio: str
    study: str
    trial: int
    best_composite: float  # on the search tasks
    best_holdout: float | None
    joules_per_task: float  # of the best's search evaluation
    seconds_per_task: float
    producer_tokens_per_task: float
    energy_source: str


class PortfolioHistory:
    """A study among the workspace's studies of other portfolios: where to warm-start from, how they compare."""

    def __init__(self, workspace: Workspace, portfolio: str, store: Store, study: str, repo: InstructionRepo,
                 note: Callable[[str], None]):
        self.ws, self.portfolio_name, self.store, self.name, self.repo, self.note = (
            workspace, portfolio, store, study, repo, note)

    def previous_study(self) -> tuple[str, Any] | None:
        """The study of another portfolio (same workspace and evaluation) to start from, with its incumbent
        row: the one this study recorded, else the most recently active one that has an incumbent."""
        studies = self.store.related_studies(workspace=str(self.ws.root), evaluation_hash=self.ws.evaluation_hash(),
                                             other_than_portfolio=self.portfolio_name)
        own = self.store.study(self.name)
        recorded = own["warm_start"] if own is not None else None
        names = [s["name"] for s in studies]
        if recorded in names:
            names = [recorded]
        for name in names:
            row = incumbent_before(self.store.trials(name))
            if row is not None:
                return name, row
        return None

    def previous_study_name(self) -> str | None:
        previous = self.previous_study()
        return previous[0] if previous else None

    def warm_start(self) -> None:
        """Before a new study's baseline: commit the previous portfolio's best instructions onto its branch.

        One commit per optimizable file that differs from HEAD. Idempotent: after a crash, the files
        already committed equal HEAD and are skipped. The commits carry no Autoresearch-Trial trailer,
        so crash recovery (which matches commits to trials) never takes them for keeps."""
        previous = self.previous_study()
        if previous is None:
            return
        source, row = previous
        self.store.set_warm_start(self.name, source)
        texts = json.loads(row["instructions_json"] or "{}")
        for file in self.ws.settings.workspace.optimizable:
            rel = f"{INSTRUCTIONS_DIR}/{file}"
            text = texts.get(file)
            if text is None or text == self.repo.read_head(rel):
                continue
            with deferred_signals():
                commit = self.repo.commit_instruction(
                    rel, text, f"autoresearch: warm start {file} from study {source} (trial {row['number']})",
                    {"Autoresearch-Warm-Start": source, "Autoresearch-Warm-Start-Trial": str(row["number"]),
                     "Autoresearch-Portfolio": self.portfolio_name})
            self.note(f"warm start: {file} from study {source} (trial {row['number']}, its best), "
                       f"committed as {commit.sha[:10]}")

    def row(self, study: str | None) -> PortfolioRow | None:
        """A study's incumbent: composite, holdout, and its search evaluation's energy, time and output length."""
        if study is None:
            return None
        row = incumbent_before(self.store.trials(study))
        meta = self.store.study(study)
        if row is None or meta is None or row["evaluation_id"] is None:
            return None
        evaluation = self.store.evaluation(row["evaluation_id"])
        tasks = len(self.store.task_results(row["evaluation_id"])) or 1
        tokens, _ = producer_tokens(self.store, row["evaluation_id"])
        return PortfolioRow(
            portfolio=meta["portfolio"], study=study, trial=row["number"], best_composite=row["composite"],
            best_holdout=row["holdout_composite"], joules_per_task=(evaluation["joules"] or 0.0) / tasks,
            seconds_per_task=(evaluation["seconds"] or 0.0) / tasks, producer_tokens_per_task=tokens / tasks,
            energy_source=evaluation["energy_source"] or "none")
