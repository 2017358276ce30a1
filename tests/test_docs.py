"""The documentation's commands run, and print what the documentation says.

A page opts a block in with a marker comment on the line before its fence:

``<!-- doctest: examples/getting-started -->`` before a ```` ```console ````
block: the block's ``$ ...`` lines run one after the other in a fresh copy of
that folder, and each one's output (stdout, then stderr) must be the lines
that follow it, up to the next ``$`` line. A command is ``pytest ...``,
``failmodes ...`` (the CLI), or ``echo $?`` (the previous command's exit
status), optionally after ``NAME=value`` settings of the environment
(``COLUMNS=100 pytest ...``). A line ``...`` stands for any number of lines
(the session header, say). Compared with timings, the ``=`` padding of
pytest's rules and runs of spaces normalised.

``<!-- doctest: examples/getting-started data/traces.jsonl -->`` before any
other block: the block is an excerpt of that file, as it ships.

A folder's ``doctest-setup.txt`` lists commands run once, before any block,
in the copy the blocks start from (``examples/ci`` saves the baseline that
its page's later blocks compare with).

Every ``console`` block of a page is checked: a page with one is in
:data:`PAGES`, and each of its console blocks has a marker. Output that can't
be reproduced here (it needs a real model, a browser, a long history) is a
``text`` block that the page introduces as an example.

After a change of output format, refresh the expected blocks with::

    FAILMODES_UPDATE_DOCS=1 pytest tests/test_docs.py -p no:xdist

which rewrites each console block with what the command printed now (keeping
its ``...`` lines) and then fails, so that a refresh is never mistaken for a
pass; review the diff and commit it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the pages whose marked blocks are checked
PAGES = ("README.md", "docs/getting-started.md", "docs/gating.md", "docs/reports.md", "docs/trace-formats.md", "docs/cli.md", "docs/ci.md", "docs/targets.md")
MARKER = re.compile(r"^<!-- doctest: (\S+)(?: (\S+))? -->$")
FENCE = re.compile(r"^(\s*)```(\w*)$")
UPDATE = os.environ.get("FAILMODES_UPDATE_DOCS") == "1"
ELLIPSIS = "..."
#: commands an example folder runs once before its blocks, one a line
SETUP = "doctest-setup.txt"


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the first line inside the fence
    folder: str
    excerpt_of: str | None
    lang: str
    indent: str
    lines: list[str]  # without the indent

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text(encoding="utf-8").splitlines()
    found = []
    for i, line in enumerate(text):
        marker = MARKER.match(line.strip())
        if not marker:
            continue
        fence = FENCE.match(text[i + 1]) if i + 1 < len(text) else None
        assert fence, f"{page}:{i + 1}: a doctest marker must be followed by a ``` fence"
        indent, lang = fence.groups()
        end = next(j for j in range(i + 2, len(text)) if text[j].strip() == "```")
        body = [row[len(indent) :] if row.startswith(indent) else row.lstrip() for row in text[i + 2 : end]]
        found.append(Block(page, i + 3, marker.group(1), marker.group(2), lang, indent, body))
    return found


ALL = [b for page in PAGES for b in blocks(page)]


def test_the_pages_have_checked_blocks() -> None:
    # a page whose markers were lost would otherwise pass with nothing checked
    assert {b.page for b in ALL} == set(PAGES)
    assert any(b.lang == "console" for b in ALL)
    # a page with output blocks that is not in PAGES shows output nobody checks
    shown = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md") if "```console" in p.read_text(encoding="utf-8")}
    assert shown <= set(PAGES), f"pages with console blocks not checked by this file: {sorted(shown - set(PAGES))}"
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8").splitlines()
        unmarked = [i + 1 for i, line in enumerate(text) if line.strip() == "```console" and not MARKER.match(text[i - 1].strip())]
        assert not unmarked, f"{page}: console blocks without a doctest marker at lines {unmarked} (mark them, or make them text examples)"


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine copy of examples/, made once; each command gets its own copy of a folder."""
    target = tmp_path_factory.mktemp("docs") / "examples"
    shutil.copytree(ROOT / "examples", target, ignore=shutil.ignore_patterns(".failmodes", ".pytest_cache", "__pycache__"))
    # what a page's later blocks read (a saved baseline, say) is made once, by the commands
    # a folder lists in SETUP, rather than shipped: it is then always what this version writes
    for setup in sorted(target.glob(f"*/{SETUP}")):
        for command in setup.read_text(encoding="utf-8").splitlines():
            if command.strip() and not command.startswith("#"):
                lines, status = run(command, setup.parent)
                assert status in (0, 1), f"{setup}: {command!r} exited with {status}:\n" + "\n".join(lines)
    return target


