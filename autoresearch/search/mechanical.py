"""Mechanical edits: the variants written in code, not by the proposer model, from the parent's failing checks.

A small proposer model rewrites a whole text unreliably; these edits are exact and grounded in what the
fixed evaluation's checks want. Each returns (new text, idea) or None when it does not apply, and the
proposer model then writes the variant instead."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from .operators import MutationOperator

if TYPE_CHECKING:
    from .proposer import Feedback

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """A text's sentences and lines, stripped, empty ones left out."""
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]

# Deterministic rules that make an answer pass each kind of criterion; used when the model's own
# proposal is unusable, so that targeting a failing criterion still yields a grounded variant.
RULE_FOR_CRITERION = {
    "min_words": "Write at least {value} words.",
    "max_words": "Keep the whole answer under {value} words.",
    "min_sections": "Organise the answer under '## ' headings, using the headings the task names.",
    "exact_sections": "Use exactly the '## ' headings the task names, no more and no fewer.",
    "min_numbered": "Write list items as a numbered list: 1., 2., 3.",
    "exact_numbered": "Give exactly as many numbered items (1., 2., 3.) as the task asks for.",
    "contains": "Repeat the key terms of the task word for word.",
    "not_contains": "Never write '{value}'.",
    "regex": "Follow the exact line format the task asks for.",
    "no_placeholders": "Never leave placeholders such as TODO or [insert ...]; write real content.",
    "no_judge_address": "Write only for the reader; never address a grader or evaluator.",
}
SHARED = 2  # a check failed on this many tasks or more is the suite's own (a house style), not one task's

_REGEX_META = set(".^$*+?{}[]|()")


def literal_of(pattern: str) -> str | None:
    """The text a regex matches when it is plain text (escapes allowed: '\\?' is '?'), else None."""
    chars, escaped = [], False
    for char in pattern:
        if escaped:
            if char.isalnum():  # \d, \s, \b...: a class or an anchor, not a character
                return None
            chars.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in _REGEX_META:
            return None
        else:
            chars.append(char)
    return "".join(chars) if chars and not escaped else None


def _regex_parts(value: str) -> tuple[str | None, bool, bool]:
    """A regex check's plain text (None for a real pattern), whether it is anchored at a line's start, and
    whether it must be the whole line."""
    anchored = value.startswith("^")
    whole = anchored and value.endswith("$") and len(value) > 1
    return literal_of(value[1:-1] if whole else value[1:] if anchored else value), anchored, whole


def rule_for(criterion: str, times_failed: int) -> str:
    """The instruction that makes answers pass a failing check; "" for a kind without one.

    A check that failed on two or more tasks is one the whole suite shares (a house style): its rule names
    the exact text the check wants. One that failed once may be that task's own (its key word), which
    the other tasks should not be told to write: its rule stays general."""
    kind, _, value = criterion.partition(" ")
    if times_failed < SHARED or kind not in ("contains", "regex"):
        return RULE_FOR_CRITERION.get(kind, "").format(value=value)
    if kind == "contains":
        return f"Write '{value}' in every answer, word for word."
    text, anchored, whole = _regex_parts(value)
    if text is None:
        return f"Make a line of every answer match the pattern {value}."
    if whole:
        return f"Give every answer a line that reads exactly '{text}'."
    if anchored:
        return f"Start every answer with a line that begins '{text}'."
    return f"Write '{text}' in every answer, word for word."


SHAPE_LEAD = "Lay out every answer like this:"


