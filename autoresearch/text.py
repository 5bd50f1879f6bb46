"""Text cut to fit one line: error messages, notes, critiques and ideas quoted in a log, a prompt or a table."""

from __future__ import annotations

ELLIPSIS = "…"


def one_line(text: str, limit: int) -> str:
    """`text` with its whitespace collapsed, at most `limit` characters; a longer one ends in "…", cut at a word's
    end where one lies in the last quarter (a word cut in half reads as a different word)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 3 // 4 and text[limit - 1] != " ":
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS
