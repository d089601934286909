"""Installer errors: each message says what is wrong and how to fix it."""


class InstallError(Exception):
    """A check or step failed; the message names the fix."""
