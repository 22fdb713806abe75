"""User-facing errors.

A :class:`UserError` carries one line that says what is wrong and what to do about it.
The CLI prints it without a traceback and exits with status 2.
"""


class UserError(Exception):
    """An error caused by the user's input or environment (bad path, missing weights, bad size)."""
