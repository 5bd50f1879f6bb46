"""bench_search's report over its seed files: a row per method (mean ± sd over seeds), a row per seed, and the
calls-to-target plot (each method's best search composite against model calls, averaged over seeds, with the
best peer's final score as the target)."""

from __future__ import annotations

import json
import statistics
import textwrap
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Sequence

from ..review.report import svg
from . import call_shares, draws, leads, pruner_ab, pruner_shadow, seeds
from .call_shares import SCREEN_SLACK
from .methods import LABELS, LOOP, METHODS, without_ablations
from .report import (
    BASELINE_COLOUR,
    COLOURS,
    STYLE,
    TIE,
    duration,
    machine_names,
    machines_line,
    num,
    spread,
)

TARGET_COLOUR = "#202124"


def methods_in(records: Sequence[dict[str, Any]]) -> list[str]:
    present = {run["method"] for record in records for run in record["runs"]}
    return [m for m in METHODS if m in present]


def best_peer(record: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The seed's peer run (every method but the loop) with the highest `key` ("best_search", "holdout"); None
    where no peer has one."""
    peers = [run for run in record["runs"] if run["method"] != LOOP and run[key] is not None]
    return max(peers, key=lambda run: run[key], default=None)


def target(record: dict[str, Any]) -> float | None:
    """The seed's target: the best final search composite of any peer (every method but the loop); None where no
    peer rose above the starting instructions (then the start itself would count as reaching it)."""
    best = best_peer(record, "best_search")
    start = record["baseline"].get("search")
    if best is None or (start is not None and best["best_search"] <= start + TIE):
        return None
    return best["best_search"]


def reached(run: dict[str, Any], goal: float | None) -> tuple[int, float] | None:
    """(model calls, joules) spent when the run's best search composite first reached `goal`; None if never."""
    if goal is None:
        return None
    for calls, value, joules in run["trajectory"]:
        if value >= goal - TIE:
            return calls, joules
    return None


@dataclass
class MethodSummary:
    method: str
    seeds: list[int] = field(default_factory=list)
    holdout: list[float | None] = field(default_factory=list)  # per seed: the pick's mean over the holdout repeats
    holdout_delta: list[float | None] = field(default_factory=list)  # per seed: that minus the start's
    best_search: list[float | None] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)
    # Replies reused for requests identical to earlier ones (None: a seed file from before 2026-12-05 has none).
    reused: list[float | None] = field(default_factory=list)
    joules: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    keeps: list[float] = field(default_factory=list)
    # Per seed with a target (one where a peer rose above the start): the calls and joules that reached it, or None.
    to_target: list[tuple[int, float] | None] = field(default_factory=list)
    pruned_trials: list[float] = field(default_factory=list)
    pruned_share: list[float] = field(default_factory=list)
    saved_share: list[float | None] = field(default_factory=list)
    screen_saved_share: list[float | None] = field(default_factory=list)
    failed_screen_share: list[float | None] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    # Per seed whose pick scored above the start on the search tasks: (that gain, the pick's gain on holdout).
    gains: list[tuple[float, float]] = field(default_factory=list)


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, MethodSummary]:
    rows = {m: MethodSummary(m) for m in methods_in(records)}
    for record in records:
        goal = target(record)
        start = record["baseline"].get("holdout")
        start_search = record["baseline"].get("search")
        screen = record.get("screen_calls")
        for run in record["runs"]:
            row = rows[run["method"]]
            row.seeds.append(record["seed"])
            row.holdout.append(run["holdout"])
            row.holdout_delta.append(None if run["holdout"] is None or start is None else run["holdout"] - start)
            row.best_search.append(run["best_search"])
            row.calls.append(run["calls"])
            row.reused.append(run.get("reused"))
            row.joules.append(run["joules"])
            row.wall_s.append(run["wall_s"])
            row.keeps.append(run["keeps"])
            if goal is not None:
                row.to_target.append(reached(run, goal))
            n, share, saved, screen_saved = call_shares.pruning(run, screen)
            row.pruned_trials.append(n)
            row.pruned_share.append(share)
            row.saved_share.append(saved)
            row.screen_saved_share.append(screen_saved)
            row.failed_screen_share.append(call_shares.failed_screens(run, screen))
            row.sources.update(s for s in run["energy_source"].split("+") if s and s != "none")
            moved = None if run["best_search"] is None or start_search is None else run["best_search"] - start_search
            if moved is not None and moved > TIE and row.holdout_delta[-1] is not None:
                row.gains.append((moved, row.holdout_delta[-1]))
    return rows


