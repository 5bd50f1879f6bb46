"""Which models answer a run, and whether they are the ones that made the scores it compares with.

A model that changes under its name (lm/model_identity.py) scores the same instructions differently, and so does
a harness (or DSPy) that renders its prompts otherwise (pipeline/program.prompt_format). The store records the
run's identity, both of them, on each evaluation and reuses only its scores (Store.models); this asks the
backends at start-up and before each trial, and says when the incumbent's scores are another identity's, so that
the Study evaluates the committed instructions again as a new baseline.
"""

from __future__ import annotations

from typing import Callable

from ..errors import BackendError
from ..lm.model_identity import run_identity, run_models, what_changed, without_middle
from ..store import Store
from ..workspace.config import BackendsConfig, Portfolio
from .results import Incumbent

NEW_BASELINE = "the committed instructions are evaluated again as a new baseline, the incumbent from here on"
# A shared study's worker whose models changed: its incumbent is the ledger's, so no new baseline.
SHARED_RESCORED = ("this worker reuses none of its scores made before, nor another worker's made by other models, "
                   "and scores the study's incumbent again here before comparing a variant with it")


class ModelWatch:
    """Stamps the run's model identity on its store at start-up; then tells whether the incumbent's scores, or
    the run's so far, are another model's."""

    def __init__(self, portfolio: Portfolio, backends: BackendsConfig, store: Store, study: str, *, shared: bool,
                 prompt_format: str, backend_of: Callable, note: Callable[[str], None]):
        self.portfolio, self.backends, self.store, self.backend_of = portfolio, backends, store, backend_of
        # A shared study's incumbent may be another machine's, scored by its models: it is never compared with
        # them, and needs no new baseline (each worker scores it again here: Evaluator.screen_reference).
        self.shared = shared
        self.prompt_format = prompt_format
        store.models = self._identity(run_models(portfolio, backends, backend_of, note=note))
        restamped = store.restamp(study, without_middle(store.models))
        if restamped:
            note(f"the study's {restamped} earlier evaluations recorded its GGUF without a hash of the file's middle "
                 "(an older autoresearch): taken as made by the same file")
        earlier = store.latest_models(study)
        if shared and earlier is not None and earlier != store.models:
            note(f"{what_changed(earlier, store.models)} since this worker's last evaluation in the study: "
                 f"{SHARED_RESCORED}")
        adopted = store.adopt_unstamped(study)  # a study's evaluations from before m012: the study goes on
        if adopted:
            note(f"the study's {adopted} earlier evaluations did not record which models made them: taken as made "
                 "by the models answering now")

    def changed_since(self, incumbent: Incumbent) -> str | None:
        """Why the incumbent's scores do not compare with this run's, as a note: the models that made them are
        not the ones answering now (an `ollama pull`, another GGUF, a new llama.cpp build), or the prompts were
        rendered otherwise (a new autoresearch or DSPy); None when neither."""
        if self.shared or incumbent.evaluation_id is None:
            return None
        row = self.store.evaluation(incumbent.evaluation_id)
        if row is None or row["models"] == self.store.models:
            return None
        return (f"{what_changed(row['models'], self.store.models)} since the incumbent (trial {incumbent.trial}) was "
                f"scored: its scores do not compare with new ones, so {NEW_BASELINE}")

    def swapped(self) -> str | None:
        """How the models answering differ from those this run's scores came from ("the models changed (producer:
        A → B)"; asked before each trial: an `ollama pull` by a timer, a server reloaded with another checkpoint);
        None when they do not, or cannot be asked now (a server away is the outage wait's business). From then on
        the store stamps and reuses the new models' scores."""
        try:
            now = self._identity(run_models(self.portfolio, self.backends, self.backend_of, waits_s=(),
                                            raise_errors=True))
        except BackendError:
            return None
        if now == self.store.models:
            return None
        was, self.store.models = self.store.models, now
        return what_changed(was, now)

    def _identity(self, roles: dict[str, str]) -> str:
        return run_identity(roles, self.prompt_format)


def swap_note(change: str, shared: bool = False) -> str:
    """The run's note on models that changed during it (ModelWatch.swapped: "the models changed (…)")."""
    return (f"{change} during the run: {SHARED_RESCORED if shared else NEW_BASELINE} (the trial before may have "
            "been scored partly by each)")


def changing_message(change: str) -> str:
    """Why a run stops whose models changed again before a trial could finish."""
    return (f"the models answering changed again before a trial could finish ({change}); a load balancer before "
            "servers of different models, or an update in progress? No score would compare with the next")
