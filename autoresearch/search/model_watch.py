"""Which models answer a run, and whether they are the ones that made the scores it compares with.

A model that changes under its name (lm/model_identity.py) scores the same instructions differently. The store
records the run's models on each evaluation and reuses only their scores (Store.models); this asks the backends
at start-up and before each trial, and says when the incumbent's scores are another model's, so that the Study
evaluates the committed instructions again as a new baseline.
"""

from __future__ import annotations

from typing import Callable

from ..errors import BackendError
from ..lm.model_identity import changes, run_models
from ..store import Store
from ..workspace.config import BackendsConfig, Portfolio
from .results import Incumbent

NEW_BASELINE = "the committed instructions are evaluated again as a new baseline, the incumbent from here on"


class ModelWatch:
    """Stamps the run's model identity on its store at start-up; then tells whether the incumbent's scores, or
    the run's so far, are another model's."""

    def __init__(self, portfolio: Portfolio, backends: BackendsConfig, store: Store, study: str, *, shared: bool,
                 backend_of: Callable, note: Callable[[str], None]):
        self.portfolio, self.backends, self.store, self.backend_of = portfolio, backends, store, backend_of
        # A shared study's incumbent may be another machine's, scored by its models: not compared here.
        self.shared = shared
        store.models = run_models(portfolio, backends, backend_of, note=note)
        adopted = store.adopt_unstamped(study)  # a study's evaluations from before m012: the study goes on
        if adopted:
            note(f"the study's {adopted} earlier evaluations did not record which models made them: taken as made "
                 "by the models answering now")

    def changed_since(self, incumbent: Incumbent) -> str | None:
        """Why the incumbent's scores do not compare with this run's, as a note: the models that made them are
        not the ones answering now (an `ollama pull`, another GGUF, a new llama.cpp build); None when they are."""
        if self.store.models is None or self.shared or incumbent.evaluation_id is None:
            return None
        row = self.store.evaluation(incumbent.evaluation_id)
        if row is None or row["models"] == self.store.models:
            return None
        return (f"the models changed since the incumbent (trial {incumbent.trial}) was scored "
                f"({'; '.join(changes(row['models'], self.store.models))}): its scores do not compare with new "
                f"ones, so {NEW_BASELINE}")

    def swapped(self) -> str | None:
        """How the models answering differ from those this run's scores came from ("producer: A → B"; asked
        before each trial: an `ollama pull` by a timer, a server reloaded with another checkpoint); None when
        they do not, or cannot be asked now (a server away is the outage wait's business). From then on the
        store stamps and reuses the new models' scores."""
        if self.store.models is None or self.shared:
            return None
        try:
            now = run_models(self.portfolio, self.backends, self.backend_of, waits_s=(), raise_errors=True)
        except BackendError:
            return None
        if now == self.store.models:
            return None
        was, self.store.models = self.store.models, now
        return "; ".join(changes(was, now))


def swap_note(change: str) -> str:
    """The run's note on models that changed during it (ModelWatch.swapped)."""
    return f"the models changed during the run ({change}): {NEW_BASELINE} (the trial before may have been scored " \
           "partly by each)"


def changing_message(change: str) -> str:
    """Why a run stops whose models changed again before a trial could finish."""
    return (f"the models answering changed again before a trial could finish ({change}); a load balancer before "
            "servers of different models, or an update in progress? No score would compare with the next")