_DURATION = re.compile(r"\bin \d+(\.\d+)?s( \(\d+:\d\d:\d\d\))?")


def normal(line: str) -> str:
    line = _DURATION.sub("in Ns", line)
    line = re.sub(r"^=+ (.*?) =+$", r"= \1 =", line.strip())
    return " ".join(line.split())


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``expected`` with each ``...`` line standing for any lines."""
    parts: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == ELLIPSIS:
            parts.append([])
        else:
            parts[-1].append(normal(line))
    have = [normal(line) for line in actual]
    if len(parts) == 1:
        return have == parts[0]
    first, *middle, last = parts
    if have[: len(first)] != first:
        return False
    pos = len(first)
    for part in middle:
        hit = next((i for i in range(pos, len(have) - len(part) + 1) if have[i : i + len(part)] == part), None)
        if hit is None:
            return False
        pos = hit + len(part)
    return not last or (len(have) - len(last) >= pos and have[len(have) - len(last) :] == last)


def commands(block: Block) -> list[tuple[list[str], list[str]]]:
    """Each command's lines (a line ending in a backslash goes on) and the output shown."""
    out: list[tuple[list[str], list[str]]] = []
    going_on = False
    for line in block.lines:
        if line.startswith("$ ") or going_on:
            if going_on:
                out[-1][0].append(line)
            else:
                out.append(([line], []))
            going_on = line.endswith("\\")
        else:
            assert out, f"{block.id}: a console block must begin with a '$ ' line"
            out[-1][1].append(line)
    return out


def command_of(lines: list[str]) -> str:
    return " ".join(line.rstrip("\\").strip() for line in lines)[2:]


_SETTING = re.compile(r"^[A-Z_][A-Z0-9_]*=")
#: what each command a page may show runs as
PROGRAMS = {"pytest": [sys.executable, "-m", "pytest"], "failmodes": [sys.executable, "-m", "pytest_failmodes.cli"]}


