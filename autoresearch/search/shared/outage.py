"""A shared study's database gone mid-run: wait for it to answer again (lm/outages.py), so the run can resume."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy

from ...lm import outages
from .ledger import safe_url


def database_back(url: str, lost: str, wait_s: float, note: Callable[[str], None],
                  stopped: Callable[[], bool]) -> bool:
    """Whether the database at url, lost as `lost` says, answers again within wait_s; the wait's notes through
    note(), and one saying the run resumes when it does."""
    where, heard = f"the study's database at {safe_url(url)}", []
    engine = sqlalchemy.create_engine(url)
    try:
        with outages.listening(lambda line: heard.append(line) or note(line)):  # how long it stayed away, if it did
            back = outages.wait_for_server(where, lambda: engine.connect().close(), lost, wait_s, stopped=stopped)
    finally:
        engine.dispose()
    if back:
        lost_line = "" if heard else f"{where} was lost ({lost}) and answers again; "
        note(f"{lost_line}the run resumes as the same command would: start-up repairs, then the next trial")
    return back
