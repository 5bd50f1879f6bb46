"""`autoresearch report`: one self-contained HTML page per study, written under runs/."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...store import Store
from ...workspace.workspace import RUNS_DIR
from .data import ReportData, gather
from .html import render

__all__ = ["ReportData", "gather", "render", "report_path", "write_report"]


def report_path(root: Path, study: str) -> Path:
    """runs/report-<study>.html: one file per study, so two portfolios' reports never overwrite each other."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", study)
    return Path(root) / RUNS_DIR / f"report-{safe}.html"


def write_report(store: Store, root: Path, study: str) -> Path:
    """Gather the study's figures, render the page and write it atomically; return its path."""
    path = report_path(root, study)
    page = render(gather(store, root, study))
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)  # a browser reloading the old report never sees half a page
    return path
