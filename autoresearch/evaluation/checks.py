"""Deterministic criteria checked in code on the producer's output; each result carries a one-line reason."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..workspace.suite import Criterion


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

# Output that talks to the judge instead of the reader, or hides text from the reader; case-insensitive, on
# text normalised first (normalise_for_guard). Kept narrow ("as an AI grader", not "as a judge"; "give this
# full marks", not "full marks") so that ordinary prose about courts, reviews or exams passes.
_NOT_A_UNIT = r"(?![\s-]*(?:%|percent|minutes?|mins?|seconds?|secs?|hours?|days?|weeks?|points?)\b)"
_JUDGE = r"(?:ai\s+|llm\s+|automated\s+)?(?:judge|evaluator|grader|reviewer|assessor|examiner|marker|scorer|rater)s?"
_MARKS = (r"(?:10|ten|full\s+marks|top\s+marks|(?:a\s+|the\s+)?(?:perfect|maximum|max|highest|top|full)\s+"
          r"(?:score|marks?|rating|grade)|an?\s+a\+?)")
_THIS = r"(?:this|me|it|us|the\s+(?:answer|response|output|text)|this\s+(?:answer|response|output|text))"
JUDGE_ADDRESS_PATTERNS = (
    r"\b(?:evaluator|grader|assessor|examiner|scorer|rater)s?\s*:",
    r"\bnotes?\s+(?:to|for)\s+(?:the\s+)?" + _JUDGE + r"\b",
    r"\b(?:dear|attention|hey|hello|hi)\s+(?:the\s+)?" + _JUDGE + r"\b",
    r"\b(?:to|for)\s+(?:the|any|whoever|whichever)\s+(?:" + _JUDGE + r"|(?:model|ai|llm|one|person)\s+"
    r"(?:who\s+is\s+|that\s+is\s+)?(?:grading|judging|scoring|evaluating|assessing|rating|reviewing))\b",
    r"\bwhoever\s+(?:is\s+)?(?:grading|judging|scoring|evaluating|assessing|rating|marking)\b",
    r"\bif\s+you\s+are\s+(?:an?\s+|the\s+)?(?:ai|model|llm|language\s+model)\s+(?:\w+\s+)?"
    r"(?:grading|judging|scoring|evaluating|assessing|rating|reviewing)\b",
    r"\bignore\s+(?:(?:the|all|any|previous|prior|above|earlier|your|scoring|grading|other)\s+)+"
    r"(?:rubrics?|instructions|criteria|guidelines|rules)\b",
    r"\b(?:give|award|grant|assign)\s+" + _THIS + r"\s+(?:a\s+)?" + _MARKS + _NOT_A_UNIT,
    r"\b(?:score|rate|grade|mark)\s+" + _THIS + r"\s+(?:as\s+)?(?:a\s+)?(?:" + _MARKS + r"|highly|excellent|"
    r"perfect)" + _NOT_A_UNIT,
    r"\b(?:this|the|my)\s+(?:answer|response|output|text)\s+(?:deserves|earns|merits|warrants|should\s+get|"
    r"should\s+receive)\s+(?:a\s+)?" + _MARKS + _NOT_A_UNIT,
    r"(?<![\d/.])\b10\s*/\s*10\b(?!\s*/)",  # "10/10", but not a date such as 10/10/2024
    r"\bas\s+an?\s+(?:ai|llm)\s+(?:judge|evaluator|grader|reviewer|assessor)\b",
    r"\b(?:meets|satisfies|fulfils|fulfills)\s+(?:all|every|each)\s+(?:of\s+)?(?:the\s+)?(?:rubric|grading|"
    r"scoring|evaluation)\b",
    r"\bself[\s-]*(?:assessment|evaluation|score|rating|grade)\b",
)
HIDDEN_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)  # unclosed comments hide the rest too
# Characters a reader does not see: zero-width, soft hyphen, word joiners, bidi controls, the BOM.
INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
                       "\u2060-\u2064\u206a-\u206f\u3164\ufeff\uffa0]")
# Latin look-alikes from other scripts (Cyrillic, Greek) that NFKC leaves alone: "еvaluator" is "evaluator".
LOOKALIKES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i", "ј": "j", "ѕ": "s",
    "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ո": "n", "А": "A", "В": "B", "Е": "E", "К": "K",
    "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X", "У": "Y", "І": "I", "Ј": "J",
    "Ѕ": "S", "α": "a", "ο": "o", "ρ": "p", "ν": "v", "τ": "t", "ι": "i", "κ": "k", "Α": "A", "Β": "B",
    "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T",
    "Υ": "Y", "Χ": "X", "ℓ": "l", "ı": "i",
})


def normalise_for_guard(text: str) -> str:
    """Text as the guard reads it: invisible characters removed, compatibility forms folded (NFKC: full-width
    and styled letters, ligatures), look-alike letters mapped to Latin, whitespace runs made one space."""
    text = unicodedata.normalize("NFKC", INVISIBLE.sub("", text)).translate(LOOKALIKES)
    return re.sub(r"[ \t\u00a0]+", " ", text)


def judge_address(text: str, dimensions: Iterable[str] = ()) -> str | None:
    """Why text addresses the judge or hides text from the reader; None when it does neither.

    dimensions: the rubric's dimension names; a self-assessment against one ("Clarity: 9/10", "scores 10 on
    accuracy") is addressed to the judge too."""
    hidden = hidden_text(text)
    if hidden:
        return hidden
    match = judge_address_match(normalise_for_guard(text), dimensions)
    return None if match is None else address_reason(match)


def hidden_text(text: str) -> str | None:
    """Why text hides something from its reader (an invisible character, an HTML comment), or None."""
    invisible = INVISIBLE.search(text)
    if invisible:
        char = invisible.group(0)
        kind = "zero-width" if char in "\u200b\u200c\u200d\u2060\ufeff" else "invisible"
        return f"hidden {kind} character U+{ord(char):04X}"
    comment = HIDDEN_HTML_COMMENT.search(text)
    return f"hidden HTML comment: {_quote(comment.group(0))}" if comment else None


def judge_address_match(plain: str, dimensions: Iterable[str] = ()) -> re.Match[str] | None:
    """The first words addressed to the judge in text already normalised (normalise_for_guard)."""
    return _first_match(_JUDGE_ADDRESS_RES + _dimension_patterns(tuple(dimensions)), plain)


def address_reason(match: re.Match[str]) -> str:
    return f"addresses the judge: {_quote(match.group(0))}"


@functools.lru_cache(maxsize=32)
def _dimension_patterns(dimensions: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """A rubric dimension's name beside a mark out of ten, in either order."""
    names = [re.escape(d.replace("_", " ")).replace(r"\ ", r"[\s_-]+") for d in dimensions if d.strip()]
    if not names:
        return ()
    name = r"\b(?:" + "|".join(names) + r")\b"
    mark = r"\b\d{1,2}(?:\.\d+)?\s*(?:/\s*10\b|out\s+of\s+(?:10|ten)\b|points?\b)"
    return (re.compile(name + r"[^\n.]{0,24}?" + mark, re.IGNORECASE),
            re.compile(mark + r"[^\n.]{0,24}?(?:for|on|in)\s+" + name, re.IGNORECASE),
            re.compile(r"\b(?:scores?|rates?|rated|scored)\s+(?:a\s+)?(?:10|ten|\d{1,2})\s+(?:on|for|in)\s+" + name,
                       re.IGNORECASE))


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
    reason = judge_address(text)
    return (True, "no text addressed to the judge") if reason is None else (False, reason)


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
