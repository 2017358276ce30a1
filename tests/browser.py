"""A headless Chromium for the HTML report's tests, and a small DOM reader.

``find_chromium()`` looks for a browser binary; ``dump_dom(url)`` returns the
document after its scripts ran (``--dump-dom``); ``screenshot(url, png)``
writes a PNG. ``parse_html(text)`` turns markup (the page, or a dumped DOM)
into :class:`Node` objects for assertions. The browser never touches the
network: the flags switch off every background service, and the page's own
Content-Security-Policy forbids fetches. ``selenium_chrome(...)`` drives the
same browser through chromedriver, for tests that click and type.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMEDRIVER", "CHROMIUM_ENV", "Node", "dump_dom", "find_chromium", "parse_html", "screenshot", "selenium_chrome"]

#: set to a browser binary to use it instead of the first one found on PATH
CHROMIUM_ENV = "FAILMODES_CHROMIUM"
#: the chromedriver selenium drives: ``$FAILMODES_CHROMEDRIVER``, else the one on PATH
CHROMEDRIVER = os.environ.get("FAILMODES_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI containers run as root, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
)
_TIMEOUT = 120


def find_chromium() -> str | None:
    """The browser binary: ``$FAILMODES_CHROMIUM``, else the first of the usual names on PATH.

    A ``$FAILMODES_CHROMIUM`` that names no binary is an error, not a reason to skip.
    """
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        found = override if Path(override).is_file() else shutil.which(override)
        if found is None:
            raise RuntimeError(f"{CHROMIUM_ENV}={override!r} is not a browser binary")
        return found
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(binary: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="failmodes-chromium-") as profile:
        cmd = [binary, *_FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{err}")
    return proc


def dump_dom(binary: str, url: str) -> str:
    """The serialised DOM of ``url`` after its scripts ran."""
    return _run(binary, "--dump-dom", url).stdout.decode("utf-8")


def screenshot(binary: str, url: str, png: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of the top ``width`` x ``height`` pixels of ``url``."""
    _run(binary, f"--screenshot={png}", f"--window-size={width},{height}", url)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def selenium_chrome(
    width: int, *, extra_flags: tuple[str, ...] = (), browser_log: bool = False, page_load_timeout: int = 60
) -> Iterator[Any]:
    """A headless Chrome driven by selenium, ``width`` x 1000 px, for a module-scoped fixture
    to ``yield from``; quit when the fixture ends. Skips the module, naming what to install,
    when selenium, chromium or chromedriver is absent. ``browser_log`` keeps the console's
    messages for ``driver.get_log("browser")``."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium on PATH (apt-get install chromium chromium-driver)")
    if not Path(CHROMEDRIVER).is_file():
        pytest.skip(f"no chromedriver at {CHROMEDRIVER} (apt-get install chromium-driver)")
    # the driver and browser are given explicitly, so selenium-manager never downloads one
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},1000",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run", *extra_flags):
        options.add_argument(flag)
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    drv.set_page_load_timeout(page_load_timeout)
    try:
        yield drv
    finally:
        drv.quit()


# -- reading markup --------------------------------------------------------------------

_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())


@dataclass(eq=False)
class Node:
    """An element: tag, attributes, children (elements and text, in order)."""

    tag: str
    attrs: dict[str, str]
    parent: Node | None = field(default=None, repr=False)
    children: list[Node | str] = field(default_factory=list, repr=False)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        """Like the DOM's ``textContent``."""
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        """Descendants (and self) with this tag, class and attribute values."""
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        if len(found) != 1:
            raise AssertionError(f"expected one <{tag or '*'} class={cls!r} {attrs}>, found {len(found)}")
        return found[0]

    def ancestors(self) -> Iterator[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    @property
    def hidden(self) -> bool:
        """Hidden by the ``hidden`` attribute, here or on an ancestor."""
        return "hidden" in self.attrs or any("hidden" in a.attrs for a in self.ancestors())


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    """A forgiving parse into a tree (enough for well-formed pages like ours)."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root
