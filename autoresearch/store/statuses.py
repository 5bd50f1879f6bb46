"""How a trial ends, as the store records it; StrEnums, so they compare equal to the stored text."""

from __future__ import annotations

from enum import StrEnum


class TrialStatus(StrEnum):
    RUNNING = "running"
    BASELINE = "baseline"  # the committed instructions a study starts from
    KEEP = "keep"  # beat the incumbent and was committed
    DISCARD = "discard"
    PRUNED = "pruned"  # stopped after some tasks: it could not beat the incumbent
    FAILED = "failed"  # too many tasks failed, or no usable variant
    INTERRUPTED = "interrupted"  # abandoned by a stopped or killed run


# trials.failure of a failed trial whose proposer gave no usable variant in all its tries: the recipe's doing.
NO_VARIANT = "no_variant"

# The trials a later trial is compared against: the incumbent is the latest of these.
INCUMBENT_STATUSES = (TrialStatus.BASELINE, TrialStatus.KEEP)
# The trials whose search evaluation covers every task (pruned and failed ones do not).
SCORED_STATUSES = (TrialStatus.BASELINE, TrialStatus.KEEP, TrialStatus.DISCARD)