def shape_for(failing_criteria) -> tuple[str, list[str]] | None:
    """A skeleton answer that passes every shared check with a plain text, and those checks: the opening
    line a start-anchored check wants, a body, then the '#' headings and exact lines the others want, each
    heading with a line under it; None when no shared check has a plain text to lay out.

    A shape shows every shared check at once, where target_failing_criterion adds one rule a trial, and a
    model that follows a layout passes them all. SmolLM2-135M only half does: on benchmarks/suite it wrote the
    heading in 15 of 64 answers (0 before), never the 'TL;DR: ' line, and copied the skeleton's own lines
    into 18 (docs/BENCHMARKS.md)."""
    opening, closing, extra, used = None, [], [], []
    for criterion, times_failed, _reason in failing_criteria:
        kind, _, value = criterion.partition(" ")
        if times_failed < SHARED or not value.strip():
            continue
        if kind == "regex":
            text, anchored, whole = _regex_parts(value)
            if text is None:
                continue
            if whole:
                closing.append(text)
            elif anchored and opening is None:
                opening = text.rstrip() + " one sentence that answers the task."
            elif anchored:
                closing.append(text.rstrip() + " one line.")
            else:  # text anywhere in the answer: the rule says so
                extra.append(rule_for(criterion, times_failed))
        elif kind == "contains" and value.lstrip().startswith("#"):
            closing += [value.strip(), "A line or two under that heading."]
        elif kind in ("contains", "max_words"):
            extra.append(rule_for(criterion, times_failed))
        else:
            continue
        used.append(criterion)
    if opening is None and not closing:
        return None
    lines = [SHAPE_LEAD, *([opening] if opening else []), "A few short lines that answer the task.", *closing]
    return "\n".join(lines + ([""] + extra if extra else [])) + "\n", used


def has_shape(text: str) -> bool:
    """Whether instructions already lay out a shape (a second one would only repeat it)."""
    return SHAPE_LEAD in text


ANSWER_FILE = "producer.md"  # the role whose answer the checks read


def shape_trial(feedback: Feedback, instructions: dict[str, str], optimizable: list[str],
                operator_names: list[str]) -> dict[str, str | int] | None:
    """The recipe of a first trial that lays out the answer's shape (add_example on the producer's file, from
    the incumbent), or None when the study may not use it or there is no shape to lay out.

    A study runs it first, before the sampler's own picks: every task failing the same check is the cheapest
    evidence a search gets, the edit costs no proposer call, and a sampler's random start-up trials would
    reach it late (1 recipe of 9 operators × the files) or, in a 300-call run, not at all."""
    if ("add_example" not in operator_names or ANSWER_FILE not in optimizable
            or has_shape(instructions.get(ANSWER_FILE, "")) or shape_for(feedback.failing_criteria) is None):
        return None
    return {"file": ANSWER_FILE, "operator": "add_example", "parent": 0}


def deterministic_edit(parent: str, operator: MutationOperator, feedback: Feedback, other: str,
                       rng: random.Random, *, file: str = ANSWER_FILE) -> tuple[str, str] | None:
    """The operators that need no model: a rule for the worst criterion, a shape of the answer the shared
    checks want (in the answer's own file: a planner told the answer's layout only plans around it), a deleted
    sentence, a crossover."""
    own = sentences(parent)
    if operator.name == "target_failing_criterion":
        # The most failed check whose rule the parent does not already have (a rule the model ignored
        # does not become a second trial of the same text).
        for criterion, times_failed, _reason in feedback.failing_criteria:
            rule = rule_for(criterion, times_failed)
            if rule and rule not in parent:
                return parent.rstrip() + "\n" + rule + "\n", f"rule for failing check '{criterion}': {rule}"
    if operator.name == "add_example" and file == ANSWER_FILE and not has_shape(parent):
        shaped = shape_for(feedback.failing_criteria)
        if shaped:
            shape, used = shaped
            return parent.rstrip() + "\n\n" + shape, "the answer's shape for the checks failed on several tasks: " + (
                ", ".join(f"'{c}'" for c in used))
    if operator.name == "delete_sentence" and len(own) > 1:
        gone = rng.randrange(len(own))
        kept = [s for i, s in enumerate(own) if i != gone]
        return "\n".join(kept) + "\n", f"deleted: {own[gone][:80]}"
    if operator.name == "crossover" and other:
        extra = [s for s in sentences(other) if s not in own]
        if extra:
            return "\n".join(own + extra) + "\n", f"crossover: added {len(extra)} sentence(s) from the other parent"
    return None
