"""The one trace view: the JavaScript and CSS that render a trace as DOM.

``failmodes review`` serves these files; a page of the plugin's own (the HTML
report) can inline them. They live here, beside the reports, because the
plugin must not import ``pytest_failmodes.analysis``.

Use from a page: load ``trace_view.js`` (it defines ``window.FailmodesTraceView``)
and ``trace_view.css``, then::

    const el = FailmodesTraceView.render(traceJson, {selected, marked, onSelect});

``traceJson`` is ``Trace.model_dump(mode="json")``. The renderer puts trace
content into the DOM with ``textContent`` only. An inlined copy needs its
hash in the page's ``script-src`` (see :func:`script_hash`), and the trace data
must be given as a ``<script type="application/json">`` block with ``</``
escaped, or fetched.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import resources

__all__ = ["TRACE_VIEW_FILES", "trace_view_asset", "script_hash"]

#: file name -> content type
TRACE_VIEW_FILES = {
    "trace_view.js": "text/javascript; charset=utf-8",
    "trace_view.css": "text/css; charset=utf-8",
}


@cache
def trace_view_asset(name: str) -> str:
    """The text of ``trace_view.js`` or ``trace_view.css``, as shipped in the package."""
    if name not in TRACE_VIEW_FILES:
        raise ValueError(f"no trace-view file {name!r}; there are {', '.join(TRACE_VIEW_FILES)}")
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def script_hash(text: str) -> str:
    """The CSP source (``'sha256-...'``) that allows ``text`` as an inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"
