"""The target_failing_criterion operator's rules: grounded in the exact text a shared check wants."""

from __future__ import annotations

import random

import pytest

from autoresearch.evaluation.checks import check
from autoresearch.search.operators import BY_NAME
from autoresearch.search.proposer import (
    Feedback,
    deterministic_edit,
    literal_of,
    rule_for,
)
from autoresearch.workspace.config import Criterion

START = "You are a helpful assistant. Answer the task using the plan.\n"


def feedback(*failing: tuple[str, int]) -> Feedback:
    return Feedback((), (), tuple((c, n, "why") for c, n in failing))


def edit(parent: str, fb: Feedback) -> tuple[str, str] | None:
    return deterministic_edit(parent, BY_NAME["target_failing_criterion"], fb, "", random.Random(0))


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
