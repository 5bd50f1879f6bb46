"""What a finished trial writes: its fields in the store, and, for a keep, its commit's subject and trailers."""

from __future__ import annotations

import json
from typing import Any

from ..pipeline.runner import SuiteResult
from ..store.queries import StudyNoise
from .keep_rule import Verdict
from .results import TrialOutcome, variant_hash


def variant_fields(instructions: dict[str, str], knobs: dict[str, Any]) -> dict[str, Any]:
    """The variant as the store keeps it: its texts, and its variant_hash."""
    return {"instructions_json": json.dumps(instructions, sort_keys=True),
            "variant_hash": variant_hash(instructions, knobs)}


def outcome_fields(outcome: TrialOutcome, suite: SuiteResult | None, holdout_id: int | None) -> dict[str, Any]:
    """A finished trial's figures as the store keeps them."""
    score = suite.score if suite else None
    return dict(
        composite=outcome.composite, delta=outcome.delta, judge_mean=score.judge_mean if score else None,
        criteria_rate=score.criteria_rate if score else None, holdout_composite=outcome.holdout_composite,
        joules=outcome.joules, energy_source=outcome.energy_source,
        evaluation_id=suite.evaluation_id if suite else None, holdout_evaluation_id=holdout_id,
        commit_sha=outcome.commit or None, note=outcome.description, objective=outcome.objective,
        failure=outcome.failure,
        # delta and incumbent_before are in objective units (the composite's when energy_weight is 0); since
        # the paired rule, delta is the mean paired difference over tasks × seeds, not objective − incumbent.
        incumbent_before=outcome.incumbent_objective if outcome.incumbent_objective is not None
        else None if outcome.delta is None or outcome.objective is None else outcome.objective - outcome.delta)


def commit_subject(file: str, outcome: TrialOutcome, verdict: Verdict) -> str:
    """"autoresearch: producer.md +0.42 over 4 tasks × 3 seeds (95% bound +0.11)"."""
    c, bound = verdict.comparison, verdict.lower_bound
    shown = "none" if bound is None else f"{bound:+.2f}"
    return (f"autoresearch: {file} {outcome.delta:+.2f} over {c.tasks} tasks × {c.repeats} "
            f"seed{'' if c.repeats == 1 else 's'} ({verdict.confidence:.0%} bound {shown})")


def commit_trailers(outcome: TrialOutcome, suite: SuiteResult, knobs: dict[str, Any], *, portfolio: str,
                    study: str, energy_weight: float, noise: StudyNoise | None = None,
                    evidence: Verdict | None = None) -> dict[str, str]:
    """The figures a keep's commit carries, so that `git log` alone shows why it was kept: the keep rule's
    evidence (the paired delta, its bound, the pairs, the holdout delta) and the study's measured noise."""
    trailers = {
        "Autoresearch-Trial": str(outcome.number),
        "Autoresearch-Operator": outcome.operator,
        "Autoresearch-Composite": f"{outcome.composite:.3f}",
        "Autoresearch-Delta": f"{outcome.delta:+.3f}",
        "Autoresearch-Judge-Mean": f"{suite.score.judge_mean:.3f}",
        "Autoresearch-Criteria-Rate": f"{suite.score.criteria_rate:.3f}",
        "Autoresearch-Holdout-Composite": _fmt(outcome.holdout_composite),
        "Autoresearch-Joules": f"{outcome.joules:.1f} ({outcome.energy_source})",
        "Autoresearch-Portfolio": portfolio,
        "Autoresearch-Study": study,
    }
    if energy_weight:
        trailers["Autoresearch-Objective"] = f"{outcome.objective:.3f}"
        trailers["Autoresearch-Joules-Per-Task"] = (f"{suite.joules / max(len(suite.tasks), 1):.1f} "
                                                    f"({suite.energy_source})")
    if evidence is not None:
        trailers.update(evidence.trailers())
    if noise is not None and noise.sd is not None:
        trailers["Autoresearch-Noise-Sd"] = f"{noise.sd:.3f} ({noise.composite_of} over {noise.n} seeds)"
    if evidence is not None:
        bound = evidence.lower_bound
        inside = bound is None or bound <= 0
        trailers["Autoresearch-Inside-Noise"] = (f"{'yes' if inside else 'no'} (mean delta {outcome.delta:+.3f}, "
                                                 f"{evidence.confidence:.0%} lower bound "
                                                 f"{'none' if bound is None else format(bound, '+.3f')})")
    if knobs:
        trailers["Autoresearch-Knobs"] = ", ".join(f"{k}={v}" for k, v in sorted(knobs.items()))
    return trailers


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"
