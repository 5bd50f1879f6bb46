"""Where a Study method's calls went, by what each trial was: the baseline, keeps (their whole race), races lost
after the screen, screens that failed, failed trials, and the trial the budget cut short. What a pruner or a
cheaper keep could save is bounded by these shares, so they say which goal a change can move."""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from .methods import LABELS, METHODS
from .report import spread

# A discard that spent at most this many screens' calls ended in its screen: a confirmation adds at least a
# second seed set of every search task, so a trial that went on to one spent about two screens or more.
SCREEN_SLACK = 1.5

# (key, column heading), in the order a trial spends its calls.
PARTS = (("baseline", "baseline (the start and its noise)"), ("keep", "keeps (their whole race)"),
         ("race", "races lost after the screen"), ("screen", "screens that failed"), ("failed", "failed trials"),
         ("cut", "the trial the budget cut short"))


def part(status: str, calls: int, screen_calls: float, stage: str | None) -> str:
    """Which PARTS key a finished trial's calls count under. A discard's race stage, where the seed file records
    it, says whether it ended in its screen; without one (older seed files, twins not re-evaluated) its calls do."""
    if status in ("baseline", "keep", "failed"):
        return status
    if status == "discard" and stage is not None:
        return "screen" if stage == "screen" else "race"
    if status == "pruned" or (status == "discard" and calls <= SCREEN_SLACK * screen_calls):
        return "screen"
    return "race"


def trial_records(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each finished trial as the seed file records it: trial_details, or only status and calls where the file has
    no details (before draw 9009)."""
    details = run.get("trial_details") or []
    if len(details) == len(run.get("trials", [])):
        return details
    return [{"status": status, "calls": calls} for status, calls in run.get("trials", [])]


def finished_trials(run: dict[str, Any]) -> list[tuple[str, int, str | None]]:
    """(status, calls, race stage) of each finished trial; the stage None where the seed file records none (older
    seed files: trial_details gained it after draw 10010)."""
    return [(d["status"], d["calls"], d.get("stage")) for d in trial_records(run)]


def shares(run: dict[str, Any], screen_calls: float | None) -> dict[str, float] | None:
    """Each part's share of the run's calls (summing to 1); None for a run without trials (MIPROv2, GEPA) or
    without a screen's cost."""
    trials = finished_trials(run)
    total = run["calls"]
    if not trials or not screen_calls or not total:
        return None
    found = {key: 0.0 for key, _ in PARTS}
    for status, calls, stage in trials:
        found[part(status, calls, screen_calls, stage)] += calls
    found["cut"] = max(0.0, total - sum(found.values()))
    return {key: value / total for key, value in found.items()}


def pruning(run: dict[str, Any], screen_calls: float | None) -> tuple[int, float, float | None, float | None]:
    """(pruned trials, their share of the run's calls, the share of calls pruning saved, the share of the screens'
    calls it saved). Both saved shares are estimates, each pruned trial counted as the full screen it cut short
    (proposer call plus every search task); the second leaves out what no screen pruner acts on (the baseline, and
    each trial's calls after its screen), so it reads the pruner per screen rather than per run."""
    trials = [(status, calls) for status, calls in run.get("trials", []) if status != "baseline"]
    pruned = [calls for status, calls in trials if status == "pruned"]
    total = run["calls"] or 1
    share = sum(pruned) / total
    if not screen_calls:
        return len(pruned), share, None, None
    saved = sum(max(0.0, screen_calls - calls) for calls in pruned)
    screens = sum(min(calls, screen_calls) for _, calls in trials) + saved
    return len(pruned), share, saved / (total + saved), saved / screens if screens else None


def failed_screens(run: dict[str, Any], screen_calls: float | None) -> float | None:
    """The share of the run's calls spent in trials that ended within their screen (pruned, or discarded at it:
    by its recorded race stage, else after at most SCREEN_SLACK screens' calls, so before any confirmation): the
    most any screen pruner could have saved, as it spends a screen's first task before it can judge. None without
    trials (MIPROv2, GEPA) or a screen's cost."""
    found = shares(run, screen_calls)
    return None if found is None else found["screen"]


def _by_method(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Each Study method's shares, one per seed it ran (methods without trials left out)."""
    found: dict[str, list[dict[str, float]]] = {}
    for record in records:
        for run in record["runs"]:
            run_shares = shares(run, record.get("screen_calls"))
            if run_shares is not None:
                found.setdefault(run["method"], []).append(run_shares)
    return found


def table(records: Sequence[dict[str, Any]]) -> str:
    """A row per Study method: each part's share of its calls, mean ± sd over the seeds (empty without one)."""
    by_method = _by_method(records)
    if not by_method:
        return ""
    lines = ["| method | seeds | " + " | ".join(heading for _, heading in PARTS) + " |",
             "| --- | ---: |" + " ---: |" * len(PARTS)]
    for method in (m for m in METHODS if m in by_method):
        rows = by_method[method]
        cells = [spread([100 * row[key] for row in rows], "{:.0f}", "%") for key, _ in PARTS]
        lines.append(f"| {LABELS[method]} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_shares(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each Study method's mean share of each part over the seeds it ran (for the report's JSON)."""
    return {method: {key: statistics.fmean(row[key] for row in rows) for key, _ in PARTS}
            for method, rows in _by_method(records).items()}
