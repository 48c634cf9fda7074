"""The two kinds of failure the CLI tells apart; every module's own errors derive from one of them."""

from __future__ import annotations


class UserError(Exception):
    """Something the user must fix (a config value, an input folder, a model file): exit code 2."""

    exit_code = 2


class RunError(RuntimeError):
    """A run that started and then failed a check or stopped making progress: exit code 1."""

    exit_code = 1
