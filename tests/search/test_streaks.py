"""FailureStreaks: an outage stops a run after max_consecutive_failed trials, unusable replies only after 5 × that."""

from __future__ import annotations

from autoresearch.lm.calls import CallRecord
from autoresearch.search.streaks import UNUSABLE_FACTOR, FailureStreaks
from autoresearch.store.statuses import TrialStatus

FAILED, DISCARD = TrialStatus.FAILED, TrialStatus.DISCARD


def call(mode: str | None) -> CallRecord:
    return CallRecord(role="proposer", backend="fake", model="m", prompt_hash="h", prompt_tokens=1,
                      completion_tokens=1, latency_s=0.1, load_s=0.0, joules=1.0, energy_source="estimate",
                      status="ok" if mode is None else "failed", failure_mode=mode)


def test_trials_the_backend_never_answered_stop_after_the_limit():
    streaks = FailureStreaks(limit=2)
    assert streaks.add(FAILED, (call(None), call("timeout"))) is None
    lead, trials = streaks.add(FAILED, (call("malformed_response"),))
    assert lead == "2 trials in a row failed" and len(trials) == 2


def test_unusable_replies_neither_count_toward_nor_end_an_outage_streak():
    streaks = FailureStreaks(limit=2)
    assert streaks.add(FAILED, (call("server_error"),)) is None
    for n in range(UNUSABLE_FACTOR * 2 - 1):  # replies the engine could not parse, and junk proposals (no call)
        assert streaks.add(FAILED, (call("unparseable"),) if n % 2 else ()) is None
    lead, trials = streaks.add(FAILED, (call("unreachable"),))
    assert lead == "2 trials in a row failed" and [c.failure_mode for t in trials for c in t] == ["server_error",
                                                                                                 "unreachable"]


def test_a_trial_that_did_not_fail_ends_both_streaks():
    streaks = FailureStreaks(limit=2)
    streaks.add(FAILED, (call("timeout"),))
    streaks.add(FAILED, (call("unparseable"),))
    assert streaks.add(DISCARD, (call(None),)) is None
    assert streaks.down == [] and streaks.unusable == []
    assert streaks.add(FAILED, (call("timeout"),)) is None  # one in a row again, under the limit of 2


def test_the_unusable_streak_stops_at_its_own_limit():
    streaks = FailureStreaks(limit=2)
    stops = [streaks.add(FAILED, (call("unparseable"),)) for _ in range(UNUSABLE_FACTOR * 2)]
    assert stops[:-1] == [None] * (UNUSABLE_FACTOR * 2 - 1)
    lead, trials = stops[-1]
    assert lead == f"{UNUSABLE_FACTOR * 2} trials in a row got no usable variant" and len(trials) == UNUSABLE_FACTOR * 2
