"""The proposer role: writes an instruction variant from a parent, a mutation operator and feedback."""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import dspy

from ..errors import UnparseableOutput
from ..evaluation.checks import PLACEHOLDER_PATTERNS
from ..evaluation.degenerate import degenerate
from ..lm.adapter import DataField, GrammarAdapter
from ..lm.engine import backend_error_in
from ..text import one_line
from . import near_miss
from .mechanical import ANSWER_FILE, deterministic_edit, sentences
from .operators import BY_NAME, MutationOperator


def proposer_seeds(seed: int | None) -> random.Random:
    """Where a run's proposer calls draw their seeds (its role sets none): from the run's seed when given, so that
    `--seed N` repeats the proposals on the same machine and build; else from the OS."""
    return random.Random(None if seed is None else f"proposer-{seed}")

PROPOSER_INSTRUCTIONS = (Path(__file__).parent / "proposer.md").read_text(encoding="utf-8")
MAX_GROWTH = 4.0  # a variant more than 4× its parent's length is the model rambling, not an edit

IDEA_CHARS = 160


class ProposeVariant(dspy.Signature):
    """Write improved instructions."""

    # In the order they change from one proposer call to the next, the steadiest first: llama.cpp computes again
    # only what follows the first token that differs from its last prompt. Trials mostly start from the same
    # parent (its feedback, the longest input), of either file (its text; the ideas tried on it), and a refused
    # proposal is asked again with another change (propose_usable).
    feedback: str = dspy.InputField()
    current_instructions: str = DataField()
    already_tried: str = dspy.InputField()
    other_version: str = DataField("a second good version, for crossover")
    change: str = dspy.InputField()
    # Bounded in the reply's grammar: SmolLM2's idea ran on until max_tokens in 10 of 175 proposer calls of a
    # 25-minute run, each a whole call (320 tokens) lost; the review reads ideas cut to 160 characters anyway.
    idea: str = dspy.OutputField(desc="the change in one line", max_length=IDEA_CHARS)
    new_instructions: str = dspy.OutputField(desc="the complete new instructions")


EXAMPLES = 3  # weak tasks kept with the feedback; the proposer shows [search] proposer_examples of them
TASK_CHARS, OUTPUT_CHARS, CRITIQUE_CHARS = 300, 500, 240
CHARS_PER_TOKEN = 3.0  # a conservative guess at a prompt's tokens from its length (English runs ~4 a token)


@dataclass(frozen=True)
class Example:
    """One task the parent did badly on, as the proposer sees it: what was asked, what was written, and
    what the checks and the judge said of it."""

    task_id: str
    task: str
    output: str
    failed_checks: tuple[str, ...]  # "criterion: reason"
    critique: str
    judge_score: float

    def render(self) -> str:
        lines = [f"Task {self.task_id}: {self.task}", f"Answer written (excerpt): {self.output}",
                 f"Judge: {self.judge_score:.1f}/10. {self.critique}".rstrip()]
        if self.failed_checks:
            lines.append("Failed checks: " + "; ".join(self.failed_checks))
        return "\n".join(lines)


@dataclass(frozen=True)
class Feedback:
    """What the parent's evaluation says to fix: critiques, weakest dimensions, failing criteria, and a few
    of its weakest tasks in full (examples)."""

    critiques: tuple[str, ...]
    weakest_dimensions: tuple[tuple[str, float], ...]
    failing_criteria: tuple[tuple[str, int, str], ...]  # (criterion, times failed, an example reason)
    examples: tuple[Example, ...] = ()  # the weakest first

    def render(self) -> str:
        lines = []
        if self.failing_criteria:
            lines.append("Checks that failed most often:")
            lines += [f"- {c} (failed {n}×: {reason})" for c, n, reason in self.failing_criteria]
        if self.weakest_dimensions:
            lines.append("Weakest judged qualities: " + ", ".join(f"{d} {s:.1f}/10" for d, s in self.weakest_dimensions))
        if self.critiques:
            lines.append("Judge critiques:")
            lines += [f"- {c}" for c in self.critiques]
        if self.examples:
            lines.append("Where the current instructions did worst:")
            lines += [example.render() for example in self.examples]
        return "\n".join(lines) or "No feedback yet."

    def fewer_examples(self) -> Feedback:
        """The same feedback without its last (least weak) example."""
        return replace(self, examples=self.examples[:-1])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Feedback:
        return cls(tuple(data["critiques"]), tuple(tuple(d) for d in data["weakest_dimensions"]),
                   tuple(tuple(c) for c in data["failing_criteria"]),
                   tuple(Example(**{**e, "failed_checks": tuple(e["failed_checks"])})
                         for e in data.get("examples", ())))


