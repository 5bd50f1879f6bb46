"""What a run has done so far, carried across a resume after a shared study's database came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..store.statuses import TrialStatus
from ..text import one_line
from .results import TrialOutcome

FINISHED_TRIALS = (TrialStatus.KEEP, TrialStatus.DISCARD, TrialStatus.PRUNED, TrialStatus.FAILED)


@dataclass
class RunSoFar:
    """The run's start, its trials and commits; the next run of the same command after a database outage
    (Study.optimize) adds to them, so --trials, --timeout and the summary count the whole run."""

    started: float  # monotonic
    outcomes: list[TrialOutcome] = field(default_factory=list)
    commits: list[tuple[str, str]] = field(default_factory=list)  # (sha, subject)
    storage_lost: str = ""  # how the shared database was lost, when it was
    first: int | None = None  # the first trial number this run could have made (the store's next, at its start)

    def database_lost(self, said: str, rows: Iterable, subject: Callable[[str], str]) -> None:
        """The shared database went away (`said`: its driver's words). `rows`, the local store's trials, give the
        trial that finished as it went (its outcome recorded, the error struck after); every keep among the run's
        trials gets its commit listed, `subject` giving a commit's first line."""
        self.storage_lost = one_line(said, 120)
        self.finished_unlisted(rows)
        listed = {sha for sha, _ in self.commits}
        self.commits.extend((o.commit, subject(o.commit)) for o in self.outcomes if o.commit and o.commit not in listed)

    def finished_unlisted(self, rows: Iterable) -> None:
        """Add the run's trials the store holds as finished but the run never listed."""
        listed = {o.number for o in self.outcomes}
        for row in rows:
            if (self.first is not None and row["number"] >= self.first and row["number"] not in listed
                    and row["status"] in FINISHED_TRIALS):
                self.outcomes.append(TrialOutcome(
                    row["number"], TrialStatus(row["status"]), file=row["file"] or "", operator=row["operator"] or "",
                    description=row["note"] or "", composite=row["composite"], delta=row["delta"],
                    joules=row["joules"], energy_source=row["energy_source"] or "", commit=row["commit_sha"] or "",
                    holdout_composite=row["holdout_composite"], objective=row["objective"]))