def run(command: str, folder: Path) -> tuple[list[str], int]:
    """What ``command`` prints in ``folder``, and its exit status."""
    argv = shlex.split(command)
    settings = {}
    while argv and _SETTING.match(argv[0]):
        name, _, value = argv.pop(0).partition("=")
        settings[name] = value
    assert argv and argv[0] in PROGRAMS, f"only {', '.join(PROGRAMS)} and 'echo $?' run, got {command!r}"
    # `> FILE`: stdout goes to the file, as a shell would send it
    into = None
    if len(argv) > 2 and argv[-2] == ">":
        into, argv = folder / argv[-1], argv[:-2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FAILMODES_", "GITHUB_"))}
    # pytest prints whole summary lines when it sees a CI; the pages show a user's terminal
    env.pop("CI", None)
    env.pop("BUILD_NUMBER", None)
    # pytest's rules and -v lines are as wide as the terminal
    env.update(COLUMNS="80", PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    env.update(settings)
    done = subprocess.run(
        [*PROGRAMS[argv[0]], *argv[1:]],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if into is not None:
        into.write_text(done.stdout, encoding="utf-8")
        return done.stderr.rstrip("\n").splitlines(), done.returncode
    return (done.stdout + done.stderr).rstrip("\n").splitlines(), done.returncode


def refreshed(expected: list[str], actual: list[str]) -> list[str]:
    """``actual`` cut the way ``expected`` is: after a leading ``...`` from the first line
    that the block showed (or after pytest's header), before a trailing ``...`` after as
    many lines as it showed."""
    lead = bool(expected) and expected[0].strip() == ELLIPSIS
    trail = len(expected) > 1 and expected[-1].strip() == ELLIPSIS
    shown = [line for line in expected if line.strip() != ELLIPSIS]
    start = 0
    if lead:
        first = normal(shown[0]) if shown else None
        start = next((i for i, line in enumerate(actual) if normal(line) == first), -1)
        if start < 0:
            header = [i for i, line in enumerate(actual) if line.startswith("collected ")]
            start = header[0] if header else 0
    end = start + len(shown) if trail else len(actual)
    # a line the page already shows, up to timings and padding, stays as it is: a refresh
    # after a change of format then changes only the lines that format touched
    kept = {normal(line): line for line in shown}
    cut = [kept.get(normal(line), line) for line in actual[start:end]]
    return ([ELLIPSIS] if lead else []) + cut + ([ELLIPSIS] if trail else [])


def rewrite(block: Block, new_lines: list[str]) -> None:
    path = ROOT / block.page
    text = path.read_text(encoding="utf-8").split("\n")
    first = block.line - 1
    end = first + len(block.lines)
    text[first:end] = [block.indent + line if line else line for line in new_lines]
    path.write_text("\n".join(text), encoding="utf-8")


@pytest.mark.parametrize("block", [b for b in ALL if b.excerpt_of], ids=lambda b: b.id)
def test_block_is_an_excerpt_of_a_shipped_file(block: Block) -> None:
    shipped = (ROOT / block.folder / block.excerpt_of).read_text(encoding="utf-8")  # type: ignore[operator]
    assert "\n".join(block.lines) in shipped, f"{block.id} is not an excerpt of {block.folder}/{block.excerpt_of}"


# reversed: a rewrite changes the lines below it, so later blocks are rewritten first
@pytest.mark.parametrize("block", [b for b in reversed(ALL) if not b.excerpt_of], ids=lambda b: b.id)
def test_console_block_prints_what_it_shows(block: Block, examples: Path, tmp_path: Path) -> None:
    assert block.lang == "console", f"{block.id}: only console blocks run; name a file to check an excerpt"
    new_lines: list[str] = []
    stale = []
    # the block's commands share one copy: a later one reads what an earlier one wrote
    folder = tmp_path / "run"
    shutil.copytree(examples / Path(block.folder).relative_to("examples"), folder)
    status = None
    for command_lines, expected in commands(block):
        command = command_of(command_lines)
        if command == "echo $?":
            assert status is not None, f"{block.id}: 'echo $?' must follow a command"
            actual = [str(status)]
        else:
            actual, status = run(command, folder)
        new_lines += [*command_lines, *(refreshed(expected, actual) if UPDATE else expected)]
        if not matches(expected, actual):
            stale.append(f"$ {command}\n--- the page shows:\n" + "\n".join(expected) + "\n--- it prints:\n" + "\n".join(actual))
    if UPDATE:
        if new_lines != block.lines:
            rewrite(block, new_lines)
            pytest.fail(f"{block.id}: rewritten with the current output; review the diff")
        return
    assert not stale, (
        f"{block.id} no longer matches what the command prints "
        "(FAILMODES_UPDATE_DOCS=1 pytest tests/test_docs.py -p no:xdist rewrites it):\n" + "\n\n".join(stale)
    )


@pytest.mark.parametrize(
    ("folder", "names"),
    [
        ("getting-started", ("data/traces.jsonl", "data/candidate_traces.jsonl")),
        ("gating", ("traces.jsonl",)),
        ("ci", ("data/main.jsonl", "data/candidate.jsonl", "data/other.jsonl")),
    ],
)
def test_the_example_data_is_what_its_generator_writes(folder: str, names: tuple[str, ...], tmp_path: Path) -> None:
    example = ROOT / "examples" / folder
    subprocess.run([sys.executable, str(example / "generate.py"), "--out", str(tmp_path)], check=True, timeout=120)
    for name in names:
        written = tmp_path / Path(name).name
        assert written.read_bytes() == (example / name).read_bytes(), (
            f"{name} differs from what generate.py writes; run `python generate.py` in examples/{folder}"
        )
