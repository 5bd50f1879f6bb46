"""What `log`, `show` and `report` must give on a workspace that `autoresearch run` just left (review and search tests)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from scripted import git

from autoresearch.cli.main import main


def check_review(root: Path) -> int:
    """Check that every review command works on what the run left; return the number of keeps."""
    cli = CliRunner()
    log = cli.invoke(main, ["log", "-w", str(root), "--json"])
    assert log.exit_code == 0, log.output
    entries = json.loads(log.output)["entries"]
    kept = [line.split("\t") for line in (root / "runs" / "results.tsv").read_text().splitlines()[1:]
            if line.split("\t")[5] == "keep"]
    assert len(entries) == len(kept)
    assert cli.invoke(main, ["log", "-w", str(root)]).exit_code == 0
    if entries:  # show the newest kept commit, by its short sha
        shown = cli.invoke(main, ["show", "-w", str(root), entries[0]["commit"][:10]])
        assert shown.exit_code == 0, shown.output
        assert shown.output.startswith(f"Trial {entries[0]['trial']} · KEEP · commit {entries[0]['commit'][:10]}")
        assert "Tasks, before → after" in shown.output and "producer output" in shown.output
    else:  # nothing kept: the first trial still shows, labelled with how it ended
        shown = cli.invoke(main, ["show", "-w", str(root), "1"])
        assert shown.exit_code == 0, shown.output
        assert shown.output.startswith("Trial 1 · ")
    report = cli.invoke(main, ["report", "-w", str(root), "--open-path-only"])
    assert report.exit_code == 0, report.output
    page = Path(report.output.strip()).read_text(encoding="utf-8")
    assert page.count('<svg class="chart"') >= 5 and "Composite by trial" in page
    assert git(root, "status", "--porcelain") == ""  # reviewing changed nothing git can see
    return len(entries)
