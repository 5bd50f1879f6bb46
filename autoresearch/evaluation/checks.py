"""Deterministic criteria checked in code on the producer's output; each result carries a one-line reason."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..workspace.config import Criterion


@dataclass(frozen=True)
class CheckResult:
    criterion: str  # Criterion.describe(), e.g. "min_words 150"
    passed: bool
    reason: str  # one line, e.g. "182 words (min 150)"


# Kinds that an empty output still passes. An empty output is a failed production, so every criterion
# asking for something to be present (counts, substrings, regexes) fails even where the bare comparison
# would hold (exact_sections 0, min_numbered 0, a regex such as '^' that matches the empty string):
# otherwise producing nothing would earn criteria credit. The kinds below only forbid something or cap
# a size; an empty text truly satisfies them, and the judge already scores an empty output at the bottom.
EMPTY_TEXT_PASSES = frozenset({"not_contains", "no_placeholders", "no_judge_address", "max_words"})

# Text left unfinished by the model. One pattern per kind of fill-in; inline flags because case matters
# for some: upper-case TODO/XXX are placeholders, while "todo" and "xxx" can be ordinary words.
PLACEHOLDER_PATTERNS = (
    r"\bTODO\b",
    r"(?i:\bTBD\b)",
    r"(?i:\bFIXME\b)",
    r"\bXXX\b",
    r"(?i:\blorem\s+ipsum\b)",
    r"(?i:\[\s*insert\b[^\]\n]*\])",  # [insert company name]
    r"(?i:<\s*(?:placeholder|insert\b[^>\n]*)\s*>)",  # <placeholder>, <insert date>
    r"\{\{[^{}\n]*\}\}",  # an unrendered template slot: {{name}}
    r"(?i:\[\s*your\b[^\]\n]*\])",  # [your name], [YOUR COMPANY]
    # "[Your Name]"-style: one to four capitalised words in brackets; a markdown link "[Text](url)",
    # "[Text][ref]" or reference definition "[Text]: url" is not a fill-in.
    r"\[[A-Z][a-z]+(?: [A-Z][a-z]+){0,3}\](?![(\[:])",
)

# Output that talks to the judge instead of the reader, or hides text from the reader; case-insensitive.
# Kept narrow (e.g. "as an AI grader", not "as a judge") so ordinary prose about courts or reviews passes.
_NOT_A_UNIT = r"(?![\s-]*(?:%|percent|minutes?|mins?|seconds?|secs?|hours?|days?|weeks?|points?)\b)"
JUDGE_ADDRESS_PATTERNS = (
    r"\b(?:evaluator|grader)s?\s*:",
    r"\bnotes?\s+(?:to|for)\s+(?:the\s+)?(?:ai\s+)?(?:judge|evaluator|grader|reviewer)s?\b",
    r"\b(?:dear|attention|hey)\s+(?:ai\s+)?(?:judge|evaluator|grader)s?\b",
    r"\bignore\s+(?:(?:the|all|any|previous|prior|above|earlier|your|scoring|grading)\s+)+"
    r"(?:rubrics?|instructions|criteria|guidelines)\b",
    r"\bgive\s+(?:this|me|it)\s+(?:a\s+)?(?:10|ten|perfect\s+score)\b" + _NOT_A_UNIT,
    r"\bscore\s+(?:this|it|me)\s+(?:a\s+)?(?:10|ten)\b" + _NOT_A_UNIT,
    r"(?<![\d/.])\b10\s*/\s*10\b(?!\s*/)",  # "10/10", but not a date such as 10/10/2024
    r"\bas\s+an?\s+(?:ai|llm)\s+(?:judge|evaluator|grader)\b",
)
HIDDEN_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)  # unclosed comments hide the rest too
ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")

_PLACEHOLDER_RES = tuple(re.compile(p) for p in PLACEHOLDER_PATTERNS)
_JUDGE_ADDRESS_RES = tuple(re.compile(p, re.IGNORECASE) for p in JUDGE_ADDRESS_PATTERNS)

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NUMBERED_ITEM = re.compile(r"^\d+[.)]\s+\S")
_LIST_MARKER = re.compile(r"\d+[.)]")
_SNIPPET_CHARS = 60


def check(text: str, criterion: Criterion) -> CheckResult:
    """Check one criterion on text."""
    description = criterion.describe()
    try:
        rule = _RULES[criterion.kind]
    except KeyError:
        raise ValueError(f"unknown criterion kind {criterion.kind!r}") from None
    if not text.strip() and criterion.kind not in EMPTY_TEXT_PASSES:
        return CheckResult(description, False, "empty output")
    passed, reason = rule(text, criterion.value)
    return CheckResult(description, passed, reason)


def check_all(text: str, criteria: Iterable[Criterion]) -> list[CheckResult]:
    """Check every criterion on text, in order."""
    return [check(text, criterion) for criterion in criteria]


def count_words(text: str) -> int:
    """Whitespace tokens with at least one letter or digit; bare markdown markers ('#', '-', '1.') aren't words."""
    words = 0
    for line in text.splitlines():
        tokens = line.split()
        # A list marker ('1.', '2)') leads its line; elsewhere "in 1999." is a word.
        if tokens and _LIST_MARKER.fullmatch(tokens[0]):
            tokens = tokens[1:]
        words += sum(1 for token in tokens if any(ch.isalnum() for ch in token))
    return words


