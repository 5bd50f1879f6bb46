"""Prompt-lookup drafting: which tokens a call drafts, and how long its drafts grow."""

from __future__ import annotations

from autoresearch.lm.backends.prompt_lookup import DRAFT_MIN, PromptLookup


def test_the_tokens_after_the_last_sighting_of_the_latest_4_gram_are_drafted():
    # The reply ends with 1 2 3 4, which the prompt holds followed by 5 6 7 8 9.
    history = [9, 1, 2, 3, 4, 5, 6, 7, 8, 9] + [7, 1, 2, 3, 4]
    assert PromptLookup(16).propose(history, room=8) == [5, 6, 7, 8, 9, 7, 1, 2]


def test_a_5_gram_match_wins_over_a_later_4_gram_one():
    # 1 2 3 4 is followed by 50 after the 5-gram 0 1 2 3 4, and by 60 at its later sighting.
    history = [0, 1, 2, 3, 4, 50, 51, 52, 8, 1, 2, 3, 4, 60, 61, 62] + [0, 1, 2, 3, 4]
    assert PromptLookup(16).propose(history, room=3) == [50, 51, 52]


def test_a_reply_looping_on_itself_is_drafted_from_its_own_tokens():
    history = [100, 101] + [5, 6, 7, 8, 5, 6, 7, 8]
    # What followed 5 6 7 8 the first time, and past the end of the reply the same loop again.
    assert PromptLookup(16).propose(history, room=10) == [5, 6, 7, 8, 5, 6, 7, 8, 5, 6]


def test_nothing_is_drafted_without_a_4_gram_match_or_under_the_shortest_draft():
    assert PromptLookup(16).propose([1, 2, 3, 9, 9, 1, 2, 3], room=100) == []  # only a 3-gram recurs
    looping = [5, 6, 7, 8, 5, 6, 7, 8]
    assert PromptLookup(16).propose(looping, room=DRAFT_MIN - 1) == []
    assert PromptLookup(DRAFT_MIN - 1).propose(looping, room=100) == []


def test_the_index_grows_with_the_history_and_finds_matches_it_made():
    lookup = PromptLookup(16)
    assert lookup.propose([1, 2, 3, 4, 5], room=10) == []
    assert lookup.propose([1, 2, 3, 4, 5, 9, 1, 2, 3, 4], room=8) == [5, 9, 1, 2, 3, 4, 5, 9]


def test_drafts_double_when_accepted_whole_and_halve_when_rejected_at_once():
    lookup = PromptLookup(16, length=4)
    lookup.learn(accepted=4, drafted=4)
    assert lookup.length == 8
    lookup.learn(accepted=5, drafted=8)  # partly accepted: unchanged
    assert lookup.length == 8
    lookup.learn(accepted=8, drafted=8)
    lookup.learn(accepted=16, drafted=16)
    assert lookup.length == 16  # never over the most
    lookup.learn(accepted=0, drafted=16)
    assert lookup.length == 8
    for _ in range(5):
        lookup.learn(accepted=0, drafted=4)
    assert lookup.length == DRAFT_MIN
    lookup.learn(accepted=0, drafted=0)  # no draft, nothing learnt
    assert lookup.length == DRAFT_MIN
