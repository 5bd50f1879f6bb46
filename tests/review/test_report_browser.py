"""The report opened in headless Chromium: every chart drawn, no console error, and a screenshot under runs/."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoresearch.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "runs" / "report.png"
# Headless, offline and self-contained: no GPU, no sandbox (containers run as root), no background traffic.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def find_chromium() -> str:
    """Chromium's path; installs Debian's package (scripts/ensure_chromium.sh) when it is missing."""
    found = shutil.which("chromium")
    if found:
        return found
    setup = subprocess.run([str(REPO / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True,
                           timeout=900)
    found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is not installed and scripts/ensure_chromium.sh could not install it: "
                    + (setup.stderr.strip().splitlines() or ["no output"])[-1])
    return found


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def report_file(overnight) -> Path:
    result = CliRunner().invoke(main, ["report", "-w", str(overnight.root), "--open-path-only"])
    assert result.exit_code == 0, result.output
    return Path(result.output.strip())


def test_report_renders_its_charts_without_console_errors(report_file, tmp_path):
    binary = find_chromium()
    run = chromium(binary, tmp_path / "profile", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                   "--dump-dom", report_file.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert "<body" in dom, run.stderr[-2000:]
    # The page's own probe records errors, console.error calls and blocked loads on <html data-errors>.
    html_tag = re.search(r"<html([^>]*)>", dom).group(1)
    assert "data-errors" not in html_tag, html_tag
    # Chromium logs every console message of the page to stderr as CONSOLE lines: there must be none.
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    # The closing script ran and found every chart drawn with a real size.
    body = re.search(r"<body([^>]*)>", dom).group(1)
    charts = int(re.search(r'data-charts="(\d+)"', body).group(1))
    drawn = int(re.search(r'data-charts-drawn="(\d+)"', body).group(1))
    assert charts == drawn == 6
    assert 'id="trial-2"' in dom and "Pareto front" in dom


def test_report_screenshot_is_saved_under_runs(report_file, tmp_path):
    binary = find_chromium()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    run = chromium(binary, tmp_path / "profile", "--window-size=1280,2000", f"--screenshot={SCREENSHOT}",
                   report_file.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a page of charts and tables, not a blank frame


def test_the_error_probe_would_catch_a_broken_page(report_file, tmp_path):
    """Guards the test above against passing vacuously: a script error and a network fetch are both caught."""
    binary = find_chromium()
    broken = tmp_path / "broken.html"
    page = report_file.read_text(encoding="utf-8")
    broken.write_text(page.replace("</body>", '<img src="https://example.com/x.png"><script>noSuchFunction();'
                                              "</script></body>"), encoding="utf-8")
    run = chromium(binary, tmp_path / "profile", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                   "--dump-dom", broken.as_uri())
    errors = re.search(r'<html[^>]*data-errors="([^"]*)"', run.stdout).group(1)
    assert "noSuchFunction" in errors and "example.com" in errors
    assert any(":CONSOLE" in line and "noSuchFunction" in line for line in run.stderr.splitlines())
