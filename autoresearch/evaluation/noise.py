"""How far a score moves when only the dice change: its mean, standard deviation and standard error over
repeated evaluations of the same instructions (another seed per repeat)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Spread:
    """One score over n repeats. sd is the sample standard deviation; with one repeat, sd and se are None."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.values) if self.n >= 2 else None

    @property
    def se(self) -> float | None:
        sd = self.sd
        return None if sd is None else sd / math.sqrt(self.n)

    @property
    def difference_sd(self) -> float | None:
        """The sd of the difference between two single evaluations of the same instructions: √2 · sd."""
        sd = self.sd
        return None if sd is None else math.sqrt(2) * sd

    def text(self) -> str:
        """"3.47 ± 0.43" (mean ± sd), or the mean alone from one repeat."""
        return f"{self.mean:.2f}" if self.sd is None else f"{self.mean:.2f} ± {self.sd:.2f}"

    def to_json(self) -> dict[str, object]:
        return {"values": list(self.values), "mean": self.mean, "sd": self.sd, "se": self.se, "n": self.n}


def spread(values: Iterable[float]) -> Spread:
    found = tuple(float(v) for v in values)
    if not found:
        raise ValueError("a spread needs at least one value")
    return Spread(found)
