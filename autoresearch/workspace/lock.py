"""runs/run.lock: one `autoresearch run` writes a workspace at a time; and the runs of this machine, listed.

The lock is an flock(2) held on runs/run.lock for the life of the run; the file also says who holds it
(pid, host, start time) so that a refused run can name the other process. The kernel drops an flock
when its process dies, however it dies (kill -9 included), so a lock file whose flock is free is stale:
it was left by a run that was killed, and it is cleared with a note. A lock written on another host is
never assumed stale (flock need not reach across a network filesystem); the message says how to clear it.

Each run also lists itself for the machine (a file per run in the user's runtime folder) while it holds its lock,
so that a run, an eval or a profile started in another workspace can say it shares the machine's cores with it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import WorkspaceError

LOCK_NAME = "run.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: fall back to the pid check alone
    fcntl = None  # type: ignore[assignment]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    return True


def process_start(pid: int) -> int | None:
    """When this pid's process started, in clock ticks since boot (Linux); None where that cannot be read. With the
    pid it names one process: after a run is killed its pid can be handed to another process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, counted after the name in parentheses
    except (OSError, ValueError, IndexError):
        return None


def _same_process(record: dict[str, Any]) -> bool:
    """Whether the pid a record names is still the process that wrote it (its start time, where one was recorded)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    recorded = record.get("pid_start")
    return recorded is None or process_start(pid) in (None, recorded)


def _this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "pid_start": process_start(os.getpid())}


class RunLock:
    """Held while a run may write the workspace: `with RunLock(runs_dir) as lock: ...`."""

    def __init__(self, runs_dir: Path):
        self.path = Path(runs_dir) / LOCK_NAME
        self.host = socket.gethostname()
        self.fd: int | None = None
        self.stale: dict[str, Any] | None = None  # the holder of a stale lock that was cleared
        self.note: str | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise WorkspaceError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            flocked = self._flock(fd)
            if flocked is False:
                holder = _read(fd)
                os.close(fd)
                raise WorkspaceError(self._held_message(holder))
            try:  # the holder may have removed the file between our open and our flock: start over
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read(fd)
        if previous:
            live = flocked is None and _alive_here(previous)
            if previous.get("host") != self.host or live:
                os.close(fd)  # not ours to clear: leave the file as it is
                raise WorkspaceError(self._held_message(previous, foreign=previous.get("host") != self.host))
            self.stale = previous
            self.note = (f"cleared a stale lock: the run of pid {previous.get('pid')} "
                         f"(started {previous.get('started', '?')}) is no longer running")
        data = json.dumps({**_this_process(), "host": self.host,
                           "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data + b"\n", 0)
        os.fsync(fd)
        self.fd = fd
        _list_this_run(self.path.parent)

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and drop the flock."""
        if self.fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)  # closing drops the flock
        self.fd = None
        with contextlib.suppress(OSError):  # never a reason for a run to fail; a reader clears it once it is dead
            (machine_runs_dir() / f"{os.getpid()}.json").unlink(missing_ok=True)

    def _flock(self, fd: int) -> bool | None:
        """True: locked. False: another process holds it. None: this filesystem has no flock."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            return None

    def _held_message(self, holder: dict[str, Any], foreign: bool = False) -> str:
        who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
               if holder else "a process that is starting up")
        if foreign:
            return (f"{self.path}: another `autoresearch run` ({who}) holds this workspace; "
                    f"if that run is over, delete {self.path}")
        return f"{self.path}: another `autoresearch run` ({who}) is using this workspace; wait for it or stop it"


def running_here(runs_dir: Path) -> dict[str, Any] | None:
    """The run that holds runs_dir's lock on this machine now (pid, host, started), or None. By its pid, never by
    trying the flock: a probe that held it for an instant could refuse a run starting in that instant."""
    try:
        fd = os.open(Path(runs_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        holder = _read(fd)
    finally:
        os.close(fd)
    return holder if _alive_here(holder) and holder["pid"] != os.getpid() else None


def _alive_here(holder: dict[str, Any]) -> bool:
    """Whether the process a lock file names runs on this machine now."""
    return holder.get("host") == socket.gethostname() and _same_process(holder)


def _workspace_of(runs_dir: Path) -> str:
    return str(Path(runs_dir).resolve().parent)


def machine_runs_dir() -> Path:
    """Where this user's runs on this machine list themselves, a file each named by its pid."""
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"autoresearch-runs-{os.getuid()}"


def _list_this_run(runs_dir: Path) -> None:
    folder = machine_runs_dir()
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.is_symlink() or folder.stat().st_uid != os.getuid():
            return  # in a shared /tmp, a folder of that name someone else made is not this user's list
        (folder / f"{os.getpid()}.json").write_text(json.dumps({
            **_this_process(), "workspace": _workspace_of(runs_dir),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
    except OSError:
        pass  # a courtesy to other commands, never a reason for a run to fail


def runs_on_this_machine(besides: Path) -> list[dict[str, Any]]:
    """This user's other runs going on this machine, in other workspaces than besides' (a runs/ folder), oldest
    first; the lists of runs that died are cleared on the way."""
    here = _workspace_of(besides)
    found = []
    for entry in sorted(machine_runs_dir().glob("*.json")):
        try:
            run = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(run, dict) or not _same_process(run):
            with contextlib.suppress(OSError):
                entry.unlink(missing_ok=True)  # killed: its run never unlisted itself (its pid may be reused)
        elif run["pid"] != os.getpid() and run.get("workspace") != here:
            found.append(run)
    return sorted(found, key=lambda run: run.get("started", ""))


def _read(fd: int) -> dict[str, Any]:
    """The holder recorded in the lock file; {} when it is empty or unreadable."""
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
