"""A call in flight to a server that may have been restarted under it.

llama.cpp's llama-server stopped with SIGTERM (`kill`, `systemctl restart`) stops listening at once but keeps the
request it was serving open, unanswered, until the client gives up: seen on a real one, the call waited out its
300 s timeout while the server started again on the same port answered everything else. Such a call is watched:
every `watch_s` it asks whether the server answering now is serving anything; a server that is idle twice in a
row (`confirm_s` apart, so that a reply already on its way is not mistaken) is not serving this call, which is
then given up as unreachable and sent again by the engine's retries. Its request is left to end on its own.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")

WATCH_S = 15.0  # how long a call runs before its server is first asked (a reply usually comes well before)
CONFIRM_S = 2.0  # the second look before a call is given up


def watched(send: Callable[[], T], orphaned: Callable[[], bool], given_up: Callable[[], Exception], *,
            watch_s: float | None = None, confirm_s: float | None = None) -> T:
    """send()'s result, or given_up() raised once orphaned() held twice while send() was still waiting."""
    watch_s = WATCH_S if watch_s is None else watch_s
    confirm_s = CONFIRM_S if confirm_s is None else confirm_s
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = send()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="call in flight").start()
    while not done.wait(watch_s):
        if orphaned() and not done.wait(confirm_s) and orphaned() and not done.is_set():
            raise given_up()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