def weakest_examples(rows: Sequence, prompts: Mapping[str, str], n: int = EXAMPLES) -> tuple[Example, ...]:
    """The n tasks with the lowest composite-like score (0.7 × judge + 0.3 × checks passed × 10) that have an
    answer to show: not failed model calls, not answers the guard zeroed for addressing the judge, and only
    tasks in prompts (the search tasks: a holdout task is never shown to the proposer)."""
    shown = [r for r in rows if r["task_id"] in prompts and not r["failed"]
             and "judge_directed" not in (r["flags"] or "") and (r["output_r1"] or r["output"])]

    def weakness(row) -> float:
        passed = row["criteria_passed"] / row["criteria_total"] if row["criteria_total"] else 1.0
        return 0.7 * row["score_r1"] + 3.0 * passed

    examples = []
    for row in sorted(shown, key=weakness)[:n]:
        checks = [c for c in json.loads(row["criteria_json"]) if not c["passed"]]
        examples.append(Example(
            task_id=row["task_id"], task=one_line(prompts[row["task_id"]], TASK_CHARS),
            output=one_line(row["output_r1"] or row["output"], OUTPUT_CHARS),
            failed_checks=tuple(f"{c['criterion']}: {c['reason']}" for c in checks[:3]),
            critique=one_line(row["critique"] or "", CRITIQUE_CHARS), judge_score=float(row["score_r1"])))
    return tuple(examples)


def feedback_from(task_rows: Iterable, prompts: Mapping[str, str] | None = None) -> Feedback:
    """Summarise stored task results (task_results rows); with the tasks' prompts, also the weakest tasks."""
    rows = list(task_rows)
    failed: Counter[str] = Counter()
    reasons: dict[str, str] = {}
    dims: dict[str, list[float]] = {}
    critiques = []
    for row in rows:
        if row["critique"]:
            critiques.append(one_line(row["critique"], 200))
        for name, score in json.loads(row["dimensions_json"]).items():
            dims.setdefault(name, []).append(score)
        for check in json.loads(row["criteria_json"]):
            if not check["passed"]:
                failed[check["criterion"]] += 1
                reasons.setdefault(check["criterion"], check["reason"])
    means = sorted(((d, sum(v) / len(v)) for d, v in dims.items()), key=lambda x: x[1])
    top = tuple((c, n, reasons[c]) for c, n in failed.most_common(3))
    examples = weakest_examples(rows, prompts) if prompts is not None else ()
    return Feedback(tuple(critiques[:3]), tuple(means[:2]), top, examples)


@dataclass(frozen=True)
class Proposal:
    text: str
    idea: str
    source: str  # "model" (the proposer wrote it) or "rule" (a mechanical edit made in code)
    operator: str = ""  # the operator that made it, where a refused proposal made propose_usable ask another


@dataclass(frozen=True)
class Unusable:
    """The proposer's reply parsed, but its text is no variant (unusable_reason says why)."""

    reason: str


