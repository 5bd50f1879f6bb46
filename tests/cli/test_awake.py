"""The run keeps the machine awake: logind's inhibitor held for exactly the run's life, or one line saying why not.

This machine has no systemd-logind (a container), so a stand-in for systemd-inhibit does what the real one does
with its command: runs it and holds the lock until it ends. Whether logind then keeps a laptop from sleeping is
logind's part, not tested here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from autoresearch.cli import awake
from autoresearch.cli.awake import Awake, keep_awake

HOLDS = """#!/bin/sh
echo "$@" > "{record}"
echo $$ > "{record}.pid"
while [ "${{1#--}}" != "$1" ]; do shift; done
exec "$@"
"""
REFUSES = """#!/bin/sh
echo "Failed to connect to bus: No such file or directory" >&2
exit 1
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def logind(tmp_path, monkeypatch):
    """A systemd machine whose systemd-inhibit is the stand-in; returns (install(script), record file)."""
    bin_dir, record = tmp_path / "bin", tmp_path / "inhibit.args"
    bin_dir.mkdir()
    (tmp_path / "systemd").mkdir()
    monkeypatch.setattr(awake, "SYSTEMD_BOOTED", tmp_path / "systemd")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def install(script: str) -> None:
        path = bin_dir / "systemd-inhibit"
        path.write_text(script.format(record=record))
        path.chmod(0o755)

    return install, record


def _wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def test_the_inhibitor_is_held_for_the_block_and_let_go_after(logind):
    install, record = logind
    install(HOLDS)
    with keep_awake("autoresearch run in /ws") as held:
        assert held == Awake(True, "systemd-inhibit: idle and sleep blocked")
        assert record.read_text().split()[:4] == ["--what=idle:sleep", "--who=autoresearch",
                                                   "--why=autoresearch", "run"]
        pid = int(record.with_suffix(".args.pid").read_text())
        assert _alive(pid)
    assert _wait_gone(pid)
    assert held.line() == ("keeping this machine awake while the run goes (systemd-inhibit: idle and sleep "
                           "blocked); --allow-sleep lets it sleep")


def test_a_run_killed_outright_lets_the_machine_sleep_again(logind, tmp_path):
    # kill -9 runs no cleanup: the inhibitor must still end, or a crashed run keeps the machine awake for good.
    install, record = logind
    install(HOLDS)
    code = ("import sys, time; from autoresearch.cli import awake; from pathlib import Path\n"
            f"awake.SYSTEMD_BOOTED = Path({str(tmp_path / 'systemd')!r}); sys.platform = 'linux'\n"
            "with awake.keep_awake('r') as held:\n    print(held.held, flush=True); time.sleep(60)\n")
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert run.stdout.readline().strip() == "True"
        pid = int(record.with_suffix(".args.pid").read_text())
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert _wait_gone(pid)
    finally:
        run.kill()


def test_an_inhibitor_that_is_refused_is_one_line_and_the_run_goes_on(logind):
    install, _ = logind
    install(REFUSES)
    with keep_awake("r") as held:
        assert held == Awake(False, "systemd-inhibit: Failed to connect to bus: No such file or directory")
    assert held.line() == ("could not keep this machine awake (systemd-inhibit: Failed to connect to bus: No such "
                           "file or directory): if it sleeps, the run pauses until it wakes")


def test_without_logind_or_when_sleep_is_allowed_nothing_is_asked(logind, tmp_path, monkeypatch):
    install, record = logind
    install(HOLDS)
    with keep_awake("r", enabled=False) as held:
        assert held is None
    monkeypatch.setattr(awake, "SYSTEMD_BOOTED", tmp_path / "no-systemd")  # a container, a server without logind
    with keep_awake("r") as held:
        assert held is None
    assert not record.exists()


@pytest.mark.parametrize("allow_sleep", [False, True])
def test_run_keeps_the_machine_awake_unless_allowed_to_sleep(workspace_dir, logind, monkeypatch, allow_sleep):
    from click.testing import CliRunner

    from autoresearch.cli.main import main
    from autoresearch.lm import preflight
    from autoresearch.pipeline import harness
    from autoresearch.testing import ScriptedPipeline

    install, record = logind
    install(HOLDS)
    pipeline = ScriptedPipeline(variants=["Answer!\n"])
    monkeypatch.setattr(harness, "create_backend", pipeline.factory)
    monkeypatch.setattr(preflight, "create_backend", pipeline.factory)
    args = ["run", "-w", str(workspace_dir), "--trials", "1"] + (["--allow-sleep"] if allow_sleep else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    said = "keeping this machine awake while the run goes (systemd-inhibit: idle and sleep blocked)"
    assert (said in " ".join(result.output.split())) is not allow_sleep
    assert record.exists() is not allow_sleep
    if not allow_sleep:
        assert f"--why=autoresearch run in {workspace_dir}" in record.read_text()
        assert _wait_gone(int(record.with_suffix(".args.pid").read_text()))  # let go when the run ended
