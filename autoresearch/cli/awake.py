"""Keeping the machine awake while a run goes: a laptop left for the night suspends when idle (no key pressed for
20 minutes, say), and a suspended machine runs no trials. The run asks the system not to: systemd-logind's
block inhibitor for idle and sleep on Linux (systemd-inhibit), `caffeinate -i` on macOS.

The inhibitor lives exactly as long as this process: its command reads a pipe only this process writes, so when
the process ends, however it ends (kill -9 included), the pipe closes, the command ends and the system may sleep
again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SYSTEMD_BOOTED = Path("/run/systemd/system")  # sd_booted(): logind manages this machine's sleep
STARTUP_S = 0.3  # an inhibitor that cannot take its lock (no system bus, refused) exits within this


@dataclass(frozen=True)
class Awake:
    """What keep_awake did: held (the system was asked and agreed), how, or why not."""

    held: bool
    how: str

    def line(self) -> str:
        if self.held:
            return f"keeping this machine awake while the run goes ({self.how}); --allow-sleep lets it sleep"
        return f"could not keep this machine awake ({self.how}): if it sleeps, the run pauses until it wakes"


def inhibitor_command(reason: str) -> list[str] | None:
    """The command that holds this system's sleep inhibitor for as long as its stdin stays open; None where the
    system has none this module knows (no systemd-logind, not macOS: a container, a server without logind)."""
    wait_for_eof = [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"]
    if sys.platform == "darwin" and shutil.which("caffeinate"):
        return ["caffeinate", "-i", *wait_for_eof]  # -i: no idle sleep while the command runs
    inhibit = shutil.which("systemd-inhibit")
    if sys.platform.startswith("linux") and inhibit and SYSTEMD_BOOTED.is_dir():
        return [inhibit, "--what=idle:sleep", "--who=autoresearch", f"--why={reason}", "--mode=block",
                *wait_for_eof]
    return None


@contextmanager
def keep_awake(reason: str, *, enabled: bool = True) -> Iterator[Awake | None]:
    """Hold the system's sleep inhibitor for the block; yields what it did (None: nothing to ask, or not asked)."""
    command = inhibitor_command(reason) if enabled else None
    if command is None:
        yield None
        return
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True)  # a Ctrl-C at the terminal is the run's, not its
    except OSError as exc:
        yield Awake(False, f"{command[0]}: {exc.strerror or exc}")
        return
    deadline = time.monotonic() + STARTUP_S
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is not None:  # refused: no system bus, or not allowed to inhibit sleep
        said = " ".join((process.stderr.read() or b"").decode(errors="replace").split())
        process.stdin.close()
        yield Awake(False, f"{Path(command[0]).name}: {said or f'exit code {process.returncode}'}")
        return
    try:
        yield Awake(True, _described(command))
    finally:
        process.stdin.close()  # end of input: the command ends, and with it the inhibitor
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
        process.stderr.close()


def _described(command: list[str]) -> str:
    name = Path(command[0]).name
    return "caffeinate -i" if name == "caffeinate" else f"{name}: idle and sleep blocked"
