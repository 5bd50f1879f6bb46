"""The degenerate-answer guard: an answer that is empty, loops on itself or copies its instructions back gets a
judge score of 0.

A small model often falls into a repetition loop and writes one line again and again until its token limit, or
writes its own instructions back instead of an answer, and a small judge rates such text like any other answer:
SmolLM2-135M gave a producer's repeated line 6.2 of 10 against 2.5 for real answers (random search kept it), and
4.8 to answers that were a sentence of GEPA's producer.md written twice (docs/BENCHMARKS.md, 2026-12-05). So the
judge's score of such an answer is replaced by 0 in code, as the judge guard does for text aimed at the judge;
the criteria are left as they checked it (they are deterministic and cannot be flattered).

Both are measured on word 4-grams: a loop as the share that repeat an earlier one (seq-rep-4 in the degeneration
literature, Welleck et al. 2019: about 0.01 for human text), a copy as the share found in the instructions and
not in the task. Words, not tokens, so markdown rules and table borders do not count, nor numbers, so a numbered
list's markers ("1.", "2.", … "14.") do not hide the same item written fourteen times. Only answers long enough
to loop are measured for loops, but every answer with a 4-gram for copies: SmolLM2-135M given a layout to follow
often answers with the layout's own placeholder lines ("One sentence that answers the task.", "A line or two
under that heading."), which its judge scored like answers (3.0 to 3.8 of 10, above the start's rambling ones)
and which pass a word limit, so a 20-word floor let a layout win on the copies it caused (docs/BENCHMARKS.md,
2026-12-06). The thresholds are workspace/config.py's DEGENERATE_RULE, part of the evaluation hash.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from ..workspace.config import DEGENERATE_RULE

FLAG = "degenerate"  # what task_results.flags records for an answer whose judge score was zeroed
REASON_PREFIX = "degenerate answer: "
REASON_END = "; its judge score is 0."  # closes the reason in the critique

NGRAM: int = DEGENERATE_RULE["ngram"]
MIN_WORDS: int = DEGENERATE_RULE["min_words"]
MIN_COPY_WORDS: int = DEGENERATE_RULE["min_copy_words"]
MAX_REPEATED_SHARE: float = DEGENERATE_RULE["max_repeated_share"]
MAX_COPIED_SHARE: float = DEGENERATE_RULE["max_copied_share"]
_WORD = re.compile(r"\w+")


def words_of(text: str) -> list[str]:
    """text's words, lower-cased, without the numbers (list markers, section numbers) between them."""
    return [w.lower() for w in _WORD.findall(text) if not w.isdigit()]


def _grams(words: list[str], n: int = NGRAM) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def repeated_share(text: str, n: int = NGRAM) -> float:
    """The share of text's word n-grams that repeat an earlier one; 0.0 when it has none."""
    return _repeated(_grams(words_of(text), n))


def copied_share(text: str, instructions: Iterable[str], task: str = "") -> float:
    """The share of text's word 4-grams found in the instructions and not in the task; 0.0 when it has none."""
    return _copied(_grams(words_of(text)), instructions, task)


def _repeated(grams: list[tuple[str, ...]]) -> float:
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def _copied(grams: list[tuple[str, ...]], instructions: Iterable[str], task: str) -> float:
    if not grams:
        return 0.0
    source = {g for i in instructions for g in _grams(words_of(i))} - set(_grams(words_of(task)))
    return sum(g in source for g in grams) / len(grams)


def degenerate(text: str, instructions: Iterable[str] = (), task: str = "") -> str | None:
    """Why an answer is degenerate (no words at all, a repetition loop, a copy of its instructions), or None.

    instructions: the texts the producer was given (its role files); task: the task's prompt, which an answer
    may echo."""
    if not _WORD.search(text):
        return "no words in the answer"
    words = words_of(text)
    if len(words) < MIN_COPY_WORDS:
        return None
    grams = _grams(words)  # the answer's words and 4-grams, once for both measures
    share = _repeated(grams) if len(words) >= MIN_WORDS else 0.0  # too short to loop
    if share > MAX_REPEATED_SHARE:
        gram, count = Counter(grams).most_common(1)[0]
        return (f"a repetition loop: {share:.0%} of its {NGRAM}-word sequences repeat an earlier one "
                f"('{' '.join(gram)}' {count} times)")
    copied = _copied(grams, instructions, task)
    if copied > MAX_COPIED_SHARE:
        return f"a copy of its instructions: {copied:.0%} of its {NGRAM}-word sequences are in them, not in the task"
    return None
