"""The degenerate-answer guard's rule: empty answers and repetition loops, and ordinary answers let through."""

from __future__ import annotations

import pytest

from autoresearch.evaluation.degenerate import (
    MIN_COPY_WORDS,
    MIN_WORDS,
    copied_share,
    degenerate,
    repeated_share,
)

# Random search's keep on the embedded model (docs/BENCHMARKS.md, 2026-12-05): the producer wrote its
# instructions' last line again and again until max_tokens, and SmolLM2-135M as judge rated it 6.2 of 10.
LOOPED = ("You're a helpful assistant. The task is to edit a recipe on a website.\n"
          + "This is how you can edit: {#recipe}\n" * 14 + "This is how you")

ORDINARY = """TL;DR: Move the nightly backup to 02:00 so it no longer overlaps the batch import.

## Why
The import now runs until 01:40 and both jobs read the same disks, so the backup took three hours last week.

| job | start | end |
| --- | --- | --- |
| import | 00:00 | 01:40 |
| backup | 02:00 | 03:10 |

## Next steps
1. Change the cron entry on db-1 and db-2.
2. Watch the first two runs and compare their durations with last week's.
3. Tell the on-call team in the handover notes.
"""


def test_a_line_written_again_and_again_is_a_loop_named_with_its_phrase():
    reason = degenerate(LOOPED)
    assert reason is not None and reason.startswith("a repetition loop: ")
    assert "'this is how you' 15 times" in reason


def test_a_loop_without_line_breaks_is_caught_too():
    text = "Here is the plan. " + "We will edit the recipe and then " * 12
    assert degenerate(text) is not None


@pytest.mark.parametrize("text", ["", "   \n\t", "...\n---\n```\n```", "| | |\n| --- | --- |"])
def test_an_answer_without_words_is_degenerate(text):
    assert degenerate(text) == "no words in the answer"


def test_an_ordinary_answer_with_a_table_and_a_list_is_not():
    # Table borders and list markers are not words, so their repetition is not counted.
    assert repeated_share(ORDINARY) < 0.05
    assert degenerate(ORDINARY) is None


def test_a_short_answer_is_too_short_to_loop():
    text = "yes " * (MIN_WORDS - 1)
    assert repeated_share(text) > 0.8 and degenerate(text) is None
    assert degenerate(text + "yes") is not None  # one word more and it is measured


# The second suite's shape trial (benchmarks/summary-risk, draw 2007): SmolLM2-135M answered with the layout's own
# placeholder lines in 4 or 5 of 8 tasks per seed set; its judge scored each 3.0 to 3.8 of 10.
SHAPE = ("You are a helpful assistant. Answer the task using the plan.\n\nLay out every answer like this:\n"
         "Summary: one sentence that answers the task.\nA few short lines that answer the task.\n## Risks\n"
         "A line or two under that heading.\n")


@pytest.mark.parametrize("answer", [
    "One sentence that answers the task.",
    "A line or two under that heading.",
    "A few short lines that answer the task.\n## Risks",
    "1. 2. 3.\nYou are a helpful assistant. Answer the task using the plan.",
])
def test_a_short_answer_made_of_its_instructions_lines_is_a_copy(answer):
    assert len(answer.split()) < MIN_WORDS  # below the loop measure's floor
    reason = degenerate(answer, [SHAPE], "Say whether to release a risky change behind a feature flag.")
    assert reason is not None and reason.startswith("a copy of its instructions")


def test_a_short_answer_of_its_own_words_is_not_a_copy():
    task = "Say whether to release a risky change behind a feature flag."
    assert degenerate("Release it behind the flag, off by default, for staff first.", [SHAPE], task) is None
    # the task's own words are not counted as copied, however short the answer
    assert degenerate("Release a risky change behind a feature flag.", [SHAPE + task], task) is None
    # too few words for a 4-gram: nothing to measure
    assert MIN_COPY_WORDS == 4 and degenerate("One sentence answers.", [SHAPE], task) is None


def test_an_answer_that_repeats_itself_once_is_not_a_loop():
    # Written twice, a text repeats just under half its 4-grams: an answer that restates its summary, not a loop.
    twice = ORDINARY + "\n" + ORDINARY
    assert 0.45 < repeated_share(twice) < 0.5
    assert degenerate(twice) is None
    assert degenerate(twice + ORDINARY) is not None  # three times is


def test_repeated_share_counts_case_insensitively():
    assert repeated_share("Edit the recipe now. edit THE Recipe now.") == pytest.approx(1 - 4 / 5)
    assert repeated_share("one two three") == 0.0  # fewer than 4 words: no 4-grams


def test_a_numbered_list_of_one_item_is_a_loop_whatever_its_numbers():
    # SmolLM2-135M on the benchmark suite, judged 9.8 of 10: the numbers made its 4-grams look distinct.
    listed = "".join(f"{i}. Report a Security Bug to the Security Team\n" for i in range(1, 11))
    assert degenerate(listed) is not None
    assert degenerate("".join(f"{i}. {step}\n" for i, step in enumerate(ORDINARY.split(". "), 1))) is None


# GEPA's pick on the benchmark suite (docs/BENCHMARKS.md, 2026-12-05): the producer wrote the last sentence of its
# producer.md back, twice, on every task, and SmolLM2-135M as judge rated that 4.8 of 10 on average.
GEPA_PRODUCER = ("I will explain the plan with detailed feedback.\n\nThe plan is to:\n\n1. Install a new TLS "
                 "certificate with a trusted certificate provider.\n\nThis plan is designed to provide detailed "
                 "instructions, detailed feedback, and a detailed plan with detailed instructions.\n")
GEPA_ANSWER = ("This plan is designed to provide detailed instructions, detailed feedback, and a detailed plan with "
               "detailed instructions. ") * 2
TASK = "Our service is called billing-api. Write a short note for the team on how to name new services."


def test_an_answer_that_copies_its_instructions_back_is_degenerate():
    assert repeated_share(GEPA_ANSWER) < 0.5  # written twice: no loop by itself
    reason = degenerate(GEPA_ANSWER, [GEPA_PRODUCER], TASK)
    assert reason is not None and reason.startswith("a copy of its instructions: 90% of its 4-word sequences")  # all but the seam
    assert degenerate(GEPA_ANSWER) is None  # measured against no instructions, nothing is copied


def test_an_answer_that_fills_in_a_template_from_its_instructions_is_not_a_copy():
    producer = "Answer in this shape:\nTL;DR: one sentence that answers the task.\n## Next steps\nA line or two.\n"
    answer = ("TL;DR: one sentence that answers the task: name services after what they do, like billing-api.\n"
              "## Next steps\nRename the two services that still carry team names, and add the rule to the "
              "handbook so that new services follow it from the start.\n")
    assert 0.0 < copied_share(answer, [producer], TASK) < 0.5
    assert degenerate(answer, [producer], TASK) is None


def test_what_the_task_says_is_not_counted_as_copied_from_the_instructions():
    producer = "Write a short note for the team on how to name new services, in plain words for everyone.\n"
    answer = ("Write a short note for the team on how to name new services, in plain words for everyone "
              "who reads it: our service is called billing-api.")
    assert copied_share(answer, [producer]) > 0.5
    assert copied_share(answer, [producer], TASK) < 0.5  # the shared words are the task's own