class Proposer:
    """Turns (parent, operator, feedback, history) into a new instruction text via the proposer role."""

    def __init__(self, lm: dspy.LM, *, context_tokens: int | None = None, reply_tokens: int = 0,
                 examples: int = 2):
        self.predict = dspy.Predict(ProposeVariant.with_instructions(PROPOSER_INSTRUCTIONS))
        self.predict.set_lm(lm)
        self.adapter = GrammarAdapter(constrain=True)  # the idea's max_length bounds the reply
        # The proposer model's context window (None: unknown, nothing is trimmed) and what its reply needs.
        self.context_tokens, self.reply_tokens = context_tokens, reply_tokens
        self.examples = examples  # at most this many of the feedback's weak tasks are shown

    def prompt_tokens(self, inputs: dict[str, str]) -> int:
        """The prompt the proposer would be sent for inputs, measured: its characters over CHARS_PER_TOKEN."""
        messages = self.adapter.format(self.predict.signature, demos=[], inputs=inputs)
        return math.ceil(sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN)

    def fitted(self, inputs: dict[str, str], feedback: Feedback) -> tuple[dict[str, str], Feedback]:
        """inputs with as many of feedback's examples as fit the context window beside the reply."""
        feedback = replace(feedback, examples=feedback.examples[:self.examples])
        if self.context_tokens is None:
            return {**inputs, "feedback": feedback.render()}, feedback
        budget = self.context_tokens - self.reply_tokens
        while True:
            fitted = {**inputs, "feedback": feedback.render()}
            if not feedback.examples or self.prompt_tokens(fitted) <= budget:
                return fitted, feedback
            feedback = feedback.fewer_examples()

    def propose(self, parent: str, operator: MutationOperator, feedback: Feedback, tried: list[str], *,
                other: str = "", temperature: float = 0.7, rng: random.Random | None = None,
                file: str = ANSWER_FILE, seen: Callable[[str], bool] = lambda text: False) -> Proposal | Unusable:
        """A usable variant of `file`'s text, or why the model's text is none (when no deterministic edit applies).

        A deterministic edit whose text was evaluated before (`seen`) counts as one that does not apply: the
        same edit of the same parent gives the same text, and a second trial of it would only be its twin."""
        rng = rng or random.Random(0)
        if operator.mechanical:
            edited = deterministic_edit(parent, operator, feedback, other, rng, file=file)
            if edited and usable(edited[0], parent) and not seen(edited[0]):
                return Proposal(edited[0], edited[1], source="rule")
        inputs, _ = self.fitted({
            "current_instructions": parent, "other_version": other or "(none)", "change": operator.directive,
            "already_tried": "\n".join(f"- {t}" for t in tried) or "(nothing yet)"}, feedback)
        with dspy.context(adapter=self.adapter):
            out = self.predict(**inputs, config={"temperature": temperature})
        text = clean_variant(out.new_instructions)
        reason = unusable_reason(text, parent)
        if reason is None:
            return Proposal(text, idea_of(str(out.idea), text, parent, tried), source="model")
        return Unusable(reason)


# A refused proposal is asked again with another operator this many times. A retry is cheap since the change asked
# for comes last in the prompt (a 120-trial run on SmolLM2, 2 cores: 0.9 s against 2.3 s for a trial's first call),
# and 4 left 1 trial of 120 without a variant where 2 left 20, for fewer proposer calls (180 against 186).
JUNK_RETRIES = 4


# The loop's own annotations of a tried idea ("[rule] …", "[described] added: …; dropped 2", "(after 1 refused
# proposals; first asked of compress)", a follow-up's "(trial 1, which ended inside the noise)"): for the
# morning's review, not for the proposer, which copies them into its variants (SmolLM2, 25 minutes on the
# starter: 32 proposals refused for carrying them, after a third of that run's trials had failed for want of a
# usable variant).
_ANNOTATIONS = re.compile(
    r"^\[(rule|described)\] |; dropped \d+\b| \(after \d+ refused proposals; first asked of \w+\)|"
    + near_miss.ANNOTATION)


def as_shown(idea: str) -> str:
    """A tried idea as the proposer's "already tried" list shows it: without the loop's annotations."""
    return _ANNOTATIONS.sub("", idea)


def propose_usable(proposer, parent: str, op: MutationOperator, operators: Sequence[MutationOperator],
                   feedback: Feedback, tried: list[str], *, other: str, temperature: float, rng: random.Random,
                   refuse: Callable[[str], str | None] = lambda text: None, file: str = ANSWER_FILE,
                   seen: Callable[[str], bool] = lambda text: False) -> tuple[Proposal | None, list[str]]:
    """A variant worth evaluating, or None, with why each refused proposal was refused ("operator: reason").

    A proposal is refused when there is none, when its reply could not be parsed, when it is junk
    (junk_reason) or when `refuse` names a reason (the judge guard); the proposer is then asked again with
    another operator, JUNK_RETRIES times at most. `file` and `seen` go to Proposer.propose. A model call the
    backend did not answer (a timeout, a server down) raises, as Proposer.propose does."""
    rejected: list[str] = []
    first = op.name
    tried = [as_shown(idea) for idea in tried]  # what the proposer sees, and what its echoes are checked against
    for attempt in range(JUNK_RETRIES + 1):
        if attempt:
            op = rng.choice([o for o in operators if o is not op] or [op])
        try:
            proposal = proposer.propose(parent, op, feedback, tried, other=other if op.needs_second_parent else "",
                                        temperature=temperature, rng=rng, file=file, seen=seen)
        except Exception as exc:
            # The model answered, with text that is not the reply asked for (SmolLM2's `idea` can run on in
            # digits until max_tokens): as refusable as junk, and the call stays recorded as failed.
            if not isinstance(backend_error_in(exc), UnparseableOutput):
                raise
            rejected.append(f"{op.name}: its reply could not be parsed")
            continue
        if isinstance(proposal, Unusable):
            reason = proposal.reason
        else:
            reason = junk_reason(proposal.text, parent, tried) or refuse(proposal.text)
        if reason is None:
            if rejected:  # credited to the operator that made it; the idea says which was asked first
                proposal = Proposal(proposal.text, f"{proposal.idea} (after {len(rejected)} refused proposals; "
                                                   f"first asked of {first})", proposal.source, op.name)
            return proposal, rejected
        rejected.append(f"{op.name}: {reason}")
    return None, rejected


