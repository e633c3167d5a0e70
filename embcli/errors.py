"""One exception type for everything a user can get wrong.

The CLI turns an :class:`EmbcliError` into one line on stderr and its exit code; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class EmbcliError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    def __init__(self, message: str, exit_code: int = 2, *, quiet: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        # quiet: already said by another process (under torchrun every rank finds a bad setting;
        # rank 0 alone says so), so this one exits with the code and prints nothing
        self.quiet = quiet
