"""The run's forecast as the loop keeps it (search/forecast.py makes each one): made before the first trial, or
for a shared study's worker that joined after the baseline, once its first trial measured the cost here; made
again, once, when the study's own finished trials can replace the baseline's screen as the cost; and set beside
what the trials cost in the run's summary."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..store import Store
from ..store.statuses import TrialStatus
from .forecast import Forecast, forecast, late_sets, trial_cost
from .results import Incumbent, TrialOutcome
from .summary import ForecastCheck


class RunForecast:
    """A run's forecast and whether the run revised it. The Study makes one with each run's parts, handing on the
    forecast it made first (`made`): a run resumed after a database outage forecasts nothing again."""

    def __init__(self, store: Store, study_name: str, session_calls: list,
                 confirm_sets: Callable[[Incumbent], tuple[int, int]], reused: Callable[[], dict[str, float]],
                 emit: Callable[[str, dict[str, Any]], None], made: tuple[Forecast, int] | None = None):
        self.store, self.study_name, self.session_calls = store, study_name, session_calls
        self.confirm_sets = confirm_sets  # (seed sets a contender is confirmed over, those the incumbent has)
        self.reused = reused  # the share of each role's calls a trial is expected to reuse
        self.emit = emit
        self.made = made  # the forecast, and the session's calls before it
        self.revised = False  # whether this run made it again from the study's own trials

    def run_started(self, incumbent: Incumbent | None, n_trials: int | None, timeout_s: float | None) -> None:
        """Before a run's first trial (the baseline behind it): the forecast, if the Study has none yet."""
        if incumbent is not None and self.made is None:
            self._make(incumbent, n_trials, timeout_s, 0.0, 0)

    def trial_finished(self, incumbent: Incumbent, n_trials: int | None, timeout_s: float | None,
                       elapsed_s: float, done: int) -> None:
        """After each trial: the forecast of a worker that joined late, or the revision from the study's trials."""
        if self.made is None:  # a shared worker that joined late: its first trial measured the cost
            self._make(incumbent, n_trials, timeout_s, elapsed_s, done)
        elif not self.made[0].cost.from_trials and not self.revised:
            self.revised = self._revise(incumbent, n_trials, timeout_s, elapsed_s, done)

    def check(self, outcomes: Sequence[TrialOutcome]) -> ForecastCheck | None:
        """The forecast beside what its trials cost, for the summary; None where none was made."""
        if self.made is None:
            return None
        made, calls_before = self.made
        trials = sum(o.status != TrialStatus.BASELINE for o in outcomes[made.after:])
        return ForecastCheck.of(made.cost, trials, self.session_calls[calls_before:])

    def _make(self, incumbent: Incumbent, n_trials: int | None, timeout_s: float | None, elapsed_s: float,
              done: int) -> None:
        """Make and emit the forecast for the remaining trials, once the store has a cost to make it from."""
        made = self._rest(incumbent, n_trials, timeout_s, elapsed_s, done)
        if made is not None:
            self.made = (made, len(self.session_calls))
            self.emit("forecast", made.to_dict())

    def _revise(self, incumbent: Incumbent, n_trials: int | None, timeout_s: float | None, elapsed_s: float,
                done: int) -> bool:
        """Once a forecast made from the baseline's screen can be made from the study's own finished trials, emit
        that for the trials left; the summary still sets the first beside what the trials cost. Whether it did."""
        made = self._rest(incumbent, n_trials, timeout_s, elapsed_s, done)
        if made is None or not made.cost.from_trials:
            return False
        self.emit("forecast_revised", made.to_dict())
        return True

    def _rest(self, incumbent: Incumbent, n_trials: int | None, timeout_s: float | None, elapsed_s: float,
              done: int) -> Forecast | None:
        """The forecast of the run's trials after the first `done`; None with no cost to make it from or none left."""
        sets, measured = self.confirm_sets(incumbent)
        cost = trial_cost(self.store, self.study_name, sets, self.reused())
        left = None if n_trials is None else n_trials - done
        if cost is None or left == 0:
            return None
        return forecast(cost, n_trials=left, timeout_s=None if timeout_s is None else max(timeout_s - elapsed_s, 0),
                        late=late_sets(self.store, self.study_name, measured, sets), after=done)