def clean_variant(text: str) -> str:
    """Strip what small models wrap around instructions: code fences, 'Here are…' lead-ins."""
    text = re.sub(r"^```\w*\n?|```$", "", str(text).strip()).strip()
    text = re.sub(r"^(sure|here (is|are)|new instructions)[^\n]*:\s*\n", "", text, flags=re.IGNORECASE)
    return text.strip() + "\n" if text.strip() else ""


# The proposer's own scaffolding: its prompt's field names and markers, and the lead-ins of its inputs. A
# variant that carries them is an echo of the prompt, not instructions for the assistant.
SCAFFOLDING = re.compile(
    r"\[\[ ?## |\b(current_instructions|new_instructions|other_version|already_tried)\b|you already tried|"
    r"ideas that were already tried|checks that failed most often|weakest judged qualities|judge critiques:|"
    r"^\s*(idea|feedback|change)\s*:|"
    # the loop's own notes in the "already tried" list: "(after 2 refused proposals; …)", "(pruned)", "(discard, -0.1)",
    # also as SmolLM2 copies them ("(discard, +0)": a 300-call run on benchmarks/summary-risk raced one for 9 calls)
    r"refused proposals|first asked of|\((discard|pruned|keep|failed)(, ?[+-]?\d+(\.\d+)?)?\)",
    re.IGNORECASE | re.MULTILINE)
# The words the loop writes in the "already tried" list beside each idea: its markers ("[rule] …", "[described]
# added: …; dropped 2") and its operators' names. Copied into a variant (a 25-minute run on SmolLM2: 13 of 98
# variants, each a wasted screen), they are no instructions; unless the parent holds them already.
LOOP_WORDS = re.compile(
    r"\[(described|rule)\]|; dropped \d+\b|\b("
    + "|".join(re.escape(name) for name in BY_NAME if "_" in name) + r")\b", re.IGNORECASE)
# A template's slot left unfilled, on a line of its own in place of instructions: what the no_placeholders check
# calls a placeholder in an answer ("[insert …]", "[Your Name]", "TODO", "{{name}}") and an instruction template's
# own slots ("[instructions go here]", "{add more here}", "<your name>"). A 300-call house-style run on SmolLM2
# raced a planner.md of "[insert new instructions here]" alone through 4 seed sets (88 calls). Only a whole line
# counts: a sentence that names placeholders ("Never leave placeholders such as TODO or [insert ...]", the
# no_placeholders rule in search/mechanical.py) is an instruction. A slot the parent holds already stands.
PLACEHOLDER = re.compile("|".join((
    *PLACEHOLDER_PATTERNS,
    r"(?i:[\[<{][^\]>}\n]{0,60}\bhere\s*[\]>}])",
    r"(?i:[\[<{]\s*(?:your|new instructions|add (?:your|new|more)|enter|fill in)\b[^\]>}\n]{0,60}[\]>}])")))
_LINE_MARKS = " \t-*•#.:;,"  # a list marker, a heading's hashes, trailing punctuation around a slot
MIN_SHARE = 0.25  # a variant under a quarter of its parent's length (a parent of 80+ characters) lost its content
_WORD = re.compile(r"[^\W\d_]{2,}")
# New text under a third letters ("1.1.1.1", "##\n##\n##", "{ } ] ]"): a small model's symbol soup, which
# a crossover with such a variant carries into a good parent. A JSON example or a format line stays over it.
MIN_LETTER_SHARE = 0.35


