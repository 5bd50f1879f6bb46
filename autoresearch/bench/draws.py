"""Evaluation draws for bench_search: which seeds the pipeline's roles answer and judge with.

Without draws every bench seed evaluates under the portfolio's own seeds (repeat r: each role's seed + r), so a
bench seed moves the methods' proposals and samplers and nothing else: a rule-following method (the loop) then
walks one path on every seed, and its "± 0.00" says nothing about how its picks hold under other answers and
judgements. With draws, bench seed N moves every pipeline role's seed by DRAW_STEP · N for every method and for
the start, so each seed is its own evaluation draw; seed 0 keeps the configured seeds.
"""

from __future__ import annotations

from typing import Any

from ..workspace.config import PIPELINE_ROLES, Portfolio

# Far apart enough that no draw's repeats (seed + 0 … + repeats − 1) reach the next draw's seeds.
DRAW_STEP = 1000


def draw_of(seed: int, draws: bool) -> int:
    """What bench seed `seed` adds to every pipeline role's seed (0 without draws)."""
    return DRAW_STEP * seed if draws else 0


def moved_seeds(portfolio: Portfolio, draw: int) -> dict[str, dict[str, Any]]:
    """An update of one portfolio's roles that moves each pipeline role's seed by `draw` ({} for 0); a role
    without a seed gets `draw`, as repeats seed it from 0 (pipeline/repeats.py)."""
    if not draw:
        return {}
    return {role: {"seed": (portfolio.role(role).seed or 0) + draw} for role in PIPELINE_ROLES}


def role_seeds(portfolio: Portfolio) -> dict[str, int | None]:
    """Each pipeline role's configured seed (a seed file records its draw with them)."""
    return {role: portfolio.role(role).seed for role in PIPELINE_ROLES}
