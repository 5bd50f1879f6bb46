"""The benchmark's parts: the call budget, the workspace copies, the module the DSPy optimizers get."""

from __future__ import annotations

import copy
import tomllib

import dspy
import pytest

from autoresearch.bench.budget import (
    Budget,
    BudgetedBackend,
    BudgetExhausted,
    budgeted_factory,
)
from autoresearch.bench.dspy_methods import FILES, Tracker, TunablePipeline, make_metric
from autoresearch.bench.fake import FakePipeline
from autoresearch.bench.study_methods import WHY_CHARS, _Progress
from autoresearch.bench.workspaces import copy_workspace, dump_toml
from autoresearch.evaluation.paired import PairedComparison
from autoresearch.lm.adapter import GrammarAdapter
from autoresearch.lm.backends.base import ChatMessage, CompletionRequest
from autoresearch.lm.calls import CallRecorder, recording
from autoresearch.pipeline.harness import Harness
from autoresearch.pipeline.program import REVISE_SUFFIX
from autoresearch.pipeline.runner import evaluate_tasks
from autoresearch.search.keep_rule import Verdict
from autoresearch.search.results import TrialOutcome
from autoresearch.store import Store
from autoresearch.store.statuses import TrialStatus
from autoresearch.workspace.workspace import init_workspace, load_workspace


def test_budget_refuses_the_call_after_the_last_and_survives_copies():
    budget = Budget(2)
    backend = BudgetedBackend(FakePipeline().backend, budget)
    assert copy.deepcopy(backend) is backend and copy.copy(backend) is backend
    request = CompletionRequest(model="m", messages=(ChatMessage("system", "s"), ChatMessage("user", "u")))
    backend.complete(request)
    copy.deepcopy(backend).complete(request)
    with pytest.raises(BudgetExhausted):
        backend.complete(request)
    assert budget.used == 2 and len(budget.spans) == 2
    assert not issubclass(BudgetExhausted, Exception)  # so no `except Exception` in DSPy or the loop swallows it


def test_busy_seconds_count_overlapping_calls_once_within_the_window():
    # Two tasks side by side: calls 0-4 and 1-3 overlap (4 s busy, 6 s summed); 6-8 is 2 s more; 9-12 is cut at 10.
    budget = Budget(None)
    for start, end in [(1.0, 3.0), (0.0, 4.0), (6.0, 8.0), (9.0, 12.0)]:
        budget.spent(start, end)
    assert budget.model_s == 2 + 4 + 2 + 3
    assert budget.busy_s(0.0, 10.0) == 4 + 2 + 1
    assert budget.busy_s(2.0, 7.0) == 2 + 1  # clipped at both ends
    assert budget.busy_s(4.5, 5.5) == 0.0


def test_workspace_copy_applies_overrides_and_commits(tmp_path):
    source = init_workspace(tmp_path / "src")
    dest = copy_workspace(source, tmp_path / "copy", all_search=True,
                          update={"search": {"pruner": "none", "parents": 1},
                                  "portfolios": {"default": {"producer": {"n_ctx": 4096}}}})
    ws = load_workspace(dest)
    assert ws.settings.search.pruner == "none" and ws.settings.search.parents == 1
    assert ws.portfolio().producer.n_ctx == 4096 and ws.portfolio().producer.max_tokens == 280
    assert ws.suite.split("holdout") == [] and len(ws.suite.split("search")) == 6
    assert ws.instructions == load_workspace(source).instructions
    assert (dest / ".git").is_dir()


def test_dump_toml_round_trips():
    data = {"a": 1, "b": {"c": "x \"q\" ü", "d": [0.3, 0.7], "e": True, "f": {"g": None, "h": 2}},
            "ks": {"with space": 1}}
    expected = {"a": 1, "b": {"c": "x \"q\" ü", "d": [0.3, 0.7], "e": True, "f": {"h": 2}}, "ks": {"with space": 1}}
    assert tomllib.loads(dump_toml(data)) == expected


