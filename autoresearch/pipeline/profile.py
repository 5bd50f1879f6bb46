"""`autoresearch profile`: each model in each role of the pipeline, so a user can match models to roles."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Sequence

from ..lm.calls import CallRecorder, completion_rate, energy_source_of
from ..lm.replies import ReplyCache
from ..store import Store
from ..workspace.config import PIPELINE_ROLES, Portfolio, RoleConfig
from ..workspace.suite import Task
from ..workspace.workspace import Workspace
from .harness import Harness, models_now
from .runner import SuiteResult, evaluate_tasks

PROFILED_ROLES = PIPELINE_ROLES


@dataclass(frozen=True)
class ProfileRow:
    role: str
    model: str  # "backend:model"
    composite: float  # the whole pipeline's quality with this model in this role
    judge_mean: float
    criteria_rate: float
    joules_per_task: float  # this role's calls only
    energy_source: str
    latency_s: float  # mean per call of this role
    completion_rate: float  # of the calls that reached the model, those that returned usable output (lm/calls.py)
    calls: int


def parse_model(spec: str, base: RoleConfig) -> RoleConfig:
    """'ollama:qwen2.5:3b' or 'embedded:/path/model.gguf' → the base role's parameters with that model."""
    backend, sep, model = spec.partition(":")
    if not sep or backend not in ("embedded", "ollama", "openai") or not model:
        raise ValueError(f"--model {spec!r}: expected BACKEND:MODEL with BACKEND embedded, ollama or openai")
    return base.model_copy(update={"backend": backend, "model": model, "base_url": None})


MODEL_FIELDS = ("backend", "model", "n_ctx", "base_url")  # what makes a model; the rest are the role's parameters


def candidates_of(portfolio: Portfolio) -> list[RoleConfig]:
    """The distinct models of a portfolio (two roles on the same model count once)."""
    seen: dict[tuple, RoleConfig] = {}
    for role in PROFILED_ROLES:
        config = portfolio.role(role)
        seen.setdefault(tuple(getattr(config, f) for f in MODEL_FIELDS), config)
    return list(seen.values())


def in_role(base: RoleConfig, candidate: RoleConfig) -> RoleConfig:
    """The candidate's model with the role's own generation parameters (temperature, max_tokens, …)."""
    return base.model_copy(update={f: getattr(candidate, f) for f in MODEL_FIELDS})


def profile(workspace: Workspace, store: Store, portfolio_name: str, candidates: Sequence[RoleConfig],
            tasks: Sequence[Task], *, backend_factory=None,
            on_progress: Callable[[str], None] | None = None, replies: ReplyCache | None = None,
            recorder: CallRecorder | None = None) -> list[ProfileRow]:
    """Evaluate the base portfolio with each candidate in each role; identical portfolios run once. A row per
    candidate and role; a stop (KeyboardInterrupt) after at least one row returns the rows finished so far
    (fewer than candidates × roles), not nothing.

    replies: the replies to reuse for identical requests (lm/replies.py): a candidate swapped into the producer
    sends the base planner's requests, and one swapped into the judge the base planner's and producer's too. Each
    evaluation is stamped with its own portfolio's models (Store.models), so a store lookup lends it only what
    those models answered. recorder: sees every call (what the profile spent)."""
    base = workspace.portfolio(portfolio_name)
    cache: dict[str, SuiteResult] = {}
    rows: list[ProfileRow] = []
    try:
        for candidate in candidates:
            for role in PROFILED_ROLES:
                portfolio = base.model_copy(update={role: in_role(base.role(role), candidate)})
                key = json.dumps(portfolio.model_dump(), sort_keys=True)
                if key not in cache:
                    if on_progress:
                        on_progress(f"{role}: {candidate.backend}:{candidate.model}")
                    store.models = models_now(workspace, portfolio, backend_factory)
                    harness = Harness(workspace, portfolio, backend_factory=backend_factory, replies=replies)
                    cache[key] = evaluate_tasks(workspace, harness, store, tasks, kind="profile",
                                                portfolio=portfolio_name, instructions=workspace.instructions,
                                                split="profile", portfolio_config=portfolio,  # the candidate's
                                                recorder=recorder)
                rows.append(_row(role, candidate, cache[key], len(tasks)))
    except KeyboardInterrupt:
        if not rows:
            raise
    return rows


def _row(role: str, candidate: RoleConfig, suite: SuiteResult, n_tasks: int) -> ProfileRow:
    calls = [c for c in suite.calls if c.role == role]
    return ProfileRow(
        role=role, model=f"{candidate.backend}:{candidate.model}", composite=suite.composite,
        judge_mean=suite.score.judge_mean, criteria_rate=suite.score.criteria_rate,
        joules_per_task=sum(c.joules for c in calls) / max(n_tasks, 1),
        energy_source=energy_source_of(calls),
        latency_s=sum(c.latency_s for c in calls) / len(calls) if calls else 0.0,
        completion_rate=completion_rate(calls, counting_reused=True), calls=len(calls),
    )
