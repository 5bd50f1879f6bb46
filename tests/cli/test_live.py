"""The live view's lines in a log (a console that is not a terminal): one per trial stage."""

from __future__ import annotations

import io

from rich.console import Console

from autoresearch.cli.live import LiveView


def test_the_incumbents_holdout_evaluation_is_not_called_a_seed_set():
    out = io.StringIO()
    view = LiveView(Console(file=out, force_terminal=False, width=200))
    with view:
        view.on_event("incumbent", {"trial": 4, "repeat": 1, "split": "search"})
        view.on_event("incumbent", {"trial": 4, "repeat": 0, "split": "holdout"})
    lines = out.getvalue().splitlines()
    assert "the incumbent on this machine: seed set 2" in lines[0]
    assert "the incumbent on this machine: holdout tasks" in lines[1]
