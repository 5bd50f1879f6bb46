"""The mechanical edits: rules and answer shapes grounded in the exact text a shared check wants."""

from __future__ import annotations

import random

import pytest

from autoresearch.evaluation.checks import check
from autoresearch.search.mechanical import (
    SHAPE_LEAD,
    deterministic_edit,
    literal_of,
    rule_for,
    shape_for,
)
from autoresearch.search.operators import BY_NAME
from autoresearch.search.proposer import Feedback, junk_reason
from autoresearch.workspace.suite import Criterion

START = "You are a helpful assistant. Answer the task using the plan.\n"


def feedback(*failing: tuple[str, int]) -> Feedback:
    return Feedback((), (), tuple((c, n, "why") for c, n in failing))


def edit(parent: str, fb: Feedback, operator: str = "target_failing_criterion") -> tuple[str, str] | None:
    return deterministic_edit(parent, BY_NAME[operator], fb, "", random.Random(0))


@pytest.mark.parametrize("pattern, text", [("TL;DR: ", "TL;DR: "), (r"Status\?", "Status?"), ("a.b", None),
                                           (r"\d+ items", None), ("(x|y)", None), ("", None), ("trailing\\", None)])
def test_literal_of_reads_plain_text_and_refuses_real_patterns(pattern, text):
    assert literal_of(pattern) == text


def test_a_house_style_check_failed_on_several_tasks_gets_a_rule_naming_its_exact_text():
    assert rule_for("regex ^TL;DR: ", 8) == "Start every answer with a line that begins 'TL;DR: '."
    assert rule_for("contains ## Next steps", 5) == "Write '## Next steps' in every answer, word for word."
    assert rule_for("regex ^Verdict: (yes|no)$", 3) == "Make a line of every answer match the pattern ^Verdict: (yes|no)$."
    assert rule_for("regex ^Done$", 2) == "Give every answer a line that reads exactly 'Done'."


def test_a_check_failed_on_one_task_only_keeps_the_general_rule():
    # "contains certificate" is one task's key word: telling every task to write it would hurt the others.
    assert rule_for("contains certificate", 1) == "Repeat the key terms of the task word for word."
    assert rule_for("regex ^TL;DR: ", 1) == "Follow the exact line format the task asks for."
    assert rule_for("max_words 150", 6) == "Keep the whole answer under 150 words."


def test_an_answer_written_as_the_rule_says_passes_the_check():
    # The answer is built from the rule's quoted text: a rule that misquoted what the check wants fails here.
    for criterion in ("regex ^TL;DR: ", "contains ## Next steps", "regex ^Done$", r"regex ^Status\?"):
        kind, _, value = criterion.partition(" ")
        quoted = rule_for(criterion, 3).split("'")[1]
        answer = f"{quoted}\nSome text." if kind == "regex" else f"Some text.\n{quoted}\nMore."
        assert check(answer, Criterion(kind=kind, value=value)).passed, criterion
        assert not check("Some text.", Criterion(kind=kind, value=value)).passed, criterion


def test_the_operator_adds_the_rule_of_the_most_failed_check_the_parent_lacks():
    fb = feedback(("regex ^TL;DR: ", 8), ("contains ## Next steps", 6))
    text, idea = edit(START, fb)
    assert text == START + "Start every answer with a line that begins 'TL;DR: '.\n"
    assert idea.startswith("rule for failing check 'regex ^TL;DR: '")
    # The model ignored that rule and the check still fails most: the next trial adds the second check's rule.
    text2, idea2 = edit(text, fb)
    assert text2 == text + "Write '## Next steps' in every answer, word for word.\n"
    assert "contains ## Next steps" in idea2
    assert edit(text2, fb) is None  # every rule already there: the proposer model writes the variant


HOUSE_STYLE = (("regex ^TL;DR: ", 8), ("contains ## Next steps", 8), ("max_words 150", 3))


def test_the_shape_lays_out_every_shared_check_at_once():
    text, idea = edit(START, feedback(*HOUSE_STYLE), "add_example")
    assert text == START + "\n" + "\n".join([
        SHAPE_LEAD, "TL;DR: one sentence that answers the task.", "A few short lines that answer the task.",
        "## Next steps", "A line or two under that heading.", "", "Keep the whole answer under 150 words.", ""])
    assert idea == ("the answer's shape for the checks failed on several tasks: 'regex ^TL;DR: ', "
                    "'contains ## Next steps', 'max_words 150'")
    assert junk_reason(text, START) is None  # the loop's junk filter lets it through to an evaluation


def test_an_answer_copied_from_the_shape_passes_the_checks_it_was_built_from():
    checks = HOUSE_STYLE + (("regex ^Verdict: yes$", 2), (r"regex Status\?", 4), ("contains deadline", 2))
    shape, used = shape_for(tuple((c, n, "why") for c, n in checks))
    assert used == [c for c, _ in checks]
    # The skeleton's own lines, as a model that copies the layout would write them.
    answer = "\n".join(line for line in shape.splitlines()[1:] if line and not line.startswith(("Keep", "Write")))
    answer += "\nStatus? deadline"  # the rules under the skeleton ask for these words
    for criterion, _ in checks:
        kind, _, value = criterion.partition(" ")
        assert check(answer, Criterion(kind=kind, value=int(value) if kind == "max_words" else value)).passed, criterion


def test_no_shape_from_one_task_s_checks_or_real_patterns_and_none_twice():
    # A check failed on one task is that task's own; a real pattern has no text to show; a word limit alone
    # has no layout: the proposer model writes the example instead.
    assert shape_for((("regex ^TL;DR: ", 1, "why"), ("contains ## Next steps", 1, "why"))) is None
    assert shape_for(((r"regex ^\d+ items", 5, "why"), ("max_words 150", 5, "why"))) is None
    shaped, _ = edit(START, feedback(*HOUSE_STYLE), "add_example")
    assert edit(shaped, feedback(*HOUSE_STYLE), "add_example") is None  # the parent already has a shape


def test_the_shape_goes_to_the_answer_s_own_file_only():
    # A planner told the answer's layout only plans around it: add_example on planner.md is the model's.
    fb = feedback(*HOUSE_STYLE)
    assert SHAPE_LEAD in edit(START, fb, "add_example")[0]
    assert deterministic_edit(START, BY_NAME["add_example"], fb, "", random.Random(0), file="planner.md") is None
