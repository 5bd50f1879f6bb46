"""bench_validity's report: the checks' figures, the markdown table (both rules, the replayed score table, the
rule's other settings, the pruner's levels) and the JSON beside it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import report
from .spike import SPIKE, SPIKE_COMPOSITE

if TYPE_CHECKING:
    from .validity import TrialRow, ValidityOptions, ValidityResult


def figures(result: ValidityResult) -> dict[str, Any]:
    """The four checks' figures, for both rules where both apply."""
    aa, power, normal = result.stage("aa"), result.stage("power"), result.stage("normal")
    keeps = [r for r in result.rows if r.status == "keep"]
    normal_keeps = [r for r in normal if r.status == "keep"]

    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    def per_trial(rows: list[TrialRow], attr: str) -> float | None:
        return sum(getattr(r, attr) for r in rows) / len(rows) if rows else None

    every = [r for r in result.rows if r.stage in ("aa", "normal")]
    return {
        "aa_trials": len(aa), "aa_false_keeps": sum(r.status == "keep" for r in aa),
        "aa_false_keeps_old": sum(r.old_keep for r in aa),
        "aa_false_keep_rate": share(sum(r.status == "keep" for r in aa), len(aa)),
        "aa_false_keep_rate_old": share(sum(r.old_keep for r in aa), len(aa)),
        "power_tries": len(power), "power_keeps": sum(r.status == "keep" for r in power),
        "power_keeps_old": sum(r.old_keep for r in power),
        "power": share(sum(r.status == "keep" for r in power), len(power)),
        "normal_trials": len(normal), "normal_keeps": len(normal_keeps),
        "normal_keeps_old": sum(r.old_keep for r in normal),
        "holdout_agreement_normal": share(sum((r.holdout_delta or 0) > 0 for r in normal_keeps), len(normal_keeps)),
        "holdout_agreement_all": share(sum((r.holdout_delta or 0) > 0 for r in keeps), len(keeps)),
        "keeps_all": len(keeps),
        "calls_per_trial": per_trial(every, "calls"), "calls_per_trial_old": per_trial(every, "old_calls"),
        "cost_ratio": (per_trial(every, "calls") / per_trial(every, "old_calls")
                       if every and per_trial(every, "old_calls") else None),
        "baseline_calls": [b["calls"] for b in result.baselines],
    }


