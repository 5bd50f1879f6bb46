"""The degenerate-answer guard in a study: a variant whose answers loop never gains on the judge's word."""

from __future__ import annotations

import json

from click.testing import CliRunner
from scripted import ONLY_PRODUCER, ScriptedPipeline, producer_only

from autoresearch.cli.main import main
from autoresearch.evaluation.degenerate import FLAG
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace

LOOP = "Edit the recipe now. " * 20


class LoopingProducer(ScriptedPipeline):
    """Clean instructions, looping answers (what a small model does): the judge counts the '!' in them."""

    def respond(self, request):
        text = super().respond(request)
        if self.role_of(request) == "producer" and "!" in text:
            return text.rstrip() + "\n" + LOOP
        return text


def study(root, pipeline):
    return Study(load_workspace(producer_only(root)), backend_factory=pipeline.factory, seed=1, backoff_s=0)


def test_a_variant_whose_answers_loop_is_not_kept_and_says_why(loop_workspace):
    root = loop_workspace(extra=ONLY_PRODUCER)
    summary = study(root, LoopingProducer(variants=["Answer!!!\n"])).optimize(n_trials=1)

    assert [o.status for o in summary.outcomes] == ["discard"]
    store = Store.for_workspace(root / "runs")
    tasks = store.task_results(store.trial(summary.study, 1)["evaluation_id"])
    assert tasks and all(t["flags"] == FLAG for t in tasks)
    assert all(t["score_r1"] == 0 and t["critique"].startswith("degenerate answer: a repetition loop") for t in tasks)
    for t in tasks:  # the criteria stand as they checked the answer (max_words 400: passed)
        assert all(c["passed"] for c in json.loads(t["criteria_json"]))
        assert set(json.loads(t["dimensions_json"]).values()) == {0.0}
    baseline = store.trial(summary.study, 0)
    assert all(t["flags"] == "" for t in store.task_results(baseline["evaluation_id"]))

    # The morning's review says which answers were zeroed and why, beside the judge's 0.
    shown = CliRunner().invoke(main, ["show", "1", "-w", str(root)])
    assert shown.exit_code == 0, shown.output
    assert "Answers whose judge score a guard set to 0" in shown.output
    assert "t0 (after): degenerate answer: a repetition loop: " in shown.output
    assert "t0 (before)" not in shown.output  # the baseline's answers did not loop


def test_with_the_guard_off_the_same_variant_is_kept(loop_workspace):
    # The switch is for tasks whose right answer repeats itself; the same run then keeps the looping variant.
    root = loop_workspace(extra=ONLY_PRODUCER)
    config = root / "autoresearch.toml"
    text = config.read_text()
    assert "degenerate_guard = true" in text  # the starter's setting, turned off here
    config.write_text(text.replace("degenerate_guard = true", "degenerate_guard = false"))
    summary = study(root, LoopingProducer(variants=["Answer!!!\n"])).optimize(n_trials=1)
    assert [o.status for o in summary.outcomes] == ["keep"]


def test_eval_marks_a_looping_answer_and_counts_them(loop_workspace, monkeypatch):
    from autoresearch.lm import preflight
    from autoresearch.pipeline import harness

    root = producer_only(loop_workspace())
    (root / "instructions" / "producer.md").write_text("Answer!\n")  # the producer echoes it, then loops
    pipeline = LoopingProducer()
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    result = CliRunner().invoke(main, ["eval", "-w", str(root), "--split", "search"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│ t")]
    assert len(rows) == 2 and all("0.00 (degenerate)" in row for row in rows)
    assert "2 of 2 answers degenerate (no words, a repetition loop or a copy of the instructions): their judge score is 0" in result.output


def test_an_answer_that_copies_the_variants_instructions_is_zeroed(loop_workspace, monkeypatch):
    # The scripted producer writes its instructions back (what GEPA's pick made SmolLM2-135M do): the harness
    # measures the answer against the instructions it ran with.
    from autoresearch.lm import preflight
    from autoresearch.pipeline import harness

    root = producer_only(loop_workspace())
    echoed = "Answer! Write one short note for the team that says what changed, why it changed and what to do next.\n"
    (root / "instructions" / "producer.md").write_text(echoed)
    pipeline = ScriptedPipeline()
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    result = CliRunner().invoke(main, ["eval", "-w", str(root), "--split", "search", "--json"])
    assert result.exit_code == 0, result.output
    tasks = json.loads(result.stdout)["tasks"]
    assert tasks and all(t["flags"] == [FLAG] and t["score_r1"] == 0 for t in tasks)
    store = Store.for_workspace(root / "runs")
    critiques = [r["critique"] for r in store.conn.execute("SELECT critique FROM task_results")]
    assert all(c.startswith("degenerate answer: a copy of its instructions: ") for c in critiques)
