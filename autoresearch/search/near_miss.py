"""A near-miss is followed by its crossover with the incumbent ([search] follow_near_miss, on by default).

A challenger whose race ends inside the noise (its mean paired difference above keep_threshold, its lower bound
not above zero: keep_rule.py's "bound" stage) is the run's best evidence of where a gain may lie. The next trial
is queued to cross the incumbent with it: the incumbent's sentences, then the near-miss's new ones, one per
line (search/mechanical.py: a rule, no model call; the proposer model writes the crossover where the rule adds
nothing new). Why: on the house-style suite the loop's first trial (the answer's shape) ended +0.23 over
8 tasks × 4 seed sets, bound −0.12, on all 5 seeds; the two seeds that kept anything kept this crossover, drawn
there by chance as their second trial; with the follow-up all 5 seeds keep it, at 262 of 300 calls
(docs/BENCHMARKS.md).

It costs little trust: the follow-up is a new variant with a race of its own under the same keep rule; the
near-miss only chooses the next trial, as the sampler otherwise would. What it adds is a second race of nearly the
same content after a near-miss: replayed over the committed score tables, a null edit's false-keep chance rises by
about 0.1–0.2 points (docs/BENCHMARKS.md). A follow-up's own near-miss is not followed (its crossover with the
same incumbent would add little or nothing). The near-miss's text travels in the queued trial's user attributes,
so in a shared study whichever worker takes the trial has it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import optuna

FOLLOWS_ATTR = "follows_near_miss"  # a queued trial's user attribute: the near-miss trial's number
PARTNER_ATTR = "near_miss_text"  # and the near-miss's text of the trial's file
FOLLOWED_STAGE = "bound"  # keep_rule.Verdict.stage of a race that ended inside the noise
_NOTE = " (trial {}, which ended inside the noise)"  # what described() adds to a follow-up's idea
NEXT_UP = "; its crossover with the incumbent is the next trial"  # what a followed near-miss's description ends with
MARK = "→ crossover next"  # and what the live view and log lines show first, before a long description is cut
# The follow-up's note as a regex: the proposer's "already tried" list leaves it out (proposer.as_shown), as it
# leaves out the loop's other annotations.
ANNOTATION = re.escape(_NOTE).replace(re.escape("{}"), r"\d+")


@dataclass(frozen=True)
class NearMiss:
    """The near-miss a queued trial follows."""

    trial: int
    text: str


def followed(trial: optuna.Trial) -> NearMiss | None:
    """The near-miss this trial was queued to follow, or None."""
    attrs = trial.user_attrs
    if FOLLOWS_ATTR not in attrs or PARTNER_ATTR not in attrs:
        return None
    return NearMiss(int(attrs[FOLLOWS_ATTR]), str(attrs[PARTNER_ATTR]))


def described(idea: str, near_miss: NearMiss) -> str:
    """A follow-up crossover's idea, naming the near-miss it drew on."""
    return idea + _NOTE.format(near_miss.trial)


def waiting(study: optuna.Study) -> list[int]:
    """The near-misses (trial numbers) whose crossover is queued in the study and not yet started: a run that
    stops after a near-miss leaves its follow-up for the next run, which the summary says."""
    queued = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    return [int(t.user_attrs[FOLLOWS_ATTR]) for t in queued if FOLLOWS_ATTR in t.user_attrs]


def follow(trial: optuna.Trial, stage: str, file: str, text: str, operators: Collection[str]) -> bool:
    """Queue the crossover of the incumbent with this trial's variant when its race ended inside the noise and
    it was not a follow-up itself; whether one was queued."""
    if stage != FOLLOWED_STAGE or "crossover" not in operators or followed(trial) is not None:
        return False
    # Not skip_if_exists: Optuna compares only the params, so a second near-miss on the same file would be dropped.
    trial.study.enqueue_trial({"file": file, "operator": "crossover", "parent": 0},
                              user_attrs={FOLLOWS_ATTR: trial.number, PARTNER_ATTR: text})
    return True
