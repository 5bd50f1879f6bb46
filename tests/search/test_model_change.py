"""A model that changes under its name (an `ollama pull`, another GGUF, a new llama.cpp build): the study's stored
scores are not compared with the new model's. The incumbent is evaluated again as a new baseline, and an identical
variant scored by the old model is evaluated again, not borrowed."""

from __future__ import annotations

import json

from scripted import ONLY_PRODUCER, Identified, ScriptedPipeline, producer_only

from autoresearch.lm.model_identity import PROMPT_FORMAT
from autoresearch.pipeline.program import prompt_format
from autoresearch.review.study_log import study_log
from autoresearch.review.trial_detail import trial_detail
from autoresearch.search.study import Study
from autoresearch.store import Store
from autoresearch.workspace.workspace import load_workspace


def _run(root, pipeline, identity: str | None, trials: int):
    factory = pipeline.factory if identity is None else (lambda config, backends: Identified(pipeline.backend,
                                                                                             identity))
    study = Study(load_workspace(root), backend_factory=factory, seed=1, backoff_s=0)
    try:
        return study.optimize(n_trials=trials)
    finally:
        study.close()


def _first_night(loop_workspace, identity: str | None):
    """Baseline "Answer.", trial 1 keeps "Answer!!!!", trial 2 discards "Answer!"; the third proposal is
    "Answer!" again, for the next run."""
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    pipeline = ScriptedPipeline(variants=["Answer!!!!\n", "Answer!\n", "Answer!\n"])
    first = _run(root, pipeline, identity, 2)
    assert [(o.number, o.status) for o in first.outcomes] == [(1, "keep"), (2, "discard")]
    return root, pipeline


def _trials(root) -> list[tuple[int, str]]:
    store = Store.for_workspace(root / "runs")
    try:
        name, = [r["name"] for r in store.conn.execute("SELECT name FROM studies")]
        return [(r["number"], r["status"]) for r in store.trials(name)]
    finally:
        store.close()


def _identity(root, model: str) -> str:
    """What a run stamps: each pipeline role's model identity and the harness's prompt format."""
    return json.dumps({"evaluator": model, "planner": model, "producer": model,
                       PROMPT_FORMAT: prompt_format(load_workspace(root))}, sort_keys=True)


def _models(root) -> list[str | None]:
    store = Store.for_workspace(root / "runs")
    try:
        return [r["models"] for r in store.conn.execute("SELECT models FROM evaluations ORDER BY id")]
    finally:
        store.close()


def test_the_same_models_reuse_the_studys_scores(loop_workspace):
    root, pipeline = _first_night(loop_workspace, "model A")
    second = _run(root, pipeline, "model A", 1)
    assert [(o.number, o.status) for o in second.outcomes] == [(3, "discard")]
    assert second.outcomes[0].description.startswith("identical to trial 2, not re-evaluated")
    assert _trials(root)[0] == (0, "baseline") and all(s != "baseline" for _, s in _trials(root)[1:])
    assert not any("models changed" in n for n in second.notes)
    assert set(_models(root)) == {_identity(root, "model A")}


def test_changed_models_evaluate_the_incumbent_again_and_borrow_no_score(loop_workspace):
    root, pipeline = _first_night(loop_workspace, "model A")
    before = len(_models(root))
    second = _run(root, pipeline, "model B", 1)
    assert _trials(root)[3:] == [(3, "baseline"), (4, "discard")]  # the incumbent's instructions, then "Answer!"
    trial, = second.outcomes
    assert trial.number == 4 and "identical" not in trial.description  # scored by model B, not borrowed
    changed, = [n for n in second.notes if "models changed" in n]
    assert changed.startswith("the models changed (planner, producer, evaluator: model A → model B) since the "
                              "incumbent (trial 1) was scored: its scores do not compare with new ones")
    store = Store.for_workspace(root / "runs")
    try:  # log and show say why this baseline was evaluated: not a commit of the user's
        restart, = study_log(store, second.study).restarts
        detail = trial_detail(store, root, second.study, 3)
    finally:
        store.close()
    assert restart.description == ("new baseline: the models changed (planner, producer, evaluator: model A → "
                                   "model B); the incumbent from here on")
    assert detail.restart == "the models changed (planner, producer, evaluator: model A → model B)"
    stamps = _models(root)
    assert set(stamps[before:]) == {_identity(root, "model B")}


def test_a_study_from_before_models_were_recorded_takes_them_as_the_ones_answering_now(loop_workspace):
    root, pipeline = _first_night(loop_workspace, None)
    store = Store.for_workspace(root / "runs")
    with store.conn:  # as a store from before m012 left them
        store.conn.execute("UPDATE evaluations SET models = NULL")
    store.close()
    second = _run(root, pipeline, "model A", 1)
    assert [(o.number, o.status) for o in second.outcomes] == [(3, "discard")]
    assert second.outcomes[0].description.startswith("identical to trial 2, not re-evaluated")
    adopted, = [n for n in second.notes if "did not record which models" in n]
    assert adopted.startswith(f"the study's {len(_models(root))} earlier evaluations did not record")
    assert None not in set(_models(root))


