"""The degenerate-answer guard: an answer that is empty or loops on itself gets a judge score of 0.

A small model often falls into a repetition loop and writes one line again and again until its token limit,
and a small judge rates such text like any other answer: SmolLM2-135M gave a producer's repeated line 6.2
of 10 against 2.5 for real answers, and random search kept that producer (docs/BENCHMARKS.md, 2026-12-05).
So the judge's score of such an answer is replaced by 0 in code, as the judge guard does for text aimed at
the judge; the criteria are left as they checked it (they are deterministic and cannot be flattered).

A loop is measured as the share of the answer's word 4-grams that repeat an earlier one (seq-rep-4 in the
degeneration literature, Welleck et al. 2019: about 0.01 for human text). Words, not tokens, so markdown
rules and table borders do not count, nor numbers, so a numbered list's markers ("1.", "2.", … "14.") do not hide
the same item written fourteen times; only answers long enough to loop are measured.
"""

from __future__ import annotations

import re
from collections import Counter

FLAG = "degenerate"  # what task_results.flags records for an answer whose judge score was zeroed
REASON_PREFIX = "degenerate answer: "

NGRAM = 4
MIN_WORDS = 20  # below this an answer is too short to loop (a 4-word line written 5 times is 20 words)
MAX_REPEATED_SHARE = 0.5  # more than half the 4-grams repeat an earlier one: the answer loops
_WORD = re.compile(r"\w+")


def words_of(text: str) -> list[str]:
    """text's words, lower-cased, without the numbers (list markers, section numbers) between them."""
    return [w.lower() for w in _WORD.findall(text) if not w.isdigit()]


def repeated_share(text: str, n: int = NGRAM) -> float:
    """The share of text's word n-grams that repeat an earlier one; 0.0 when it has none."""
    words = words_of(text)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def degenerate(text: str) -> str | None:
    """Why an answer is degenerate (no words at all, or a repetition loop), or None when it is not."""
    if not _WORD.search(text):
        return "no words in the answer"
    words = words_of(text)
    if len(words) < MIN_WORDS:
        return None
    share = repeated_share(text)
    if share <= MAX_REPEATED_SHARE:
        return None
    gram, count = Counter(tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)).most_common(1)[0]
    return (f"a repetition loop: {share:.0%} of its {NGRAM}-word sequences repeat an earlier one "
            f"('{' '.join(gram)}' {count} times)")
