"""fintune's user-error types: the user can fix these, so the CLI prints one line instead of a traceback.

Anything else that escapes a command is a bug (ours or a library's) and keeps its traceback. The types also
subclass the builtin error callers already catch (ValueError, FileNotFoundError, ...), so code that catches
the builtin keeps working. Kept free of fintune imports: every package may import it.
"""

from __future__ import annotations


class FintuneError(Exception):
    """Base of the errors a user can fix: the message says what was wrong and what to do."""


class UsageError(FintuneError, ValueError):
    """A bad option value, an option combination or an input the command refuses."""


class InputNotFoundError(FintuneError, FileNotFoundError):
    """A file or folder the user named does not exist or is not what the command needs."""


class OutputExistsError(FintuneError, FileExistsError):
    """The output the user named already exists and overwriting was not asked for."""