def lines_outside_code_fences(text: str) -> list[str]:
    """Lines not inside ``` or ~~~ fenced blocks (the fence lines themselves excluded); an unclosed fence runs to the end."""
    outside: list[str] = []
    fence: str | None = None  # the opening fence while inside a block
    for line in text.splitlines():
        if fence is None:
            opening = _FENCE_OPEN.match(line)
            if opening:
                fence = opening.group(1)
            else:
                outside.append(line)
        else:
            stripped = line.strip()
            # A block closes on a fence of the same character, at least as long, with nothing after it.
            if (len(line) - len(line.lstrip(" ")) <= 3 and stripped.startswith(fence)
                    and set(stripped) == {fence[0]}):
                fence = None
    return outside


def count_h2_sections(text: str) -> int:
    # "## " with a title; "### " and indented lines are not H2, an empty "## " heads nothing.
    return sum(1 for line in lines_outside_code_fences(text) if line.startswith("## ") and line[3:].strip())


def count_numbered_items(text: str) -> int:
    # Only unindented items are top-level; nested ones are indented under their parent.
    return sum(1 for line in lines_outside_code_fences(text) if _NUMBERED_ITEM.match(line))


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def _quote(fragment: str) -> str:
    """A fragment of text fit for a one-line reason: line breaks and invisible characters escaped, long text cut."""
    one_line = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in fragment)
    if len(one_line) > _SNIPPET_CHARS:
        one_line = one_line[: _SNIPPET_CHARS - 3] + "..."
    return f"'{one_line}'"


def _first_match(patterns: Iterable[re.Pattern[str]], text: str) -> re.Match[str] | None:
    """The match that starts earliest in text across patterns, so the reason points at the first offence."""
    matches = [m for m in (p.search(text) for p in patterns) if m]
    return min(matches, key=lambda m: m.start(), default=None)


def _min_words(text: str, minimum: int) -> tuple[bool, str]:
    words = count_words(text)
    return words >= minimum, f"{_plural(words, 'word')} (min {minimum})"


def _max_words(text: str, maximum: int) -> tuple[bool, str]:
    words = count_words(text)
    return words <= maximum, f"{_plural(words, 'word')} (max {maximum})"


def _min_sections(text: str, minimum: int) -> tuple[bool, str]:
    sections = count_h2_sections(text)
    return sections >= minimum, f"{_plural(sections, 'H2 section')} (min {minimum})"


def _exact_sections(text: str, wanted: int) -> tuple[bool, str]:
    sections = count_h2_sections(text)
    return sections == wanted, f"{_plural(sections, 'H2 section')} (need exactly {wanted})"


def _min_numbered(text: str, minimum: int) -> tuple[bool, str]:
    items = count_numbered_items(text)
    return items >= minimum, f"{_plural(items, 'numbered item')} (min {minimum})"


def _exact_numbered(text: str, wanted: int) -> tuple[bool, str]:
    items = count_numbered_items(text)
    return items == wanted, f"{_plural(items, 'numbered item')} (need exactly {wanted})"


def _contains(text: str, needle: str) -> tuple[bool, str]:
    if needle.casefold() in text.casefold():
        return True, f"contains {_quote(needle)}"
    return False, f"missing {_quote(needle)}"


def _not_contains(text: str, needle: str) -> tuple[bool, str]:
    if needle.casefold() in text.casefold():
        return False, f"contains forbidden {_quote(needle)}"
    return True, f"no {_quote(needle)}"


def _regex(text: str, pattern: str) -> tuple[bool, str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        return False, f"regex {_quote(pattern)} matched nothing"
    return True, f"regex {_quote(pattern)} matched {_quote(match.group(0))}"


def _no_placeholders(text: str, _value: None) -> tuple[bool, str]:
    match = _first_match(_PLACEHOLDER_RES, text)
    if match is None:
        return True, "no placeholder text"
    return False, f"placeholder text: {_quote(match.group(0))}"


def _no_judge_address(text: str, _value: None) -> tuple[bool, str]:
    zero_width = ZERO_WIDTH.search(text)
    if zero_width:
        return False, f"hidden zero-width character U+{ord(zero_width.group(0)):04X}"
    comment = HIDDEN_HTML_COMMENT.search(text)
    if comment:
        return False, f"hidden HTML comment: {_quote(comment.group(0))}"
    match = _first_match(_JUDGE_ADDRESS_RES, text)
    if match is None:
        return True, "no text addressed to the judge"
    return False, f"addresses the judge: {_quote(match.group(0))}"


_RULES: dict[str, Callable[[str, Any], tuple[bool, str]]] = {
    "min_words": _min_words,
    "max_words": _max_words,
    "min_sections": _min_sections,
    "exact_sections": _exact_sections,
    "min_numbered": _min_numbered,
    "exact_numbered": _exact_numbered,
    "contains": _contains,
    "not_contains": _not_contains,
    "regex": _regex,
    "no_placeholders": _no_placeholders,
    "no_judge_address": _no_judge_address,
}
