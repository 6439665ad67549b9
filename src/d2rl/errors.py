"""Errors a user can cause; the CLI prints them as one line and exits non-zero."""


class D2RLError(Exception):
    """A user-facing error: the message says what went wrong and what to do."""
