"""Errors a user can fix. The CLI prints their message (which says how) without a traceback."""


class UserError(Exception):
    """Bad input or a missing prerequisite; the message must say what to do."""
