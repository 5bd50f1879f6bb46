"""The loop's lead over each peer on the holdout tasks, paired by seed: per seed, the loop's pick's holdout
composite minus the peer's, both under the same holdout seed sets, so the seed's draw and start cancel out.

A lead in the mean over a few seeds is not a lead until its bound clears zero. The report gives each peer's
one-sided t bound as if it were the only comparison, the same bound with every peer counted (Bonferroni: with
four peers, a 95% claim over all four needs each at 98.75%), and an exact sign test that assumes nothing about the
differences' shape (five seeds all one way are chance 1 in 32). As in the keep rule (evaluation/paired.py), a
positive bound stands only from as many seeds as that sign test needs to be as sure (5 at 95%, 7 at 98.75%): from
fewer, its certainty would rest on the differences being normal alone. Here a seed counts only where the two picks
differ: a tie is both methods handing back the same instructions (the start, most often), which says nothing about
which method finds better ones, and a sign test leaves it out."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from scipy import stats

from ..evaluation.paired import sure_enough, tasks_for_sign_test
from .methods import LABELS, LOOP, METHODS
from .report import TIE

if TYPE_CHECKING:  # search_report imports this module
    from .search_report import MethodSummary

CONFIDENCE = 0.95


def t_lower_bound(values: Sequence[float], confidence: float = CONFIDENCE) -> float | None:
    """One-sided lower t bound on the mean of `values` at `confidence`; None from fewer than 2."""
    if len(values) < 2:
        return None
    se = statistics.stdev(values) / math.sqrt(len(values))
    return statistics.fmean(values) - stats.t.ppf(confidence, len(values) - 1) * se


@dataclass(frozen=True)
class Lead:
    """The loop against one peer over the seeds both have a holdout composite for."""

    peer: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]  # per seed: the loop's pick's holdout composite − the peer's
    peers: int  # comparisons reported together (the Bonferroni correction's divisor)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences)

    @property
    def se(self) -> float | None:
        """Standard error of the mean difference; None from fewer than 2 seeds."""
        n = len(self.differences)
        return statistics.stdev(self.differences) / math.sqrt(n) if n > 1 else None

    def bound(self, confidence: float = CONFIDENCE) -> float | None:
        """One-sided lower t bound on the mean lead at `confidence`; None from fewer than 2 seeds."""
        return t_lower_bound(self.differences, confidence)

    def stands(self, confidence: float = CONFIDENCE) -> bool:
        """Whether the bound at `confidence` is a claim: at or under zero it claims nothing; above, it needs as
        many untied seeds as a sign test at that confidence."""
        bound = self.bound(confidence)
        return bound is not None and sure_enough(bound, self.untied, confidence) is not None

    @property
    def corrected_confidence(self) -> float:
        return 1 - (1 - CONFIDENCE) / max(self.peers, 1)

    @property
    def corrected_bound(self) -> float | None:
        """The bound at the confidence each comparison needs for a 95% claim over all the peers at once."""
        return self.bound(self.corrected_confidence)

    @property
    def wins(self) -> int:
        return sum(d > TIE for d in self.differences)

    @property
    def losses(self) -> int:
        return sum(d < -TIE for d in self.differences)

    @property
    def ties(self) -> int:
        return len(self.differences) - self.untied

    @property
    def untied(self) -> int:
        """Seeds where the two picks differ: the only ones that say which method is better."""
        return self.wins + self.losses

    @property
    def sign_p(self) -> float:
        """Chance of at least this many of the untied seeds going the loop's way if each were a coin's toss."""
        return sum(math.comb(self.untied, k) for k in range(self.wins, self.untied + 1)) / 2 ** self.untied

    def as_json(self) -> dict[str, Any]:
        return {"peer": self.peer, "seeds": list(self.seeds), "differences": list(self.differences),
                "mean": self.mean, "se": self.se, "bound": self.bound(), "bound_stands": self.stands(),
                "corrected_confidence": self.corrected_confidence, "corrected_bound": self.corrected_bound,
                "corrected_bound_stands": self.stands(self.corrected_confidence), "wins": self.wins,
                "losses": self.losses, "ties": self.ties,
                "sign_p": self.sign_p}


def leads(summaries: Mapping[str, MethodSummary]) -> list[Lead]:
    """The loop's lead over each peer that shares a seed with it, the peers in METHODS' order; `summaries` are
    search_report.summarise's, whose rows hold each method's seeds and holdout composites."""
    picks = {method: {seed: value for seed, value in zip(row.seeds, row.holdout) if value is not None}
             for method, row in summaries.items()}
    loop = picks.get(LOOP, {})
    paired = {}
    for method, by_seed in sorted(picks.items(), key=lambda item: METHODS.index(item[0])):
        shared = sorted(set(by_seed) & set(loop))
        if method != LOOP and shared:
            paired[method] = (tuple(shared), tuple(loop[s] - by_seed[s] for s in shared))
    return [Lead(method, shared, differences, len(paired)) for method, (shared, differences) in paired.items()]


def table(summaries: Mapping[str, MethodSummary]) -> str:
    """A row per peer: the mean lead, its bounds alone and with every peer counted, and the seeds' signs."""
    found = leads(summaries)
    if not found:
        return "Paired leads: no seed here has both the loop's pick and a peer's on the holdout tasks."
    corrected = f"{100 * found[0].corrected_confidence:.2f}".rstrip("0").rstrip(".") + "%"
    lines = ["| loop against | seeds | lead (mean ± se) | 95% lower bound, alone | "
             f"lower bound with {len(found)} peers counted ({corrected}) | seeds led / trailed / tied | "
             "sign test (one-sided p) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for lead in found:
        se = f" ± {lead.se:.2f}" if lead.se is not None else ""
        lines.append(f"| {LABELS[lead.peer]} | {len(lead.seeds)} | {lead.mean:+.2f}{se} | {_bound(lead, CONFIDENCE)} "
                     f"| {_bound(lead, lead.corrected_confidence)} | {lead.wins} / {lead.losses} / "
                     f"{lead.ties} | {lead.sign_p:.3g} |")
    return "\n".join(lines)


def _bound(lead: Lead, confidence: float) -> str:
    value = lead.bound(confidence)
    if value is None:
        return "– (one seed)"
    if not lead.stands(confidence):
        return f"{value:+.2f} (a claim needs {tasks_for_sign_test(confidence)} untied seeds)"
    return f"{value:+.2f}"
