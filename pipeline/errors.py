"""Errors that carry a one-line message for the user (file and problem), shown without a traceback."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input or configuration: the message names the file or key and the fix."""


class InputFileError(UserError):
    """A dataset file is missing or unreadable."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class OutputFileError(UserError):
    """An output could not be written (disk full, quota, read-only or forbidden folder)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")
