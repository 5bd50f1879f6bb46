"""The first trial after a baseline lays out the answer's shape for the checks every task fails (shape_first)."""

from __future__ import annotations

import optuna
from scripted import ScriptedPipeline, producer_only

from autoresearch.search.mechanical import SHAPE_LEAD, shape_trial
from autoresearch.search.proposer import Feedback
from autoresearch.search.study import Study
from autoresearch.workspace.workspace import load_workspace

# Every task shares a house style that the starting "Answer." never asks for.
HOUSE_STYLE = ('criteria = [{ kind = "regex", value = "^TL;DR: " }, { kind = "contains", value = "## Next steps" }, '
               '{ kind = "max_words", value = 400 }]\n')
NO_NOISE = "\n[search]\nproposer_temperatures = [0.5]\nnoise_repeats = 1\n"


def house_style_workspace(loop_workspace, extra: str = "") -> Study:
    root = loop_workspace(search_tasks=3, extra=NO_NOISE + extra)
    tasks = (root / "rubrics" / "tasks.toml").read_text()
    (root / "rubrics" / "tasks.toml").write_text(
        tasks.replace('criteria = [{ kind = "max_words", value = 400 }]\n', HOUSE_STYLE))
    return producer_only(root)


def waiting(study: Study) -> list[dict]:
    """The recipes queued for the next ask (Optuna keeps an enqueued trial's params as its fixed params)."""
    return [t.system_attrs["fixed_params"] for t in study.optuna.get_trials(states=(optuna.trial.TrialState.WAITING,))]


def test_the_shape_is_the_first_trial_and_costs_no_proposer_call(loop_workspace):
    root = house_style_workspace(loop_workspace)
    # The proposer's only scripted text would be tried if the sampler picked the first recipe.
    pipeline = ScriptedPipeline(variants=["Answer!\n"])
    summary = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=1)
    [outcome] = summary.outcomes
    assert (outcome.file, outcome.operator) == ("producer.md", "add_example")
    assert outcome.description.startswith("[rule] the answer's shape for the checks failed on several tasks")
    assert pipeline.calls_by_role.get("proposer", 0) == 0
    # The scripted producer writes out its instructions, so the shape passes both checks on every task: a keep.
    assert outcome.status == "keep"
    assert SHAPE_LEAD in (root / "instructions" / "producer.md").read_text()
    assert any("lays out the answer's shape" in note for note in summary.notes)


def test_shape_first_off_queues_nothing(loop_workspace):
    on = house_style_workspace(loop_workspace)
    pipeline = ScriptedPipeline()
    study = Study(load_workspace(on), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    study.optimize(n_trials=0)  # the baseline only: the queued trial waits for the next run
    assert waiting(study) == [{"file": "producer.md", "operator": "add_example", "parent": 0}]

    (on / "runs").rename(on.parent / "first-runs")  # a fresh store and Optuna study
    off = producer_only(on, "shape_first = false\n")
    study = Study(load_workspace(off), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    study.optimize(n_trials=0)
    assert waiting(study) == []


def test_no_shape_trial_without_the_operator_the_file_or_a_shape():
    fb = Feedback((), (), (("regex ^TL;DR: ", 4, "why"),))
    start = {"producer.md": "Answer.\n"}
    assert shape_trial(fb, start, ["producer.md"], ["add_example"]) == {
        "file": "producer.md", "operator": "add_example", "parent": 0}
    assert shape_trial(fb, start, ["producer.md"], ["rephrase"]) is None
    assert shape_trial(fb, start, ["planner.md"], ["add_example"]) is None
    assert shape_trial(Feedback((), (), (("regex ^TL;DR: ", 1, "why"),)), start, ["producer.md"],
                       ["add_example"]) is None  # one task's check: no house style
    shaped = {"producer.md": f"Answer.\n{SHAPE_LEAD}\nTL;DR: one sentence.\n"}
    assert shape_trial(fb, shaped, ["producer.md"], ["add_example"]) is None


def test_a_shape_already_evaluated_is_not_proposed_again_the_proposer_model_writes_the_example(loop_workspace):
    # The judge scores an answer that carries the shape 0, the rest 5: the shape is discarded (no pruning, so
    # its full screen is the twin a repeat would find).
    root = house_style_workspace(loop_workspace, 'pruner = "none"\n')
    pipeline = ScriptedPipeline(variants=["Answer with an example!\n"],
                                score=lambda answer, task: 0 if SHAPE_LEAD in answer else 5)
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    [shape] = study.optimize(n_trials=1).outcomes
    assert shape.status == "discard" and "the answer's shape" in shape.description
    study.optuna.enqueue_trial({"file": "producer.md", "operator": "add_example", "parent": 0})
    [again] = study.optimize(n_trials=1).outcomes
    # Without the check the same edit of the same parent would be trial 1's twin, a trial slot for nothing.
    assert "identical to trial" not in again.description
    assert not again.description.startswith("[rule]")
    assert pipeline.calls_by_role["proposer"] == 1