def test_tunable_pipeline_exposes_one_predictor_per_optimizable_file(tmp_path, no_counters):
    root = init_workspace(tmp_path / "ws")
    ws = load_workspace(root)
    fake = FakePipeline()
    harness = Harness(ws, ws.portfolio(), backend_factory=fake.factory, backoff_s=0)
    program = TunablePipeline(harness.pipeline, ["producer.md", "planner.md"])
    assert [name for name, _ in program.named_predictors()] == ["plan", "produce"]
    only = TunablePipeline(harness.pipeline, ["producer.md"])
    assert [name for name, _ in only.named_predictors()] == ["produce"]
    reset = program.reset_copy()  # DSPy's reset drops LMs; each predictor keeps its role's model here
    assert [p.lm for _, p in reset.named_predictors()] == [p.lm for _, p in program.named_predictors()]
    clone = program.deepcopy()
    clone.produce.signature = clone.produce.signature.with_instructions("Shout!!!")
    assert clone.instructions()["producer.md"] == "Shout!!!\n"
    assert program.instructions() == {f: t.strip() + "\n" for f, t in ws.instructions.items() if f in dict(FILES)}
    with dspy.context(adapter=GrammarAdapter()):
        clone.revise_answer("task", "plan", "draft", "critique")  # the revision step follows the producer
    assert clone.revise.signature.instructions == "Shout!!!" + REVISE_SUFFIX


def test_metric_scores_a_prediction_as_the_harness_scores_the_task(tmp_path, no_counters):
    """The DSPy path (program + metric + tracker) and the loop's path (Harness + evaluate_tasks) agree."""
    root = init_workspace(tmp_path / "ws")
    # The fake producer echoes its instructions and the judge counts their '!': the starter's producer.md has
    # none, and four words or more of it are a copy the degenerate guard zeroes, so with it both paths would
    # agree on a judge score of 0 whatever they did with the judge's reply.
    (root / "instructions" / "producer.md").write_text("Answer!!!\n")
    ws = load_workspace(root)
    fake = FakePipeline()
    tasks = ws.suite.split("search")
    budget = Budget(None)
    harness = Harness(ws, ws.portfolio(), backend_factory=budgeted_factory(budget, fake.factory), backoff_s=0)
    program = TunablePipeline(harness.pipeline, ws.settings.workspace.optimizable)
    tracker = Tracker(tasks, ws.settings.scoring, budget)
    metric = make_metric(harness, tasks, tracker, ws.settings.scoring, feedback=True)
    with recording(CallRecorder()), dspy.context(adapter=GrammarAdapter()):
        for task in tasks:
            example = dspy.Example(task=task.prompt, task_id=task.id).with_inputs("task")
            scored = metric(example, program(task=task.prompt), None, "produce", None)
            assert 0.0 <= scored.score <= 1.0 and "Judge score" in scored.feedback
    suite = evaluate_tasks(ws, Harness(ws, ws.portfolio(), backend_factory=fake.factory, backoff_s=0),
                           Store.for_workspace(ws.runs_dir), tasks, kind="bench", portfolio="default",
                           instructions=ws.instructions, split="search")
    assert suite.score.judge_mean > 0  # the judge's scores are part of what the two paths agree on
    assert tracker.best == pytest.approx(suite.composite)
    assert tracker.trajectory == [(budget.used, tracker.best)] and budget.used == 3 * len(tasks)


class _UselessProposer(FakePipeline):
    """Every proposal is the parent unchanged: no usable variant, so every trial fails."""

    def _mutate(self, text: str) -> str:
        return text.strip() + "\n"


def test_a_study_that_stops_on_its_own_is_resumed_until_the_budget_is_spent(tmp_path, no_counters):
    from autoresearch.bench.methods import BenchContext, run_method

    source = init_workspace(tmp_path / "src")
    # No noise measurement: its repeats of the baseline would spend the calls before the trials fail. Trials
    # without a usable variant stop a study after 5 × max_consecutive_failed (each asks the proposer 5 times).
    # The starter's 4 tasks × 1 seed set are 4 differences, enough for a bound at 90% (95% needs 5).
    root = copy_workspace(source, tmp_path / "bench", update={"search": {
        "operators": ["rephrase"], "noise_repeats": 1, "max_consecutive_failed": 1}, "scoring": {"confidence": 0.9}})
    fake = _UselessProposer()
    ctx = BenchContext(root=root, scratch=tmp_path / "runs", portfolio="default", inner_factory=fake.factory,
                       backoff_s=0)
    run = run_method(ctx, "autoresearch", 0, 60)
    assert run.stop == "budget" and len(run.calls) == run.used == 60
    assert any("resumed" in note for note in run.notes)  # five trials in a row without a variant stop a study
    assert run.best_search is not None and run.keeps == 0


def test_the_metric_checks_a_candidates_answers_against_the_candidates_own_instructions(tmp_path, no_counters):
    # GEPA's seed-0 pick made the producer write its producer.md back: the copy rule must compare the answer with
    # the candidate the optimizer is scoring, not with the harness's starting instructions.
    from autoresearch.testing import ScriptedPipeline

    ws = load_workspace(init_workspace(tmp_path / "ws"))
    scripted = ScriptedPipeline()  # its producer writes back what its system message says
    tasks = ws.suite.split("search")[:1]
    budget = Budget(None)
    harness = Harness(ws, ws.portfolio(), backend_factory=budgeted_factory(budget, scripted.factory), backoff_s=0)
    program = TunablePipeline(harness.pipeline, ["producer.md"]).deepcopy()
    candidate = " ".join(f"Step {word}: describe the {word} plainly and keep every {word} line short."
                         for word in ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"))
    program.produce.signature = program.produce.signature.with_instructions(candidate)
    metric = make_metric(harness, tasks, Tracker(tasks, ws.settings.scoring, budget), ws.settings.scoring,
                         feedback=True)
    with recording(CallRecorder()), dspy.context(adapter=GrammarAdapter()):
        example = dspy.Example(task=tasks[0].prompt, task_id=tasks[0].id).with_inputs("task")
        scored = metric(example, program(task=tasks[0].prompt), None, "produce", None)
    assert "degenerate answer: a copy of its instructions: " in scored.feedback


def test_a_study_methods_trial_details_say_where_each_race_ended_and_why_a_trial_failed():
    budget = Budget(100)
    progress = _Progress(budget)
    comparison = PairedComparison(deltas=(0.5, 0.4), tasks=2, repeats=1, dropped=0)

    def finish(outcome: TrialOutcome, calls: int) -> None:
        progress("trial_started", {})
        budget.used += calls
        progress("trial_finished", {"outcome": outcome})

    finish(TrialOutcome(1, TrialStatus.KEEP, "producer.md", "add_example", composite=3.1, delta=0.45,
                        evidence=Verdict(True, "kept", "kept", comparison, 0.95, 0.5)), 40)
    finish(TrialOutcome(2, TrialStatus.DISCARD, "producer.md", "rephrase", composite=3.0, delta=0.2,
                        evidence=Verdict(False, "confirm", "lost", comparison, 0.95, 0.5)), 30)
    finish(TrialOutcome(3, TrialStatus.FAILED, "planner.md", "compress",
                        description="the proposer gave no usable variant: " + "too long; " * 40), 5)
    finish(TrialOutcome(4, TrialStatus.PRUNED, "planner.md", "add_boundary", description="the screen's idea"), 8)

    details = progress.details
    assert [(d["status"], d["calls"], d["stage"]) for d in details] == [
        ("keep", 40, "kept"), ("discard", 30, "confirm"), ("failed", 5, None), ("pruned", 8, None)]
    why = details[2]["why"]
    assert why.startswith("the proposer gave no usable variant: too long;") and len(why) == WHY_CHARS
    assert [d["why"] for d in details if d["status"] != "failed"] == [None, None, None]