def _to_target(values: list[tuple[int, float] | None]) -> tuple[str, str]:
    if not values:
        return "– (no peer rose above the start)", "–"
    hits = [v for v in values if v is not None]
    if not hits:
        return f"not reached (0 of {len(values)})", "–"
    of = f" ({len(hits)} of {len(values)})" if len(hits) < len(values) else ""
    return (spread([float(c) for c, _ in hits], "{:.0f}") + of, spread([j for _, j in hits], "{:,.0f}", " J") + of)


def table(records: Sequence[dict[str, Any]]) -> str:
    """A row per method: mean ± sample sd over the seeds it ran in; the starting instructions first."""
    repeats = records[0]["options"].get("holdout_repeats", 1)
    starts = [r["baseline"] for r in records]
    lines = [f"| method | seeds | holdout composite of the pick ({repeats} repeats) | vs the start | best search "
             "composite | keeps | model calls | replies reused | joules (source) | calls to target | "
             "joules to target | pruned trials (share of calls; calls saved, est.; the screens' calls saved, est.) | "
             "calls in screens that failed (a "
             "pruner's ceiling) | wall time |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
             f"| starting instructions (no search) | {len(records)} | {spread([s.get('holdout') for s in starts])} | – "
             f"| {spread([s.get('search') for s in starts])} | – | 0 | – | – | – | – | – | – | – |"]
    for method, row in summarise(records).items():
        calls_to, joules_to = _to_target(row.to_target)
        if any(row.pruned_trials) or method == LOOP:
            # Seeds without a figure stay in the list: spread says "(2 of 3)" instead of a mean of fewer seeds.
            share = spread([100 * s for s in row.pruned_share], '{:.0f}', '%')
            saved = ""  # of the run's calls, then of its screens' calls
            for figures in (row.saved_share, row.screen_saved_share):
                shares = [None if s is None else 100 * s for s in figures]
                if any(s is not None for s in shares):
                    saved += f"; {spread(shares, '{:.0f}', '%')}"
            pruned = f"{spread(row.pruned_trials, '{:.1f}')} ({share}{saved})"
        else:
            pruned = "– (no pruner)" if method in ("greedy", "random") else "–"
        ceiling = [None if s is None else 100 * s for s in row.failed_screen_share]
        lines.append(
            f"| {LABELS[method]} | {len(row.seeds)} | {spread(row.holdout)} | {_signed(row.holdout_delta)} | "
            f"{spread(row.best_search)} | {spread(row.keeps, '{:.1f}')} | {spread(row.calls, '{:.0f}')} | "
            f"{spread(row.reused, '{:.0f}')} | {spread(row.joules, '{:,.0f}', ' J')} "
            f"({'+'.join(sorted(row.sources)) or 'none'}) | {calls_to} | {joules_to} | {pruned} | "
            f"{spread(ceiling, '{:.0f}', '%')} | {duration(statistics.fmean(row.wall_s))} |")
    return "\n".join(lines)


