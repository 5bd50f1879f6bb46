"""one_line: whitespace collapsed, at most `limit` characters, cut at a word's end where one is near."""

from autoresearch.text import one_line


def test_short_text_is_only_collapsed():
    assert one_line("  a\n\tb   c ", 20) == "a b c"


def test_text_of_exactly_the_limit_is_kept_whole():
    assert one_line("abcde fghij", 11) == "abcde fghij"


def test_long_text_ends_in_an_ellipsis_within_the_limit():
    cut = one_line("word " * 50, 40)
    assert len(cut) <= 40 and cut.endswith("…")


def test_a_cut_falls_at_a_words_end_not_inside_it():
    text = "the database system is shutting down and refuses connections"
    cut = one_line(text, 30)
    assert cut == "the database system is…"
    assert cut[:-1].split()[-1] in text.split()


def test_a_cut_after_a_whole_word_keeps_that_word():
    assert one_line("a" * 15 + " bbb cccc", 20) == "a" * 15 + " bbb…"


def test_one_long_word_is_cut_inside_it_rather_than_losing_the_line():
    assert one_line("x" * 100, 10) == "x" * 9 + "…"


def test_a_space_far_before_the_limit_does_not_shorten_the_cut_to_it():
    assert one_line("ab " + "c" * 100, 40) == "ab " + "c" * 36 + "…"
