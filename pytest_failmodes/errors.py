"""Errors that name the file, line and key or field at fault."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["FailmodesError", "DefinitionError", "DatasetError", "did_you_mean", "strip_union_tags"]


class FailmodesError(Exception):
    """Base class: a user-facing problem, printed as one line without a traceback."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.file = _shown(file) if file is not None else None
        self.line = line
        self.key = key
        super().__init__(self.format())

    def format(self) -> str:
        where = self.file or "<unknown>"
        if self.line is not None:
            where += f":{self.line}"
        key = f" {self.key}:" if self.key else ""
        # one line, always: keys and values quoted from user files may hold line breaks
        return f"{where}:{key} {self.message}".replace("\r", "\\r").replace("\n", "\\n")


class DefinitionError(FailmodesError):
    """A failure-mode definition (YAML or ``@failure_mode``) is invalid."""


class DatasetError(FailmodesError):
    """A dataset file or one of its rows is invalid."""


def read_definition_text(path: Path, shown: str, what: str = "") -> str:
    """A definition-side file (YAML definitions, a labels file) as text, or a
    DefinitionError naming it: not UTF-8, or unreadable (``what`` names the kind)."""
    import stat

    try:
        # a FIFO would block the run forever, /dev/zero would never end
        if not stat.S_ISREG(path.stat().st_mode):
            raise DefinitionError(f"cannot read{what}: not a regular file", file=shown)
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DefinitionError("not valid UTF-8; save the file as UTF-8", file=shown) from None
    except OSError as exc:
        raise DefinitionError(f"cannot read{what}: {exc.strerror or exc}", file=shown) from None


def _shown(path: str | Path) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.relative_to(Path.cwd()).as_posix()
        except ValueError:
            pass
    return str(path)


def did_you_mean(word: str, valid: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest valid word, or ``""``."""
    matches = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]!r}?" if matches else ""


# pydantic names the union member or validator it tried inside error locations:
# "str", "list[dict[str,any]]", "function-after[_check(), str]", "constrained-str"
_UNION_TAG = re.compile(r"[a-z][a-z-]*\[.*\]|str|int|float|bool|none|bytes|dict|list|constrained-[a-z]+", re.S)


def strip_union_tags(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """A pydantic error location without its union-member tags (``messages[0].content.str``
    is ``messages[0].content`` to the user)."""
    return tuple(p for p in loc if not (isinstance(p, str) and _UNION_TAG.fullmatch(p)))
