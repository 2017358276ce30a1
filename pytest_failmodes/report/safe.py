"""Safe text for every report writer, and the one way reports reach the disk.

Report values come from traces, definitions and model replies: any string the
JSON decoder can produce, including lone surrogates (``"\\ud83d"``), control
characters (an ESC sequence recolours a terminal, ``\\r`` ends a Markdown table
row, ``\\x02`` makes XML unparseable) and bidi controls (an unterminated U+202E
reverses the rest of a line in a browser). Each writer passes its values
through the function for its format here, so the rules live in one place:

* lone surrogates become U+FFFD in text formats and ``\\udXXX`` escapes in JSON;
* control characters are shown, not obeyed: ``\\x1b``, ``\\u202e``;
* a report is written whole (temp file in the same directory, then ``os.replace``)
  or not at all.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "json_text",
    "pretty_json",
    "text",
    "xml_text",
    "write_atomically",
    "write_json_atomically",
    "write_text_atomically",
    "iter_json",
    "JsonArray",
    "append_whole",
    "BIDI_CONTROLS",
]

_SURROGATE = re.compile("[\ud800-\udfff]")
#: embeddings, overrides, isolates and marks: they reorder the text around them
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# C0 (but tab and newline), DEL, C1, bidi controls, and the line/paragraph
# separators that some terminals and Markdown renderers treat as line ends
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")
_CONTROL_OR_NEWLINE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")
# what XML 1.0 cannot hold at all, even escaped (besides surrogates, handled first)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def text(value: Any, *, newlines: bool = True) -> str:
    """``value`` as text that cannot act on its reader's display: lone surrogates
    become U+FFFD and control characters (ESC, ``\\r``, bidi overrides ...) are shown
    as ``\\x1b``-style escapes. Tab and newline stay unless ``newlines=False`` (a
    table cell or a one-line message), where they are escaped too."""
    s = "" if value is None else str(value)
    s = _SURROGATE.sub("\ufffd", s)
    return (_CONTROL if newlines else _CONTROL_OR_NEWLINE).sub(_shown, s)


def xml_text(value: Any) -> str:
    """Text for an XML attribute or element: XML 1.0 cannot carry most control
    characters at all, so they are shown as escapes (as :func:`text` does)."""
    s = text(value, newlines=False)
    return _NOT_XML.sub(_shown, s)


def json_text(data: Any, *, indent: int | None = 1) -> str:
    """``data`` as JSON that any UTF-8 reader accepts: lone surrogates are written as
    ``\\udXXX`` escapes (they decode back to the same string); the rest stays readable."""
    try:
        out = json.dumps(data, ensure_ascii=False, indent=indent)
    except RecursionError:
        # very deep values (a trace's own data as evidence): depth-capped, never a lost report
        out = pretty_json(data, indent=indent)
    # outside strings JSON has only ASCII, so every surrogate here is inside one
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


#: nesting below this is shown as ``[…]`` / ``{…}`` by :func:`pretty_json`
MAX_DEPTH = 64


def pretty_json(value: Any, *, indent: int | None = 2, max_depth: int = MAX_DEPTH) -> str:
    """JSON for display, without recursion: containers nested deeper than
    ``max_depth`` are cut to ``"[…]"``/``"{…}"``, so no value can exhaust the stack."""
    pad = "" if indent is None else " " * indent
    nl = "" if indent is None else "\n"
    sep = ", " if indent is None else ","
    out: list[str] = []
    # a stack of work: values to write, or literal text to emit
    stack: list[tuple[str, Any, int]] = [("value", value, 0)]
    while stack:
        what, item, depth = stack.pop()
        if what == "text":
            out.append(item)
            continue
        if isinstance(item, dict) or isinstance(item, (list, tuple)):
            is_dict = isinstance(item, dict)
            opening, closing = ("{", "}") if is_dict else ("[", "]")
            if not item:
                out.append(opening + closing)
                continue
            if depth >= max_depth:
                out.append(json.dumps(opening + "…" + closing, ensure_ascii=False))
                continue
            entries = list(item.items()) if is_dict else list(enumerate(item))
            inner = nl + pad * (depth + 1)
            todo: list[tuple[str, Any, int]] = []
            for i, (k, v) in enumerate(entries):
                prefix = (sep if i else "") + inner
                if is_dict:
                    prefix += json.dumps(str(k), ensure_ascii=False) + ": "
                todo.append(("text", prefix, depth))
                todo.append(("value", v, depth + 1))
            todo.append(("text", nl + pad * depth + closing, depth))
            out.append(opening)
            stack.extend(reversed(todo))
        else:
            try:
                out.append(json.dumps(item, ensure_ascii=False))
            except (TypeError, ValueError):
                out.append(json.dumps(str(item), ensure_ascii=False))
    return "".join(out)


def _encode(content: str) -> bytes:
    # the last line of defence for text formats: a surrogate that reached here is shown as U+FFFD
    return _SURROGATE.sub("\ufffd", content).encode("utf-8")


def write_atomically(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` whole or not at all: a temp file in the same
    directory, renamed over ``path``. A failure leaves no temp file behind and the
    old ``path`` untouched (the caller decides what to do with a now-stale file)."""
    data = _encode(content)
    with _replacing(path) as fh:
        fh.write(data)


