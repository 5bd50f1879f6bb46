"""The CLI's plain-text views that need no store: how a suite's tasks run."""

from __future__ import annotations

from autoresearch.cli.views import decoding_line
from autoresearch.workspace.config import BackendsConfig, Portfolio, RoleConfig


def embedded_portfolio() -> Portfolio:
    role = RoleConfig(backend="embedded", n_threads=4)
    return Portfolio(planner=role, producer=role, evaluator=role)


def test_the_decoding_line_says_how_many_tasks_run_at_once_and_how_the_embedded_model_decodes_them():
    side_by_side = decoding_line(embedded_portfolio(), BackendsConfig(embedded_parallel=2))
    assert side_by_side.startswith("tasks: 2 at once")
    assert "2 contexts side by side" in side_by_side and "replies as from one context" in side_by_side
    alone = decoding_line(embedded_portfolio(), BackendsConfig(embedded_parallel=1))
    assert alone.startswith("tasks: 1 at once") and "one call at a time (" in alone
    batched = decoding_line(embedded_portfolio(), BackendsConfig(embedded_batch=3))
    assert "up to 3 calls decoded in one batch" in batched and "a study of its own" in batched
    drafted = decoding_line(embedded_portfolio(), BackendsConfig(embedded_draft=16))
    assert "drafts of up to 16 tokens" in drafted and "a study of its own" in drafted


def test_a_suite_on_servers_only_says_how_many_tasks_run_at_once():
    served = RoleConfig(backend="openai", model="m")
    line = decoding_line(Portfolio(planner=served, producer=served, evaluator=served), BackendsConfig(concurrency=4))
    assert line == "tasks: 4 at once"