def gains_table(records: Sequence[dict[str, Any]]) -> str:
    """A row per method: the seeds whose pick scored above the start on the search tasks, by how much, and what
    that pick then gained on the holdout tasks (a search gain that holds is an improvement; one that vanishes was
    the noise of the evaluations that picked it)."""
    lines = ["| method | picks above the start on search | their search gain | their holdout gain |",
             "| --- | ---: | ---: | ---: |"]
    for method, row in summarise(records).items():
        n = len(row.gains)
        cells = ([_signed([g for g, _ in row.gains]), _signed([h for _, h in row.gains])] if n else ["–", "–"])
        lines.append(f"| {LABELS[method]} | {n} of {len(row.seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pick_found(run: dict[str, Any], start_holdout: float | None) -> tuple[int, float]:
    """(model calls, joules) spent when the run first held the pick it handed back: its last best search composite,
    or (0, 0) where the pick is the starting instructions (their holdout evaluations, to the float)."""
    if start_holdout is not None and run["holdout"] is not None and abs(run["holdout"] - start_holdout) <= TIE:
        return 0, 0.0
    if not run["trajectory"]:
        return 0, 0.0
    calls, _, joules = run["trajectory"][-1]
    return int(calls), float(joules)


def holdout_target_table(records: Sequence[dict[str, Any]]) -> str:
    """Goal 2 in the issue's own terms, per seed: the best peer's final holdout composite, the calls and joules
    that peer spent to find its pick, and the calls and joules at which the loop held a pick at least as good on
    holdout. Only picks are evaluated on holdout, so the loop's figure is when it found its pick: an earlier
    incumbent of its may have been as good already."""
    lines = ["| seed | start's holdout | best peer's holdout (its calls / joules to its pick) | loop's holdout | "
             "loop's calls / joules to its pick | loop's share of the peer's calls / joules |",
             "| ---: | ---: | --- | ---: | ---: | ---: |"]
    for record in records:
        start = record["baseline"].get("holdout")
        loop = next((run for run in record["runs"] if run["method"] == LOOP), None)
        best = best_peer(record, "holdout")
        if best is None or loop is None or loop["holdout"] is None:
            continue
        peer_calls, peer_joules = pick_found(best, start)
        loop_calls, loop_joules = pick_found(loop, start)
        peer = f"{LABELS[best['method']]}: {num(best['holdout'])} ({peer_calls} / {peer_joules:,.0f} J)"
        if start is not None and best["holdout"] <= start + TIE:
            share = "– (no peer's pick above the start)"
        elif loop["holdout"] < best["holdout"] - TIE:
            share = "not reached"
        else:
            share = (f"{loop_calls / peer_calls:.0%} / {loop_joules / peer_joules:.0%}" if peer_calls and peer_joules
                     else "–")
        lines.append(f"| {record['seed']} | {num(start)} | {peer} | {num(loop['holdout'])} | "
                     f"{loop_calls} / {loop_joules:,.0f} J | {share} |")
    if len(lines) == 2:  # a header alone reads as a table lost in the writing
        return "Holdout target: no seed here has both the loop's run and a peer's."
    return "\n".join(lines)


def seed_table(records: Sequence[dict[str, Any]]) -> str:
    """A row per seed: the start and each method's pick on the holdout tasks, the target, and the machine."""
    methods = methods_in(records)
    lines = ["| seed | start: search / holdout (sd over its repeats) | target (best peer's search) | "
             + " | ".join(f"{LABELS[m]}: holdout" for m in methods) + " | machine |",
             "| ---: | ---: | ---: | " + " | ".join("---:" for _ in methods) + " | --- |"]
    for record in records:
        by_method = {run["method"]: run for run in record["runs"]}
        cells = [num(by_method[m]["holdout"]) if m in by_method else "" for m in methods]
        base = record["baseline"]
        repeats = [v for v in base.get("holdout_repeats", []) if v is not None]
        noise = f" ({statistics.stdev(repeats):.2f})" if len(repeats) > 1 else ""
        lines.append(f"| {record['seed']} | {num(base.get('search'))} / {num(base.get('holdout'))}{noise} | "
                     f"{num(target(record))} | " + " | ".join(cells) + f" | {record['machine'].get('cpu', '?')} |")
    return "\n".join(lines)


def _signed(values: list[float | None]) -> str:
    """A difference: its mean with a sign, the sd without one (+0.12 ± 0.30)."""
    text = spread(values)
    present = [v for v in values if v is not None]
    return text if not present or statistics.fmean(present) < 0 else "+" + text


def _seeds(n: int) -> str:
    return "1 seed" if n == 1 else f"mean of {n} seeds"


def best_so_far(run: dict[str, Any], start: float | None, calls: int) -> float | None:
    """The run's best search composite after `calls` model calls (the start's before its first)."""
    value = start
    for n, composite, _ in run["trajectory"]:
        if n > calls:
            break
        value = composite
    return value


def curve_svg(records: Sequence[dict[str, Any]]) -> str:
    """Calls to target: each method's best search composite against model calls, the mean over its seeds; the
    starting instructions and the target (the best peer's final search composite, mean over seeds) as lines."""
    budget = max(int(r["options"]["budget"]) for r in records)
    grid = sorted({0, budget, *range(0, budget + 1, max(1, budget // 60)),
                   *(n for r in records for run in r["runs"] for n, _, _ in run["trajectory"] if n <= budget)})
    lines: list[tuple[list[tuple[float, float]], str, bool]] = []
    points: list[svg.Point] = []
    starts = [r["baseline"]["search"] for r in records if r["baseline"].get("search") is not None]
    mean_start = statistics.fmean(starts) if starts else None
    if mean_start is not None:
        lines.append(([(0.0, mean_start), (float(budget), mean_start)], BASELINE_COLOUR, False))
    goals = [g for g in (target(r) for r in records) if g is not None]
    if goals:
        goal = statistics.fmean(goals)
        lines.append(([(0.0, goal), (float(budget), goal)], TARGET_COLOUR, False))
        points.append(svg.Point(budget, goal, TARGET_COLOUR, f"target: the best peer's final search composite, "
                                f"{goal:.2f} ({_seeds(len(goals))})", hollow=True))
    methods = methods_in(records)
    paths: dict[str, list[tuple[float, float]]] = {}
    for method in methods:
        runs = [(r["baseline"].get("search"), run) for r in records for run in r["runs"] if run["method"] == method]
        path = []
        for x in grid:
            values = [v for v in (best_so_far(run, start, x) for start, run in runs) if v is not None]
            if values:
                path.append((float(x), statistics.fmean(values)))
        if path:
            paths[method] = path
            lines.append((path, COLOURS[method], True))
            points.append(svg.Point(path[-1][0], path[-1][1], COLOURS[method],
                                    f"{LABELS[method]}: {path[-1][1]:.2f} after {budget} calls ({_seeds(len(runs))})"))
    if not points:
        points.append(svg.Point(0, 0.0, BASELINE_COLOUR, "nothing measured"))
    chart = svg.scatter(points, label="best search composite against model calls, mean over seeds",
                        x_label="model calls", y_label="best search composite (mean over seeds)", lines=lines,
                        integer_x=True)
    legend = ([("starting instructions", BASELINE_COLOUR), ("target: best peer's final", TARGET_COLOUR)]
              + [(LABELS[m], COLOURS[m]) for m in methods])
    height = svg.HEIGHT + 14 + 18 * ((len(legend) + 2) // 3)
    # A note under the legend names the curves the chart draws on top of one another, 100 characters a row.
    notes = [row for note in hidden_lines(paths, mean_start) for row in textwrap.wrap(note, 100)]
    full = height + 18 * len(notes)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {svg.WIDTH} {full}" width="{svg.WIDTH}" '
           f'height="{full}">', STYLE, '<rect width="100%" height="100%" fill="white"/>', chart]
    for i, (name, colour) in enumerate(legend):
        x, y = 64 + (i % 3) * 230, svg.HEIGHT + 14 + 18 * (i // 3)
        out.append(f'<rect x="{x}" y="{y - 9}" width="14" height="4" fill="{colour}"/>'
                   f'<text x="{x + 20}" y="{y - 3}">{escape(name)}</text>')
    for i, note in enumerate(notes):
        out.append(f'<text x="64" y="{height - 3 + 18 * i}">{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def hidden_lines(paths: dict[str, list[tuple[float, float]]], start: float | None) -> list[str]:
    """Say which methods' curves lie on top of one another (or on the start's line), since the chart shows only
    the last one drawn."""
    groups: dict[tuple[tuple[float, float], ...], list[str]] = {}
    for method, path in paths.items():
        groups.setdefault(tuple(path), []).append(method)
    notes = []
    for path, members in groups.items():
        flat = start is not None and all(abs(y - start) <= TIE for _, y in path)
        if len(members) > 1 or flat:
            names = ", ".join(LABELS[m] for m in members)
            where = "on the starting instructions' line" if flat else "on one line"
            notes.append(f"{names}: {where}" + (", drawn on top of each other" if len(members) > 1 else ""))
    return notes


def write(out: Path, records: list[dict[str, Any]]) -> dict[str, Path]:
    """The report over every seed file in `out`: search.md (the tables), search.svg (calls to target) and
    search.json (each method's summary)."""
    svg_path, md_path, json_path = out / "search.svg", out / "search.md", out / "search.json"
    ablation = pruner_ab.section(records)  # the loop against its unpruned copy, where a seed ran both
    ab_json = pruner_ab.as_json(records)
    shadow = pruner_shadow.section(records)  # where the loop's pruner would have stopped the unpruned arm's trials
    shadow_json = pruner_shadow.as_json(records)
    records = without_ablations(records)
    first = records[0]
    options = first["options"]
    holdout = options.get("holdout_repeats", 1)
    summary = summarise(records)
    svg_path.write_text(curve_svg(records), encoding="utf-8")
    text = "\n".join([
        "# bench_search", "",
        f"Budget: {options['budget']} model calls per method and seed; seeds {', '.join(str(r['seed']) for r in records)}"
        f" (mean ± sample standard deviation over seeds). Workspace: {options['workspace'] or 'the starter'} "
        f"(portfolio {options['portfolio']}), {first.get('search_tasks', '?')} search and "
        f"{first.get('holdout_tasks', '?')} holdout tasks. Backend: {first.get('backend', options['backend'])}.",
        machines_line(records),
        "Evaluation draws: " + (
            f"each seed its own (every pipeline role's seed + {draws.DRAW_STEP} × the seed, for every method and "
            "the start), so the start's composites differ between seeds." if seeds.option(first, "draws") else
            "one for every seed (the portfolio's seeds): the seeds move the methods' proposals and samplers, not "
            "the answers and judgements, so a method that follows rules walks one path on every seed."),
        f"Wall time {duration(sum(r['total_s'] for r in records))} in all; "
        f"{sum(r['outside_calls'] for r in records)} calls outside the budgets (the starting instructions on both "
        f"splits, each pick on the holdout tasks, {holdout} repeats each).", "",
        table(records), "",
        "- **Holdout composite of the pick**: the instructions the method hands back, evaluated on the holdout "
        f"tasks afterwards, outside its budget, with {holdout} seed sets (the mean); *vs the start*: that minus "
        "the starting instructions' holdout composite under the same seed sets (mean ± sd over seeds).",
        "- **Best search composite**: what the method's own pick scored on the search tasks within its budget. "
        "The loop, greedy and random report a pick's mean over its noise repeats; MIPROv2 and GEPA the single "
        "evaluation that made it their best, the highest of many noisy ones.",
        "- **Calls / joules to target**: spent when the method's best search composite first reached the seed's "
        "target, the best final search composite of any peer (every method but the loop); the mean over the "
        "seeds that reached it. **Pruned trials**: trials stopped early, the share of calls they made, and "
        "the share of calls pruning saved (each pruned trial counted as the full screen it cut short), then the "
        "same saving as a share of the screens' calls alone (the baseline and every call after a trial's screen "
        "left out: what a screen pruner acts on). **Calls in "
        "screens that failed**: the share of calls spent in trials that ended within their screen (pruned, or "
        f"discarded at its screen: by its race's recorded stage, in older seed files after at most {SCREEN_SLACK:g} "
        "screens' calls): no screen pruner can save more (it would "
        "have to stop each of those screens before its first task). The rest went to the baseline, "
        "confirmations and proposals.",
        "- **Search gains and holdout** (the second table): each pick that scored above the start on the search "
        "tasks, what it gained there and what it gained on the holdout tasks (mean ± sd over those seeds). A gain "
        "that vanishes on holdout was found in the noise of the evaluations that picked it.",
        "- **Per seed** (the third table): the start's holdout composite moves by the sd in brackets between its seed sets; a "
        "pick's difference from the start is noise unless it is well beyond that.",
        "- **Holdout target** (the fourth table): per seed, the best peer's pick by its holdout composite, the calls "
        "and joules that peer spent until it held that pick, and when the loop held a pick at least as good on "
        "holdout (only picks are evaluated there, so an earlier incumbent of the loop's may already have been).",
        "- **Paired leads** (the fifth table): per peer, the loop's pick's holdout composite minus the peer's on each "
        "seed both ran (same seed sets, so the seed's start cancels), the mean ± its standard error, the one-sided "
        "95% t bound as if that peer were the only comparison and again with every peer counted (Bonferroni), and "
        "an exact sign test over the seeds that did not tie. A lead is decided only where a bound clears zero, and "
        "(as in the keep rule) from at least as many seeds as that sign test needs at its confidence (5 at 95%).",
        "- **Where the calls went** (the sixth table, the methods that run trials): each run's calls by what its "
        "trials were, as shares of the run (mean ± sd over seeds): the baseline (the start's search and holdout "
        "evaluations and its noise seed set), keeps (each kept trial's whole race), races lost after the screen, "
        "screens that failed (pruned, or discarded at the screen, as above), failed trials, and "
        "the trial the budget ended. A screen pruner acts on the screens' share alone; a cheaper keep rule on the "
        "keeps' and the lost races'.", "",
        gains_table(records), "",
        seed_table(records), "",
        holdout_target_table(records), "",
        leads.table(summary), "",
        call_shares.table(records), "",
        *ablation,
        *shadow,
        "![best search composite against model calls, mean over seeds](search.svg)", "",
        "Notes:", "", *(f"- {n}" for r in records for n in r.get("notes", [])), ""])
    md_path.write_text(text, encoding="utf-8")
    json_path.write_text(json.dumps({
        "options": options, "seeds": [r["seed"] for r in records], "machines": machine_names(records),
        "methods": {m: {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(row).items()}
                    for m, row in summary.items()},
        "leads": [lead.as_json() for lead in leads.leads(summary)],
        "call_shares": call_shares.mean_shares(records), "pruner_ab": ab_json,
        "pruner_shadow": shadow_json},
        indent=2) + "\n", encoding="utf-8")
    return {"table": md_path, "plot": svg_path, "data": json_path}