def write_text_atomically(path: Path, pieces: Iterable[str]) -> None:
    """``"".join(pieces)`` written to ``path`` as :func:`write_atomically` writes it, but a
    block at a time: the text is never held whole (an exception from ``pieces`` leaves the
    old file untouched, like any other failure)."""
    with _replacing(path) as fh:
        block: list[str] = []
        size = 0
        for piece in pieces:
            block.append(piece)
            size += len(piece)
            if size >= _BLOCK:
                fh.write(_encode("".join(block)))
                block, size = [], 0
        fh.write(_encode("".join(block)))


class JsonArray:
    """A JSON array that :func:`iter_json` writes item by item as ``items`` yields them,
    so a report's per-trace lists are never held whole. ``encode(item, depth)`` gives an
    item's JSON text at that depth of indentation (default: :func:`json_text`)."""

    __slots__ = ("items", "encode")

    def __init__(self, items: Iterable[Any], encode: Callable[[Any, int], str] | None = None) -> None:
        self.items = items
        self.encode = encode or _indented

    def __repr__(self) -> str:
        return f"JsonArray({self.items!r})"


def _indented(value: Any, depth: int, indent: int = 1) -> str:
    out = json_text(value, indent=indent)
    return out.replace("\n", "\n" + " " * (indent * depth)) if depth and "\n" in out else out


def _lazy(value: Any) -> bool:
    if isinstance(value, JsonArray):
        return True
    if isinstance(value, dict):
        return any(_lazy(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_lazy(v) for v in value)
    return False


def iter_json(value: Any, depth: int = 0, *, indent: int = 1) -> Iterator[str]:
    """The text of ``json_text(value, indent=indent)`` in pieces, with each :class:`JsonArray`
    inside written as its items come (strings may hold lone surrogates: the writer escapes them)."""
    pad = " " * indent
    if isinstance(value, JsonArray):
        first = True
        for item in value.items:
            yield ("[\n" if first else ",\n") + pad * (depth + 1) + value.encode(item, depth + 1)
            first = False
        yield "[]" if first else "\n" + pad * depth + "]"
    elif isinstance(value, dict) and value and _lazy(value):
        sep = "{"
        for key, item in value.items():
            yield f"{sep}\n{pad * (depth + 1)}{json.dumps(str(key), ensure_ascii=False)}: "
            yield from iter_json(item, depth + 1, indent=indent)
            sep = ","
        yield "\n" + pad * depth + "}"
    elif isinstance(value, (list, tuple)) and value and _lazy(value):
        sep = "["
        for item in value:
            yield f"{sep}\n{pad * (depth + 1)}"
            yield from iter_json(item, depth + 1, indent=indent)
            sep = ","
        yield "\n" + pad * depth + "]"
    else:
        yield _indented(value, depth, indent)


#: pieces are joined and written in blocks of about this many characters
_BLOCK = 1 << 16


def write_json_atomically(path: Path, data: Any, *, indent: int = 1) -> None:
    """``json_text(data) + "\\n"`` written to ``path`` as :func:`write_atomically` does, but piece
    by piece (see :class:`JsonArray`): memory stays flat however many traces the report lists."""
    with _replacing(path) as fh:
        block: list[str] = []
        size = 0
        for piece in iter_json(data, indent=indent):
            block.append(piece)
            size += len(piece)
            if size >= _BLOCK:
                fh.write(_json_bytes("".join(block)))
                block, size = [], 0
        block.append("\n")
        fh.write(_json_bytes("".join(block)))


def _json_bytes(text: str) -> bytes:
    # outside strings JSON has only ASCII, so every surrogate here is inside one: escaped, as json_text does
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


@contextmanager
def _replacing(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``path`` when the block ends without an exception."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        umask = os.umask(0)  # mkstemp makes 0600 files; a report is as readable as any other file
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def append_whole(path: Path, content: str) -> None:
    """Append ``content`` with one ``write`` to a file opened for appending (a
    shared file such as ``$GITHUB_STEP_SUMMARY``): other writers' parts stay, and
    ours is encoded before the file is touched, so it is added whole or not at all."""
    data = _encode(content)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = os.write(fd, data)
        if written != len(data):  # a full disk: never leave half a summary
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
            raise OSError(f"only {written} of {len(data)} bytes could be written")
    finally:
        os.close(fd)
