"""Errors a user can cause, each one line that says what to change.

A `SessionstormError` reaching the CLI is printed as one line on stderr with exit 2;
it never becomes a traceback.
"""
from __future__ import annotations


class SessionstormError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 2


class ConfigError(SessionstormError):
    """A setting has a value the harness cannot use.

    >>> str(ConfigError("users", 0, "an integer >= 1", "set --users or SESSIONSTORM_USERS"))
    'users=0: expected an integer >= 1; set --users or SESSIONSTORM_USERS'
    """

    def __init__(self, setting: str, value: object, expected: str, fix: str) -> None:
        self.setting, self.value, self.expected, self.fix = setting, value, expected, fix
        super().__init__(f"{setting}={value!s}: expected {expected}; {fix}")


class StartupError(SessionstormError):
    """A service of the stack did not become ready; names what it waited for."""

    def __init__(self, what: str, waited_for: str, last_state: str, hint: str = "", logs: str = "") -> None:
        self.what, self.waited_for, self.last_state, self.logs = what, waited_for, last_state, logs
        msg = f"{what} did not become ready: waited for {waited_for}; last state: {last_state}"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)

    @classmethod
    def with_logs(cls, what: str, waited_for: str, last_state: str, logs: str) -> StartupError:
        """The error for a service that left a log: its last line is the hint, the tail in ``logs``."""
        lines = logs.strip().splitlines()
        return cls(what, waited_for, last_state, f"last log line: {lines[-1] if lines else '(empty log)'}", logs=logs)
