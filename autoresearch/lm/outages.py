"""A model server that goes away mid-run and comes back: its calls wait for it instead of failing.

Overnight, a server restarts (Ollama updating itself, systemd bringing back a crashed llama-server, a user
reloading vLLM with other flags). A call's own retries span seconds; without a wait, the trial in progress
would fail, and the next two trials' calls too, and the run would stop (`[search] max_consecutive_failed`)
for an outage of a minute. So after its retries, a call that found the server not there (a refused
connection, an HTTP 5xx) probes the server (its model list: cheap, and llama-server answers it only once its
model is loaded) until it answers, for up to `[backends] outage_wait_s`, then runs again. A server that
does not come back in that time is given up: later calls to it fail at once (each tries one probe first),
so the run stops as it did before, one wait later.

The state is per server and process-wide: the engines of every role and harness that call one server share
it, so two calls that find it gone wait through one outage, and one of them says when it is back. A shared
study's run waits the same way for its database (search/shared/outage.py), then resumes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import BackendError, BackendUnreachable, ServerError
from ..text import one_line

# How often a server that went away is asked whether it is back: soon at first (a restart takes seconds),
# then every 10 s at most.
FIRST_PROBE_S = 1.0
MAX_PROBE_S = 10.0
STOP_CHECK_S = 0.5  # how soon a waiting call notices its suite no longer needs it

_LOCK = threading.Lock()
_LISTENERS: list[Callable[[str], None]] = []


def waits_out(exc: BackendError) -> bool:
    """Whether a call that failed this way may be waiting on a server that is down: it found nothing listening,
    or the server (or a proxy before it) answered with a 5xx. Not a timeout: a server that is up but slow
    would make every waiting call time out again, each after timeout_s."""
    return isinstance(exc, (BackendUnreachable, ServerError))


@dataclass
class _Server:
    down_since: float | None = None  # monotonic time of this outage's first failed call
    given_up: bool = False  # did not come back within the wait: calls fail at once until a probe answers
    lock: threading.Lock = field(default_factory=threading.Lock)


_SERVERS: dict[str, _Server] = {}


@contextlib.contextmanager
def listening(say: Callable[[str], None]) -> Iterator[None]:
    """While inside, say(line) hears when a server went away, came back, or was given up."""
    with _LOCK:
        _LISTENERS.append(say)
    try:
        yield
    finally:
        with _LOCK:
            _LISTENERS.remove(say)


def _announce(line: str) -> None:
    with _LOCK:
        listeners = list(_LISTENERS)
    for say in listeners:
        with contextlib.suppress(Exception):  # a listener's failure never fails a model call
            say(line)


def wait_for_server(where: str, probe: Callable[[], object], failure: str, wait_s: float, *,
                    stopped: Callable[[], bool] = lambda: False, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> bool:
    """After a request to the server named `where` failed (`failure` says how): True once probe() succeeds (the
    request may be made again: at once where the server never went away), False when the server stays away
    for wait_s from this outage's start, was given up before and still does not answer, or stopped() (the
    request is needed no longer). A model call's server, or a shared study's database (search/shared/outage.py)."""
    with _LOCK:
        server = _SERVERS.setdefault(where, _Server())
    if _answers(probe):  # there: the failure was the call's own, or the server is back already
        _back(where, server, clock)
        return True
    with server.lock:
        if server.down_since is None and not server.given_up:
            server.down_since = clock()
            _announce(f"{where} stopped answering ({one_line(failure, 120)}); waiting up to {_minutes(wait_s)} for it to "
                      "come back")
    interval = FIRST_PROBE_S
    while not stopped():
        with server.lock:
            if server.given_up:  # this outage's wait ran out (for another call, or before this call began)
                return False
            if server.down_since is None:  # another call saw it come back, and this one's probe failed since
                server.down_since = clock()
            waited = clock() - server.down_since
            if waited >= wait_s:
                server.given_up = True
                _announce(f"{where} did not come back within {_minutes(wait_s)} (`[backends] outage_wait_s`)")
                return False
        until = clock() + min(interval, wait_s - waited)
        while clock() < until and not stopped():  # in slices: a stopped suite's lanes are joined, not left waiting
            sleep(min(STOP_CHECK_S, until - clock()))
        interval = min(interval * 2, MAX_PROBE_S)
        if not stopped() and _answers(probe):
            _back(where, server, clock)
            return True
    return False


def _answers(probe: Callable[[], object]) -> bool:
    try:
        probe()
    except Exception:  # noqa: BLE001 - whatever the probe met (a refused connection, a 503): not back yet
        return False
    return True


def _back(where: str, server: _Server, clock: Callable[[], float]) -> None:
    """Clear the outage, if there was one; the call that sees it first says so."""
    with server.lock:
        since, was_given_up = server.down_since, server.given_up
        server.down_since, server.given_up = None, False
    if since is not None:
        _announce(f"{where} answers again after {clock() - since:.0f} s")
    elif was_given_up:
        _announce(f"{where} answers again")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def forget() -> None:
    """Every server's outage state dropped (tests; a new run in the same process)."""
    with _LOCK:
        _SERVERS.clear()
