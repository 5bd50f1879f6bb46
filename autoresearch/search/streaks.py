"""When trials keep failing: a backend that is down stops the run soon; a model that answers with nothing
usable stops it only after a much longer streak."""

from __future__ import annotations

from ..errors import answered
from ..lm.calls import CallRecord
from ..store.statuses import TrialStatus

UNUSABLE_FACTOR = 5  # max_consecutive_failed × this many trials in a row without a usable variant stop a run

Streak = list[tuple[CallRecord, ...]]  # each failed trial's model calls


class FailureStreaks:
    """Counts failed trials in a row, apart by cause: a trial with a call the backend never answered (a
    timeout, a refused connection, a server error or broken body) is an outage; one failed only by replies
    the engine could not use, or by junk proposals, is not (SmolLM2 gives the proposer such replies now
    and then). Neither kind ends the other's streak; any trial that did not fail ends both."""

    def __init__(self, limit: int):
        self.limit = limit  # [search] max_consecutive_failed
        self.down: Streak = []
        self.unusable: Streak = []

    def add(self, status: TrialStatus, calls: tuple[CallRecord, ...]) -> tuple[str, Streak] | None:
        """Count one finished trial; once a streak is long enough, its stop line's lead and its trials."""
        if status != TrialStatus.FAILED:
            self.down, self.unusable = [], []
        elif any(not c.ok and not answered(c.failure_mode) for c in calls):
            self.down = self.down + [calls]
        else:
            self.unusable = self.unusable + [calls]
        if len(self.down) >= self.limit:
            return f"{len(self.down)} trials in a row failed", self.down
        if len(self.unusable) >= UNUSABLE_FACTOR * self.limit:
            return f"{len(self.unusable)} trials in a row got no usable variant", self.unusable
        return None
