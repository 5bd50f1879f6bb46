"""Junk proposals: rejected before evaluation, asked again with another operator, never a backend failure."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess

from optuna.trial import TrialState
from scripted import ScriptedPipeline, producer_only

from autoresearch.errors import ServerError
from autoresearch.search.mechanical import RULE_FOR_CRITERION
from autoresearch.search.operators import select
from autoresearch.search.proposer import (
    JUNK_RETRIES,
    Feedback,
    Proposal,
    idea_of,
    junk_reason,
    propose_usable,
    unusable_reason,
)
from autoresearch.search.recovery import optuna_outcome
from autoresearch.search.study import Study
from autoresearch.store.statuses import NO_VARIANT
from autoresearch.workspace.workspace import load_workspace

TWO_OPERATORS = '\n[search]\noperators = ["rephrase", "compress"]\nproposer_temperatures = [0.5]\nnoise_repeats = 1\n'
PARENT = "You are a helpful assistant. Answer the task using the plan. Keep it short and use the headings asked for.\n"


def test_echoes_of_the_prompt_or_of_tried_ideas_and_gutted_texts_are_junk():
    assert "echoes the proposer's prompt" in junk_reason("You already tried: - add a rule\n", PARENT)
    assert "echoes the proposer's prompt" in junk_reason("[[ ## new_instructions ## ]]\nBe brief.\n", PARENT)
    assert "echoes the proposer's prompt" in junk_reason("Idea: be brief\nBe brief always.\n", PARENT)
    tried = ["Add a rule about headings", "Be more direct"]
    assert junk_reason("- Add a rule about headings\n- be more  direct\n", PARENT, tried) == \
        "it echoes the list of ideas already tried"
    assert "under a quarter" in junk_reason("Answer.\n", PARENT)
    assert junk_reason("1. 2. 3. !!!\n", "Be brief.\n") == "it has no instruction content (not one word)"
    # A crossover that carried a small model's symbol soup into a good parent.
    soup = PARENT + "##\n\n##\n\n1.1.1.1.1.1.1.1.1.1.1\n{ } ] ] ] a\n"
    assert junk_reason(soup, PARENT) == "its new text is mostly symbols (3% letters)"


def test_echoes_of_the_loops_notes_in_the_tried_list_are_junk():
    # Seen on the house-style suite: SmolLM2 copied part of a tried idea, with the loop's note, as the instructions.
    for echo in ("You are a helpful assistant. (delete_sentence, after 2 refused proposals)\n",
                 "You are a helpful assistant. (after 1 refused proposals; first asked of compress) (pruned)\n",
                 PARENT + "Start with TL;DR. (discard, -0.13)\n",
                 "1.2; 2019-3.47685_SjBKPZXJYHNUAQFGVEIwMzbWLnRvqTgDfCxkOiHRhAAAgcAMdCAeAHmADaMA (discard, +0)\n"):
        assert "echoes the proposer's prompt" in junk_reason(echo, PARENT)
    assert junk_reason(PARENT + "Keep each step short (keep it under 20 words).\n", PARENT) is None


def test_variants_that_copy_the_loops_markers_or_operator_names_are_junk():
    # Proposals of a 25-minute run on SmolLM2 (the starter), each screened on 4 tasks before this check.
    for copied, marker in (
            ("Your task is to write a new note-taking app.; dropped 2 (before second request was rejected by the "
             "deadline).(discard after last response from the previous prompt, but before this one; removed after "
             "first request of target_failing_criterion)\n", "; dropped 2"),
            ("[rule] deleted: Read the task and list the steps an answer should follow, in order.\n", "[rule]"),
            ("[described] added: Your task is completed, so now you can start with the next step.\n", "[described]"),
            ("Task backup-failure; Task release-notes: write notes for 2.3 (add_constraint first)\n", "add_constraint")):
        assert junk_reason(copied, PARENT) == f"it echoes the proposer's prompt ({marker!r})"
    # Instructions that only use the words, or a parent that holds a marker already, are not.
    assert junk_reason(PARENT + "Say which packets were dropped and why.\n", PARENT) is None
    held = PARENT + "Mark each rule as [rule] in the answer.\n"
    assert junk_reason(held + "Keep it under 200 words.\n", held) is None


def test_a_templates_unfilled_placeholder_on_a_line_of_its_own_is_junk_unless_the_parent_holds_it():
    # Seen on the house-style suite (bench_search seed 3): a planner.md of this one line, raced for 88 calls.
    assert junk_reason("[insert new instructions here]\n", "Plan the answer.\n") == \
        "it holds a template's unfilled placeholder ('[insert new instructions here]')"
    # An instruction template's slots, and what the no_placeholders check calls a placeholder in an answer, as a
    # line, a list item or a heading.
    for line, slot in (("<your name>", "<your name>"), ("{add more here}", "{add more here}"),
                       ("- [Instructions go here]", "[Instructions go here]"), ("TODO", "TODO"),
                       ("## [Your Name]", "[Your Name]"), ("{{company}}.", "{{company}}")):
        assert junk_reason(PARENT + line + "\n", PARENT) == f"it holds a template's unfilled placeholder ({slot!r})"
    # A slot the parent holds already stands.
    held = PARENT + "<your name>\n"
    assert junk_reason(held + "Keep it under 200 words.\n", held) is None
    # Sentences that name placeholders, among them the loop's own rule for the no_placeholders check, and
    # brackets that hold no slot, are instructions.
    for text in (RULE_FOR_CRITERION["no_placeholders"], RULE_FOR_CRITERION["not_contains"].format(value="TODO"),
                 "Sign each answer with [Your Name].", "Put the date in [brackets].", "Use [1] style citations.",
                 "Answer in <150 words>.", 'Reply as JSON: {"score": 3}.', "Your answer goes here, after the plan.",
                 "Link the [Runbook](https://example.com/runbook)."):
        assert junk_reason(PARENT + text + "\n", PARENT) is None


def test_real_edits_are_not_junk_even_short_ones():
    assert junk_reason(PARENT.replace("short", "brief"), PARENT) is None
    assert junk_reason("Answer the task using the plan. Use the headings asked for.\n", PARENT) is None  # compress
    assert junk_reason("Answer!\n", "Answer.\n") is None  # a short parent may have a short variant
    assert junk_reason("Never repeat an idea that was tried before.\n", PARENT, ["Be brief"]) is None
    # Added format lines and a JSON example are mostly symbols by count, not soup.
    example = PARENT + 'Reply as JSON, for example: {"score": 7, "reason": "clear steps"}\n## Summary\n## Steps\n'
    assert junk_reason(example, PARENT) is None


def test_a_junk_proposal_is_asked_again_with_another_operator_and_never_evaluated(loop_workspace):
    root = producer_only(loop_workspace(extra=TWO_OPERATORS))
    pipeline = ScriptedPipeline(variants=["You already tried: nothing\n", "Answer!\n"])
    summary = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    (trial,) = summary.outcomes
    assert trial.status == "keep" and "after 1 refused proposals" in trial.description
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    assert db.execute("SELECT COUNT(*) FROM calls WHERE role='proposer' AND trial=1").fetchone()[0] == 2
    # The keep is credited to the operator that made it (row, outcome, commit), not the one sampled first.
    sampled = json.loads(db.execute("SELECT params_json FROM trials WHERE number=1").fetchone()[0])["operator"]
    (made_by,) = {"rephrase", "compress"} - {sampled}
    assert trial.operator == made_by and f"first asked of {sampled}" in trial.description
    assert db.execute("SELECT operator FROM trials WHERE number=1").fetchone()[0] == made_by
    assert f"Autoresearch-Operator: {made_by}" in subprocess.run(
        ["git", "log", "-1", "--format=%B"], cwd=root, capture_output=True, text=True, check=True).stdout
    evaluated = {h for (h,) in db.execute("SELECT instructions_hash FROM evaluations WHERE trial=1")}
    assert len(evaluated) == 1  # only "Answer!": the echo never reached the pipeline


def test_junk_never_counts_toward_the_backend_down_streak(loop_workspace):
    root = producer_only(loop_workspace(extra=TWO_OPERATORS), "max_consecutive_failed = 1\n")
    # Junk in every try makes a failed trial; the backend answered every call, so the run goes on.
    pipeline = ScriptedPipeline(variants=["You already tried: x\n"] * (JUNK_RETRIES + 1) + ["Answer!\n"])
    summary = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1,
                    backoff_s=0).optimize(n_trials=2)
    assert [o.status for o in summary.outcomes] == ["failed", "keep"]
    assert summary.stop_reason == "trials"
    assert "the proposer gave no usable variant: " in summary.outcomes[0].description
    assert summary.outcomes[0].description.count("echoes the proposer's prompt") == JUNK_RETRIES + 1


def test_a_run_without_usable_variants_still_stops_after_its_own_longer_streak(loop_workspace):
    root = producer_only(loop_workspace(extra=TWO_OPERATORS), "max_consecutive_failed = 1\n")
    summary = Study(load_workspace(root), backend_factory=ScriptedPipeline(variants=[]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=20)
    assert summary.stop_reason == "failed_trials" and len(summary.outcomes) == 5
    # Each refusal says why the reply was no variant, not only that it was none.
    assert summary.outcomes[0].description.count("its new instructions are empty") == JUNK_RETRIES + 1
    assert summary.stop_message.startswith("5 trials in a row got no usable variant without a failed model call")


def test_a_reply_that_repeats_its_parent_or_runs_away_says_so():
    assert unusable_reason("Answer.\n", "Answer.\n") == "it repeats its parent unchanged"
    assert unusable_reason("  \n", "Answer.\n") == "its new instructions are empty"
    assert unusable_reason("a" * 801, "Answer.\n") == "it runs to 801 characters, over 4× its parent's 8"
    assert unusable_reason("Answer!\n", "Answer.\n") is None


class RunawayIdeaFirst(ScriptedPipeline):
    """The proposer's first reply is SmolLM2's runaway `idea`: digits until max_tokens, no new_instructions."""

    def respond(self, request):
        if self.role_of(request) == "proposer" and not self.calls_by_role.get("proposer"):
            self.calls_by_role["proposer"] = 1
            return '{ "idea" :"1.7.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1'
        return super().respond(request)


def test_a_reply_that_cannot_be_parsed_is_asked_again_like_junk_and_stays_recorded(loop_workspace):
    root = producer_only(loop_workspace(extra=TWO_OPERATORS))
    summary = Study(load_workspace(root), backend_factory=RunawayIdeaFirst(variants=["Answer!\n"]).factory, seed=1,
                    backoff_s=0).optimize(n_trials=1)
    (trial,) = summary.outcomes
    assert trial.status == "keep" and "after 1 refused proposals" in trial.description
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    calls = db.execute("SELECT status, failure_mode FROM calls WHERE role='proposer' AND trial=1 ORDER BY id").fetchall()
    assert calls == [("failed", "unparseable"), ("ok", None)]  # the failed call is kept, with its failure mode


def test_an_idea_that_says_nothing_is_replaced_by_what_the_edit_did():
    variant = PARENT + "Start with a one-line summary.\n"
    # Seen from SmolLM2 on the house-style suite: timestamps, an echo of the loop's note, a tried idea again.
    for empty in ("2023-07-30T12:48:39Z", "2023-02-05T12:58:27.8758874446289944", "",
                  "Journey to the first week (pruned)", "Add a summary line"):
        assert idea_of(empty, variant, PARENT, ["Add a summary line (discard, -0.20)"]) == \
            "[described] added: Start with a one-line summary."
    assert idea_of("Lead with a summary", variant, PARENT, ["Add a summary line (discard, -0.20)"]) == \
        "Lead with a summary"
    # An idea tried before matches whatever its spacing in the list (the junk check's echo test normalises too).
    assert idea_of("Add a summary line", variant, PARENT, ["Add  a summary\nline (discard, -0.20)"]) == \
        "[described] added: Start with a one-line summary."
    dropped = PARENT.replace(" Keep it short and use the headings asked for.", "")
    assert idea_of("12:00", dropped, PARENT) == "[described] dropped: Keep it short and use the headings asked for."
    reworded = "Answer the task using the plan.\nYou are a helpful assistant.\n"
    assert idea_of("1", reworded, "You are a helpful assistant.\nAnswer the task using the plan.\n") == \
        "[described] reordered or respaced (60 → 60 characters)"


def test_a_trial_whose_idea_says_nothing_records_what_its_edit_did(loop_workspace):
    root = producer_only(loop_workspace(extra=TWO_OPERATORS))
    pipeline = ScriptedPipeline(propose=lambda parent: ("2023-07-30T12:48:39Z", parent + "\nBe brief!\n"))
    Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0).optimize(n_trials=1)
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    assert db.execute("SELECT idea FROM trials WHERE number=1").fetchone() == ("[described] added: Be brief!",)



def test_the_proposer_sees_tried_ideas_without_the_loops_annotations():
    seen = []

    class Recording:
        def propose(self, parent, op, feedback, tried, **kw):
            seen.append(list(tried))
            return Proposal(parent + "Be brief.\n", "be brief", "model")

    tried = ["[described] added: Your task is X.; dropped 2 (after 1 refused proposals; first asked of "
             "target_failing_criterion) (pruned)", "[rule] rule for failing check 'max_words 120': Keep it short "
             "(discard, -0.31)", "Be direct (keep, +0.20)",
             "[rule] crossover: added 6 sentence(s) from the other parent (trial 1, which ended inside the noise) "
             "(keep, +0.64)"]
    (op,) = select(["rephrase"])

    proposal, refused = propose_usable(Recording(), PARENT, op, [op], Feedback((), (), ()), tried, other="",
                                       temperature=0.5, rng=random.Random(0))
    assert proposal is not None and refused == []
    assert seen == [["added: Your task is X. (pruned)",
                     "rule for failing check 'max_words 120': Keep it short (discard, -0.31)",
                     "Be direct (keep, +0.20)",
                     "crossover: added 6 sentence(s) from the other parent (keep, +0.64)"]]


def _first_trial_as_told(root, pipeline: ScriptedPipeline, n_trials: int):
    """A study of n_trials: its summary, Optuna's trials by number, and the store's row of trial 1."""
    study = Study(load_workspace(root), backend_factory=pipeline.factory, seed=1, backoff_s=0)
    try:
        summary = study.optimize(n_trials=n_trials)
        trials = {t.number: t for t in study.optuna.get_trials(deepcopy=False)}
        (row,) = [r for r in study.store.trials(study.name) if r["number"] == 1]
    finally:
        study.close()
    return summary, trials, row


def test_a_trial_without_a_usable_variant_is_told_to_the_sampler_as_its_recipes_worst(loop_workspace):
    # Told as failed, TPE would never see it, and would sample a recipe that gives junk as often as ever.
    root = producer_only(loop_workspace(extra=TWO_OPERATORS))
    pipeline = ScriptedPipeline(variants=["You already tried: x\n"] * (JUNK_RETRIES + 1) + ["Answer!\n"])
    summary, trials, row = _first_trial_as_told(root, pipeline, 2)
    assert [o.status for o in summary.outcomes] == ["failed", "keep"]
    assert (row["status"], row["failure"]) == ("failed", "no_variant")
    # Pruned without a value: TPE ranks it below every scored and screened trial (the recipe's worst).
    assert trials[1].state == TrialState.PRUNED and trials[1].value is None and not trials[1].intermediate_values
    assert trials[2].state == TrialState.COMPLETE


def test_a_trial_whose_proposer_call_failed_is_no_verdict_on_its_recipe(loop_workspace):
    root = producer_only(loop_workspace(extra=TWO_OPERATORS))

    def down(parent: str):
        raise ServerError("scripted: the proposer's server answered 500", backend="fake", model="m")

    summary, trials, row = _first_trial_as_told(root, ScriptedPipeline(propose=down), 1)
    assert summary.outcomes[0].status == "failed" and "model call failed" in summary.outcomes[0].description
    assert row["failure"] is None and trials[1].state == TrialState.FAIL


def test_the_sampler_is_told_a_failed_trial_as_pruned_only_when_it_got_no_usable_variant():
    base = {"composite": None, "evaluation_id": None}
    assert optuna_outcome({**base, "status": "failed", "failure": NO_VARIANT}) == (TrialState.PRUNED, None)
    assert optuna_outcome({**base, "status": "failed", "failure": None}) == (TrialState.FAIL, None)
    assert optuna_outcome({**base, "status": "failed"}) == (TrialState.FAIL, None)  # a row from before m013


def test_a_variant_that_loops_on_one_line_is_junk():
    # Random search's keep on the embedded model (docs/BENCHMARKS.md, 2026-12-05): its producer copied the line.
    looped = "You're a helpful assistant.\n" + "This is how you can edit: {#recipe}\n" * 14
    reason = junk_reason(looped, PARENT)
    assert reason is not None and reason.startswith("it is a repetition loop: ")
    assert junk_reason(PARENT + "Use the headings asked for, in the order asked for.\n", PARENT) is None