def test_a_study_stamped_before_the_gguf_middle_was_hashed_goes_on_with_its_scores(loop_workspace):
    root, pipeline = _first_night(loop_workspace, "gguf 9 bytes sha256 aaaa; llama.cpp 0.3.36 (AVX2)")
    now = "gguf 9 bytes sha256 aaaa middle 0123456789abcdef; llama.cpp 0.3.36 (AVX2)"
    stamped = len(_models(root))
    second = _run(root, pipeline, now, 1)
    assert [(o.number, o.status) for o in second.outcomes] == [(3, "discard")]
    assert second.outcomes[0].description.startswith("identical to trial 2, not re-evaluated")
    restamped, = [n for n in second.notes if "without a hash of the file's middle" in n]
    assert restamped.startswith(f"the study's {stamped} earlier evaluations")
    assert set(_models(root)) == {_identity(root, now)}
    third = _run(root, pipeline, "gguf 9 bytes sha256 aaaa middle fedcba9876543210; llama.cpp 0.3.36 (AVX2)", 1)
    assert any(n.startswith("the models changed") for n in third.notes)  # a middle that differs is another model


def test_a_model_swapped_during_the_run_is_caught_before_the_next_trial(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    serving = {"model": "model A"}

    def propose(parent: str) -> tuple[str, str]:
        serving["model"] = "model B"  # pulled by a timer while trial 1 runs
        return "one more mark", parent.rstrip("\n") + "!\n"

    pipeline = ScriptedPipeline(propose=propose)
    study = Study(load_workspace(root), seed=1, backoff_s=0,
                  backend_factory=lambda config, backends: Identified(pipeline.backend, serving["model"]))
    try:
        summary = study.optimize(n_trials=2)
    finally:
        study.close()
    assert [o.number for o in summary.outcomes] == [1, 3]
    assert _trials(root)[2] == (2, "baseline")  # between the two trials: the incumbent under model B
    swapped, = [n for n in summary.notes if "during the run" in n]
    assert swapped.startswith("the models changed (planner, producer, evaluator: model A → model B) during the run: "
                              "the committed instructions are evaluated again as a new baseline")
    b = _identity(root, "model B")
    store = Store.for_workspace(root / "runs")
    try:
        after = store.conn.execute("SELECT DISTINCT models FROM evaluations WHERE trial >= 2").fetchall()
        reused = dict(store.conn.execute("SELECT trial, SUM(reused) FROM calls GROUP BY trial").fetchall())
    finally:
        store.close()
    assert [r[0] for r in after] == [b]
    # Model A's replies are forgotten at the swap (lm/replies.py): the new baseline sends the first baseline's
    # requests, and model B answers every one; trial 3, a producer.md variant, reuses model B's planner replies.
    assert reused[2] == 0 and reused[3] > 0


def test_models_that_change_again_before_a_trial_finishes_stop_the_run(loop_workspace):
    root = producer_only(loop_workspace(extra=ONLY_PRODUCER))
    asked = []

    def flapping() -> str:  # a load balancer before two servers of different models: each asking, the other
        asked.append(1)
        return f"model {'AB'[len(asked) % 2]}"

    pipeline = ScriptedPipeline(propose=lambda parent: ("one more mark", parent.rstrip("\n") + "!\n"))
    study = Study(load_workspace(root), seed=1, backoff_s=0,
                  backend_factory=lambda config, backends: Identified(pipeline.backend, flapping))
    try:
        summary = study.optimize(n_trials=5)
    finally:
        study.close()
    assert summary.stop_reason == "models_changing"
    assert summary.stop_message.startswith("the models answering changed again before a trial could finish (")
    # Asked at the start (B), before trial 1 (A: a new baseline), again before trial 1 (B): stopped, no trial made.
    assert len(asked) == 3 and summary.outcomes == []
    assert _trials(root) == [(0, "baseline"), (1, "baseline")]


def test_a_harness_that_renders_its_prompts_otherwise_is_a_new_baseline(loop_workspace, monkeypatch):
    from autoresearch.search import study as study_module

    root, pipeline = _first_night(loop_workspace, "model A")
    before = prompt_format(load_workspace(root))
    monkeypatch.setattr(study_module, "prompt_format", lambda ws: "f00dfeed")  # an upgrade's other rendering
    second = _run(root, pipeline, "model A", 1)
    assert _trials(root)[3:] == [(3, "baseline"), (4, "discard")]
    changed, = [n for n in second.notes if "changed" in n]
    assert changed.startswith(f"the prompt format (a new autoresearch or DSPy) changed (prompt format: {before} → "
                              "f00dfeed) since the incumbent (trial 1) was scored")


def test_the_prompt_format_follows_what_the_stages_send(loop_workspace):
    root = loop_workspace()
    ws = load_workspace(root)
    assert prompt_format(ws) == prompt_format(load_workspace(root))  # stable: the same rendering, the same hash
    config = root / "autoresearch.toml"
    config.write_text(config.read_text().replace("[workspace]\n", "[workspace]\nrestate_instructions = true\n", 1))
    assert prompt_format(load_workspace(root)) != prompt_format(ws)  # the instructions restated after the inputs