def markdown(options: ValidityOptions, result: ValidityResult) -> str:
    f = figures(result)

    p = result.planted
    lines = [f"Machine: {report.machine_line(result.machine)}", f"Backend: {result.backend}", ""]
    if p:
        lines.append(f"Instruction edits against the starter (composite {p['starter_mean']:.2f}) on fresh seeds "
                     f"{p['seeds']}, paired over search tasks × seeds:")
        for name, c in p["edits"].items():
            lines.append(f"- {name}: {c['mean']:+.2f} over {c['tasks']} tasks × {c['repeats']} seeds "
                         f"(95% lower bound {c['lower_bound']:+.2f})")
        lines.append(f"Power is measured on a spiked effect: +{SPIKE:g} judge point per dimension "
                     f"(+{SPIKE_COMPOSITE:.2f} on a task's composite) for answers written under the planted "
                     "producer.md (bench/spike.py).")
        lines.append("")
    studies = bool(result.rows)  # the aa, power and normal stages ran (a table-only run has its replay alone)
    live = [
        f"| A/A false keeps ({f['aa_trials']} null-edit trials) | ≤ 5% | {f['aa_false_keeps']} "
        f"({_pct(f['aa_false_keep_rate'])}) | {f['aa_false_keeps_old']} ({_pct(f['aa_false_keep_rate_old'])}) |",
        f"| power on a spiked +{SPIKE_COMPOSITE:.2f} ({f['power_tries']} fresh-seed tries) | ≥ 80% | "
        f"{f['power_keeps']} "
        f"({_pct(f['power'])}) | {f['power_keeps_old']} |",
        f"| holdout agreement of keeps, normal study ({f['normal_keeps']} keeps in {f['normal_trials']} trials) "
        f"| ≥ 90% | {_pct(f['holdout_agreement_normal'])} | {f['normal_keeps_old']} keeps, holdout not gated |",
        f"| holdout agreement of every keep above ({f['keeps_all']}) | ≥ 90% | {_pct(f['holdout_agreement_all'])} "
        "| |",
        f"| model calls per trial (A/A + normal) | ≤ 1.5× | {_calls(f['calls_per_trial'])} "
        f"({_calls(f['cost_ratio'], '.2f')}×) | {_calls(f['calls_per_trial_old'])} |",
    ] if studies else []
    lines += [
        "| check | target | paired rule (now) | one evaluation > 0.1 (before) |",
        "|---|---|---|---|",
        *live,
        *_resampled_rows(result.resampled),
        "",
        *_settings_rows(result.resampled),
        "",
        *_pruner_rows(result.resampled),
        "",
        *_early_rows(result.resampled),
    ]
    if f["baseline_calls"]:
        lines.append(f"Baselines: {', '.join(str(c) for c in f['baseline_calls'])} calls each (the search tasks under "
                     "noise_repeats_upfront seed sets and the holdout; the old rule's baseline was one search evaluation + "
                     "holdout).")
    lines.append("Stage times: " + ", ".join(f"{k} {report.duration(v)}" for k, v in result.seconds.items()))
    if result.resampled.get("table_machine"):  # a replayed table's scores may come from another machine
        r = result.resampled
        lines.append(f"Score table: {r['table_calls']} model calls, {report.duration(r['table_seconds'])} of "
                     f"evaluation on {report.machine_line(r['table_machine'])}")
    if studies:
        lines += ["", "| stage | try | trial | status | race ended | screen Δ | paired Δ | bound | holdout Δ | "
                      "old keep | calls | old calls |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result.rows:
        lines.append(f"| {r.stage} | {r.study} | {r.number} | {r.status} | {r.stage_reached} | {_num(r.screen_delta)} | "
                     f"{_num(r.paired_delta)} | {_num(r.lower_bound)} | {_num(r.holdout_delta)} | "
                     f"{'yes' if r.old_keep else 'no'} | {r.calls} | {r.old_calls} |")
    return "\n".join(lines) + "\n"


def _resampled_rows(found: dict[str, Any]) -> list[str]:
    """The table rows of the rule replayed over the score table (none without a table stage)."""
    if not found:
        return []
    aa, power = found["aa"], found["power"]
    basis = f"{found['variants']} null variants × {found['seed_sets']} seed sets"
    ratio = aa["calls_per_trial"] / aa["old_calls_per_trial"] if aa["old_calls_per_trial"] else None

    def rate(keeps: int, trials: int) -> str:
        return f"{keeps} of {trials} ({keeps / trials:.1%})" if trials else "n/a"

    agreeing = found["holdout_agreement"]

    return [
        f"| A/A, resampled: every ordered pair of {basis} ({aa['trials']} decisions) | ≤ 5% | "
        f"{rate(aa['keeps'], aa['trials'])} | {rate(aa['old_keeps'], aa['trials'])} |",
        f"| power, resampled: the planted edit against each null variant ({power['trials']} decisions) | ≥ 80% | "
        f"{rate(power['keeps'], power['trials'])} | {rate(power['old_keeps'], power['trials'])} |",
        f"| holdout agreement, resampled: keeps whose holdout delta on the seed sets the gate did not see is > 0 "
        f"({agreeing['measured']} keeps) | ≥ 90% | {_pct(agreeing['rate'])} | |",
        f"| model calls per trial, resampled A/A | ≤ 1.5× | {_calls(aa['calls_per_trial'])} ({_calls(ratio, '.2f')}×) "
        f"| {_calls(aa['old_calls_per_trial'])} |",
    ]


def _settings_rows(found: dict[str, Any]) -> list[str]:
    """The score table replayed under other settings of the rule: seed sets confirmed on, across_tasks."""
    if not found.get("settings"):
        return []
    lines = ["The score table replayed under other settings of the rule (the configured one: noise_repeats "
             f"{found['repeats']}, across_tasks {str(found['across_tasks']).lower()}):", "",
             "| noise_repeats | across_tasks | A/A false keeps | power | calls per trial (× old) |", "|---|---|---|---|---|"]
    for row in found["settings"]:
        aa, power = row["aa"], row["power"]
        lines.append(f"| {row['repeats']} | {str(row['across_tasks']).lower()} | {aa['rate']:.2%} | "
                     f"{power['rate']:.1%} | {aa['calls_per_trial']:.1f} "
                     f"({aa['calls_per_trial'] / aa['old_calls_per_trial']:.2f}×) |")
    return lines


def _pruner_rows(found: dict[str, Any]) -> list[str]:
    """The configured rule replayed over the score table with and without the paired pruner."""
    if not found.get("pruned") or not found["aa"]["trials"]:  # none: fewer seed sets than the rule confirms on
        return []
    lines = ["The configured rule replayed with `[search] pruner = \"paired\"` stopping screens first (each "
             "screen running the tasks with the least seed noise first, as the loop does; the pruner's noise from "
             "the seed sets the baseline measured before any trial, `[search] noise_repeats_upfront`):", "",
             "| pruner | A/A false keeps | A/A calls per trial | A/A trials pruned | power | power trials pruned |",
             "|---|---|---|---|---|---|"]
    upfront = found.get("noise_upfront", found["repeats"])

    def sets(n: int) -> str:
        return f"noise from {n} seed set{'' if n == 1 else 's'} upfront"

    levels = [(f"paired ({sets(upfront)})", found["pruned"]),
              *((f"paired, z {row['z']:g}", row) for row in found.get("pruned_levels", ())),
              *((f"paired, {sets(row['upfront'])}", row) for row in found.get("pruned_upfront", ()))]
    for name, row in (("none", found), *levels):
        aa, power = row["aa"], row["power"]
        lines.append(f"| {name} | {aa['keeps']} of {aa['trials']} | {aa['calls_per_trial']:.2f} | "
                     f"{aa['stages'].get('pruned', 0)} | {power['keeps']} of {power['trials']} "
                     f"({_rate(power['rate'])}) | {power['stages'].get('pruned', 0)} |")
    lines.append("")
    for name, row in levels:
        saved = 1 - row["aa"]["calls_per_trial"] / found["aa"]["calls_per_trial"]
        lines.append(f"{name[0].upper()}{name[1:]} saves {saved:.0%} of the A/A trials' calls.")
    return lines


def _early_rows(found: dict[str, Any]) -> list[str]:
    """The configured rule and pruner with and without early keeps ([scoring] early_keep)."""
    if "early_flipped" not in found or not found["aa"]["trials"]:
        return []
    lines = ["The configured rule and pruner with and without `[scoring] early_keep` (a contender whose bound "
             "clears zero at 99.9% after an earlier seed set is kept there):", "",
             "| early keeps | A/A false keeps | A/A calls per trial | power | calls per planted trial |",
             "|---|---|---|---|---|"]
    rows = {found["early_keep"]: found["pruned"], not found["early_keep"]: found["early_flipped"]}
    for early in (False, True):
        aa, power = rows[early]["aa"], rows[early]["power"]
        configured = " (configured)" if early == found["early_keep"] else ""
        lines.append(f"| {'on' if early else 'off'}{configured} | {aa['keeps']} of {aa['trials']} | "
                     f"{aa['calls_per_trial']:.2f} | {power['keeps']} of {power['trials']} ({_rate(power['rate'])}) | "
                     f"{_calls(power['calls_per_trial'], '.2f')} |")
    lines.append("")
    gains = found.get("uniform_gains")
    if not gains or not gains["false"] or not gains["false"][0]["trials"]:
        return lines
    deltas = [row["delta"] for row in gains["false"]]
    lines += ["A gain of δ added to the start's own scores on every task and seed set (its noise the table's), raced "
              "against each other null variant, with and without early keeps:", "",
              "| early keeps | " + " | ".join(f"kept at δ {d:g}" for d in deltas) + " | "
              + " | ".join(f"calls a trial at δ {d:g}" for d in deltas) + " |",
              "|---|" + "---|" * (2 * len(deltas))]
    for early in (False, True):
        rows = gains[str(early).lower()]
        lines.append(f"| {'on' if early else 'off'} | " + " | ".join(_rate(r["rate"]) for r in rows) + " | "
                     + " | ".join(_calls(r["calls_per_trial"]) for r in rows) + " |")
    return lines + [""]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}" if abs(value) < 10 else f"{value:.1f}"


def _calls(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def write(out: Path, options: ValidityOptions, result: ValidityResult, quiet: bool = False) -> None:
    text = markdown(options, result)
    (out / "validity.md").write_text(text, encoding="utf-8")
    (out / "validity.json").write_text(json.dumps({"figures": figures(result), "rows": [asdict(r) for r in result.rows],
                                                   **{k: v for k, v in asdict(result).items() if k != "rows"}},
                                                  indent=2, default=str), encoding="utf-8")
    if not quiet:
        print(text, flush=True)
