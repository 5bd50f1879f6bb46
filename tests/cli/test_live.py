"""The live view's lines in a log (a console that is not a terminal): one per trial stage."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from autoresearch.cli.live import LiveView, print_summary
from autoresearch.search import near_miss
from autoresearch.search.results import TrialOutcome


def test_the_incumbents_holdout_evaluation_is_not_called_a_seed_set():
    out = io.StringIO()
    view = LiveView(Console(file=out, force_terminal=False, width=200))
    with view:
        view.on_event("incumbent", {"trial": 4, "repeat": 1, "split": "search"})
        view.on_event("incumbent", {"trial": 4, "repeat": 0, "split": "holdout"})
    lines = out.getvalue().splitlines()
    assert "the incumbent on this machine: seed set 2" in lines[0]
    assert "the incumbent on this machine: holdout tasks" in lines[1]


def test_a_models_idea_in_the_live_table_is_shown_as_written_not_read_as_markup():
    out = io.StringIO()
    view = LiveView(Console(file=out, force_terminal=True, width=200))
    outcome = TrialOutcome(3, "discard", file="producer.md", operator="rephrase",
                           description="[rule] keep it short [/INST]", composite=3.5, delta=-0.2)
    with view:  # a live display: rich reads a str cell as markup, where "[/INST]" is an error
        view.on_event("trial_finished", {"outcome": outcome})
    assert "[rule] keep it short [/INST]" in out.getvalue()


def test_a_queued_follow_up_is_said_before_the_line_cuts_the_description():
    long_reason = "inside the noise: +0.23 over 8 tasks × 4 seeds, 95% lower bound -0.12; [rule] lay out the shape"
    queued = TrialOutcome(1, "discard", file="producer.md", operator="add_example", composite=3.26, delta=0.23,
                          description=long_reason + near_miss.NEXT_UP, crossover_next=True)
    plain = TrialOutcome(2, "discard", file="producer.md", operator="rephrase", composite=3.0, delta=-0.1,
                         description=long_reason)
    for terminal in (True, False):  # the live table (60 characters of the idea), then a log's plain lines
        out = io.StringIO()
        with LiveView(Console(file=out, force_terminal=terminal, width=200)) as view:
            view.on_event("trial_finished", {"outcome": queued})
            view.on_event("trial_finished", {"outcome": plain})
        text = out.getvalue()
        assert near_miss.MARK in text and near_miss.NEXT_UP not in text  # the note itself is cut in both views
        assert f"{near_miss.MARK} · inside the noise" in text
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("trial")}  # the log's lines
    assert near_miss.MARK in lines["1"] and near_miss.MARK not in lines["2"]


def test_a_fault_of_the_display_gives_way_to_plain_lines_and_the_run_goes_on(monkeypatch):
    out = io.StringIO()
    view = LiveView(Console(file=out, force_terminal=True, width=200))

    def broken(self):  # the live display's rendering fails; plain lines do not render through it
        if not self.plain:
            raise ValueError("a rendering bug")

    with view:
        monkeypatch.setattr(LiveView, "_refresh", broken)
        view.on_event("trial_started", {"trial": 1, "file": "producer.md", "operator": "rephrase"})  # no raise
        view.on_event("trial_finished", {"outcome": TrialOutcome(1, "discard", file="producer.md",
                                                                 operator="rephrase", description="shorter")})
    text = out.getvalue()
    assert text.count("the progress display failed (ValueError: a rendering bug); plain lines from here on") == 1
    assert "trial   1 discard" in text  # the next event, as a plain line


def test_the_summary_says_a_near_miss_s_follow_up_waits_for_the_next_run(tmp_path):
    from autoresearch.search.summary import StudySummary

    summary = StudySummary("s", "autoresearch/s", "trials", [], {"baseline": 1, "discard": 1}, 3.0, 3.0, None, None,
                           1.0, "estimate", 1, queued_follow_ups=[4])
    console = Console(record=True, width=300)
    print_summary(console, summary, SimpleNamespace(runs_dir=tmp_path))
    assert ("next run   trial 4 ended inside the noise; its crossover with the incumbent is queued and runs first "
            "when the study resumes (the same `autoresearch run`)") in console.export_text()
    summary.queued_follow_ups = []
    console = Console(record=True, width=300)
    print_summary(console, summary, SimpleNamespace(runs_dir=tmp_path))
    assert "next run" not in console.export_text()


def test_the_summary_shows_names_the_user_chose_as_written_not_read_as_markup(tmp_path):
    from autoresearch.search.portfolios import PortfolioRow
    from autoresearch.search.summary import StudySummary

    def best(portfolio: str, study: str) -> PortfolioRow:
        return PortfolioRow(portfolio, study, 0, 3.0, None, 10.0, 1.0, 50.0, "estimate")

    study = "nightly [/x] [bold]"  # --study is free text; "[/x]" is a markup error, "[bold]" would vanish
    roles = [{"role": "producer", "model": "/models/[q4]/m.gguf", "calls": 1, "completion_rate": 1.0, "joules": 1.0,
              "load_joules": 0.0, "joules_per_1k_output_tokens": None, "prompt_tokens": 1, "completion_tokens": 1,
              "latency_s": 0.1, "swaps": 0, "load_s": 0.0, "energy_source": "estimate"}]
    summary = StudySummary(study, "autoresearch/nightly", "trials", [], {"baseline": 1}, 3.0, 3.0, None, None, 1.0,
                           "estimate", 1, roles=roles,
                           comparison=[best("[old]", "[/y]-study"), best("default", study)])
    console = Console(record=True, width=300)
    print_summary(console, summary, SimpleNamespace(runs_dir=tmp_path))
    shown = console.export_text()
    assert f"Study {study} on branch autoresearch/nightly — trial budget reached" in shown
    assert "/models/[q4]/m.gguf" in shown and "[old]" in shown and "[/y]-study" in shown
