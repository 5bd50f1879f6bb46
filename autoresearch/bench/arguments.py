"""The scripts' command lines: a bad argument is one line and exit code 2, as in `autoresearch` itself."""

from __future__ import annotations

import argparse
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose error is one line naming the script and the argument, not the usage and then
    the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")
