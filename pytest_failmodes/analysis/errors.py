"""Errors of the analysis commands."""

from __future__ import annotations

from ..errors import FailmodesError

__all__ = ["UsageError"]


class UsageError(FailmodesError):
    """A wrong option or a sample that cannot be drawn: about no file, so no location."""

    def format(self) -> str:
        if self.file is not None:
            return super().format()
        return self.message.replace("\r", "\\r").replace("\n", "\\n")
