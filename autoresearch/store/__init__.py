"""The SQLite store of calls, task results and evaluations."""

from .migrations import MIGRATIONS, migrate
from .store import STORE_NAME, Store

__all__ = ["MIGRATIONS", "STORE_NAME", "Store", "migrate"]