def idea_of(idea: str, text: str, parent: str, tried: Iterable[str] = ()) -> str:
    """The proposer's one-line idea, or where it says nothing what the edit did, in the loop's words.

    The idea is what the "already tried" list and the morning's review read. SmolLM2 often gives none worth
    reading: a timestamp ("2023-07-30T12:48:39Z", no word in it), an echo of the loop's notes ("… (pruned)"),
    or an idea already tried word for word (then the list says the same thing twice)."""
    idea = one_line(idea, IDEA_CHARS)
    said = _normal(idea)
    echoed = any(t == said or t.startswith(said + " (") for t in map(_normal, tried))  # "(status, delta)" after
    if _WORD.search(idea) and not SCAFFOLDING.search(idea) and not echoed:
        return idea
    return "[described] " + change_summary(parent, text)


def _normal(text: str) -> str:
    """Text as the echo checks compare it: lower case, runs of whitespace as one space."""
    return " ".join(text.split()).lower()


def change_summary(parent: str, text: str) -> str:
    """A variant's change in one line: its first new sentence, else its first dropped one, else the length."""
    before, after = sentences(parent), sentences(text)
    added, dropped = [s for s in after if s not in before], [s for s in before if s not in after]
    if added:
        more = f" (+{len(added) - 1} more)" if len(added) > 1 else ""
        return f"added: {added[0][:80]}{more}" + (f"; dropped {len(dropped)}" if dropped else "")
    if dropped:
        return f"dropped: {dropped[0][:80]}" + (f" (+{len(dropped) - 1} more)" if len(dropped) > 1 else "")
    return f"reordered or respaced ({len(parent.strip())} → {len(text.strip())} characters)"


def junk_reason(text: str, parent: str, tried: Iterable[str] = ()) -> str | None:
    """Why a proposed variant is junk, not worth an evaluation; None when it looks like instructions."""
    found = SCAFFOLDING.search(text) or (None if LOOP_WORDS.search(parent) else LOOP_WORDS.search(text))
    if found:
        return f"it echoes the proposer's prompt ({found.group(0).strip()!r})"
    slot = next((line for line in (raw.strip(_LINE_MARKS) for raw in text.splitlines())
                 if PLACEHOLDER.fullmatch(line) and _normal(line) not in _normal(parent)), None)
    if slot:
        return f"it holds a template's unfilled placeholder ({slot!r})"
    lines = [_normal(line.strip(" -*")) for line in text.splitlines() if line.strip()]
    ideas = {_normal(t) for t in tried if t.strip()}
    if lines and ideas and sum(line in ideas for line in lines) * 2 >= len(lines):
        return "it echoes the list of ideas already tried"
    if len(parent.strip()) >= 80 and len(text.strip()) < MIN_SHARE * len(parent.strip()):
        return f"it is {len(text.strip())} characters, under a quarter of its parent's {len(parent.strip())}"
    if not _WORD.search(text):
        return "it has no instruction content (not one word)"
    loop = degenerate(text)
    if loop:  # a producer told one line fourteen times writes it until its token limit (evaluation/degenerate.py)
        return f"it is {loop}"
    share = _new_letter_share(text, parent)
    if share is not None and share < MIN_LETTER_SHARE:
        return f"its new text is mostly symbols ({share:.0%} letters)"
    return None


def _new_letter_share(text: str, parent: str) -> float | None:
    """The share of letters among the visible characters of the lines text adds to parent (None under 20)."""
    old = {line.strip() for line in parent.splitlines()}
    added = "".join("".join(line.split()) for line in text.splitlines() if line.strip() not in old)
    if len(added) < 20:
        return None
    return sum(ch.isalpha() for ch in added) / len(added)


def unusable_reason(text: str, parent: str) -> str | None:
    """Why a text is no variant at all (empty, its parent unchanged, a runaway generation); None when usable."""
    if len(text.strip()) < 3:
        return "its new instructions are empty"
    if text.strip() == parent.strip():
        return "it repeats its parent unchanged"
    if len(text) > MAX_GROWTH * max(len(parent), 200):
        return f"it runs to {len(text)} characters, over {MAX_GROWTH:g}× its parent's {len(parent)}"
    return None


def usable(text: str, parent: str) -> bool:
    """Non-trivial, different from the parent, and not a runaway generation."""
    return unusable_reason(text, parent) is None
