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


# What the command line offers for a word of several tokens; the shell and the verbs that take one
# token say what works where they are (SeveralTokens.advise).
COMBINE_ADVICE = "use --combine mean to average them"


class SeveralTokens(EmbcliError):
    """A word refused because it is several GPT-2 tokens: ``explained`` names its pieces, and the
    message ends with how to average them (``--combine mean`` on the command line)."""

    def __init__(self, explained: str, advice: str = COMBINE_ADVICE):
        super().__init__(f"{explained}; {advice}")
        self.explained = explained

    def advise(self, advice: str) -> SeveralTokens:
        """The same refusal, with the advice that works where the word was typed."""
        return SeveralTokens(self.explained, advice)


def clip(text: str, limit: int = 40) -> str:
    """User text to echo in a message, shortened when long: a 5,000-character word is not echoed whole."""
    if len(text) <= limit:
        return text
    return f"{text[:limit - 12]}…{text[-8:]} ({len(text):,} characters)"


MESSAGE_LIMIT = 600  # characters: an error is one line, a few on a narrow terminal


def one_line(message: str) -> str:
    """An error message as one line of bounded length, whatever it echoes.

    Messages clip the user's text where they echo it (:func:`clip`); this is the last guard, so no
    message (a list of a long word's pieces, an OS error's text) ever fills a screen.
    """
    text = " ".join(message.splitlines())
    if len(text) > MESSAGE_LIMIT:
        text = text[:MESSAGE_LIMIT - 30] + f"… (cut from {len(text):,} characters)"
    return text
