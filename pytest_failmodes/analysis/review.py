"""``failmodes review``: read traces one at a time in a local page, and write notes.

A standard-library HTTP server on 127.0.0.1 serves one page and a small JSON
API. Every request must carry the session's random token as the first path
segment (``http://127.0.0.1:PORT/TOKEN/``); a request from another Origin or
for another Host is refused, so neither another site nor a DNS-rebound name
can read traces or write notes. The page builds its DOM with ``textContent``
only, under a Content-Security-Policy that allows no inline script, so trace
content cannot run. Traces are sent one per request (``api/trace?q=N``), so a
large dataset opens as fast as a small one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, overload
from urllib.parse import parse_qs, urlsplit

from ..errors import FailmodesError
from ..report.trace_view import TRACE_VIEW_FILES, trace_view_asset
from .errors import UsageError
from ..trace import Trace
from .notes import VERDICTS, Note, NotesFile, agreement
from .sampling import Outcome, Reports, sample
from .saturation import DEFAULT_THRESHOLD, saturation

__all__ = ["ReviewApp", "ReviewServer", "load_source", "ASSETS", "CSP"]

#: the page's own assets (package data beside this module) and the one trace view's
#: (pytest_failmodes/report/trace_view.*, shared with the plugin's pages)
ASSETS = {
    "review.js": "text/javascript; charset=utf-8",
    "review.css": "text/css; charset=utf-8",
    **TRACE_VIEW_FILES,
}
#: nothing inline, nothing from elsewhere: trace content that slips into markup cannot run or load
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_MAX_BODY = 1 << 20
_MAX_NOTE = 100_000


def asset_text(name: str) -> str:
    """One of the page's files, as shipped in the package."""
    if name in TRACE_VIEW_FILES:
        return trace_view_asset(name)
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


class StoredTraces(Sequence[Trace]):
    """Traces kept small: each is its full JSON, compressed, plus a light copy without
    messages and steps (what sampling reads). The page asks for one trace at a time,
    so the full trace is rebuilt only then; the dataset never sits in memory as objects."""

    def __init__(self, traces: Iterable[Trace]) -> None:
        self._light: list[Trace] = []
        self._packed: list[bytes] = []
        for trace in traces:
            full = trace.model_dump(mode="json")
            self._packed.append(zlib.compress(json.dumps(full, ensure_ascii=False).encode(), 1))
            self._light.append(
                Trace.model_construct(
                    id=trace.id, input=trace.input, output=trace.output, metadata=trace.metadata, labels=trace.labels,
                    messages=[], steps=[],
                )
            )

    def __len__(self) -> int:
        return len(self._light)

    @overload
    def __getitem__(self, i: int) -> Trace: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Trace]: ...

    def __getitem__(self, i: int | slice) -> Trace | Sequence[Trace]:
        return self._light[i]

    def full(self, i: int) -> dict[str, Any]:
        """The whole trace as JSON data (``Trace.model_dump(mode="json")``)."""
        data: dict[str, Any] = json.loads(zlib.decompress(self._packed[i]))
        return data


def load_source(path: Path, fields: Mapping[str, str] | None = None) -> tuple[StoredTraces, list[str], str]:
    """``(traces, failure-mode names, dataset shown)`` of a dataset file or a definition file.

    The one place where the review reads datasets: it goes through the same
    loaders as ``pytest --failmodes``.
    """
    from ..dataset import DatasetSpec, iter_traces
    from ..definitions import is_definition_file, load_suite

    if not path.exists():
        raise FailmodesError("no such dataset or definition file", file=path)
    modes: list[str] = []
    if is_definition_file(path) or path.suffix.lower() in (".yaml", ".yml"):
        from ..detectors.rules import BUILTIN_RULE_KINDS

        suite = load_suite(path, {k.name: k for k in BUILTIN_RULE_KINDS})
        if suite.dataset is None:
            raise FailmodesError("this definition file has no dataset: to review", file=path)
        spec = suite.dataset
        if fields:
            spec = DatasetSpec(spec.path, {**spec.fields, **fields}, spec.format, inputs_only=spec.inputs_only)
        modes = [m.name for m in suite.modes]
    else:
        spec = DatasetSpec(path, dict(fields or {}))
    traces = StoredTraces(t for _line, t in iter_traces(spec))
    return traces, modes, str(spec.path)


def fingerprint(data: Mapping[str, Any]) -> str:
    """A short digest of a trace's content: a note written for other content shows it."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:16]


@dataclass
class ReviewApp:
    """The review session: the queue of traces, the reviewer's notes, what the page may see."""

    traces: StoredTraces
    notes: NotesFile
    reviewer: str
    queue: list[int]
    dataset: str = ""
    reports: Reports | None = None
    outcome: Outcome | None = None
    mode_names: list[str] = field(default_factory=list)
    threshold: float = DEFAULT_THRESHOLD
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    _undo: list[tuple[int, Note | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(
        cls,
        traces: Sequence[Trace],
        notes_path: Path,
        *,
        reviewer: str,
        method: str = "all",
        seed: int = 0,
        by: Sequence[str] = (),
        outcome: Outcome | None = None,
        reports: Reports | None = None,
        limit: int | None = None,
        mode_names: Sequence[str] = (),
        dataset: str = "",
        threshold: float = DEFAULT_THRESHOLD,
        announce: Callable[[str], None] = lambda _msg: None,
    ) -> ReviewApp:
        """Sample the queue; traces this reviewer already decided are left out (resume)."""
        if not isinstance(traces, StoredTraces):
            traces = StoredTraces(traces)
        notes = NotesFile(notes_path)
        ids = {t.id for t in traces}
        done = {n.trace_id for n in notes.of_reviewer(reviewer) if n.done and n.trace_id in ids}
        human = {t: n.verdict for (t, _r), n in notes.latest.items() if n.verdict in ("pass", "fail")}
        kwargs: dict[str, Any] = dict(seed=seed, by=by, outcome=outcome, reports=reports, human=human)
        queue = sample(traces, method, skip=done, limit=limit, **kwargs)
        if not queue and done:
            announce(f"every sampled trace is reviewed by {reviewer} already ({len(done)}); showing them again")
            queue = sample(traces, method, limit=limit, **kwargs)
        elif done:
            announce(f"resuming: {len(done)} trace(s) reviewed by {reviewer} already are left out")
        return cls(
            traces=traces, notes=notes, reviewer=reviewer, queue=queue, dataset=dataset, reports=reports,
            outcome=outcome, mode_names=list(mode_names), threshold=threshold,
        )

    # -- what the page asks for -------------------------------------------------------------
    def _trace(self, pos: int) -> Trace:
        """The light trace (id, input, output, metadata, labels) at a queue position."""
        if not 0 <= pos < len(self.queue):
            raise LookupError(f"no trace at position {pos} (the queue has {len(self.queue)})")
        return self.traces[self.queue[pos]]

    def _full(self, pos: int) -> dict[str, Any]:
        return self.traces.full(self.queue[pos])

    def _hidden(self) -> tuple[str, ...]:
        # an outcome label read before the note biases it as much as a judge's verdict
        return (self.outcome.field,) if self.outcome else ()

    def trace_json(self, pos: int) -> dict[str, Any]:
        data = self._full(pos)
        for name in self._hidden():
            for part in ("metadata", "labels"):
                data[part].pop(name.removeprefix(part + "."), None)
        return data

    def state(self) -> dict[str, Any]:
        mine = self.notes.of_reviewer(self.reviewer)
        queued = [self.traces[i].id for i in self.queue]
        done = [bool((n := self.notes.get(tid, self.reviewer)) and n.done) for tid in queued]
        resume = next((p for p, d in enumerate(done) if not d), max(0, len(queued) - 1))
        tags: dict[str, int] = {}
        for n in self.notes.latest.values():
            for t in n.tags:
                tags[t] = tags.get(t, 0) + 1
        return {
            "reviewer": self.reviewer,
            "dataset": self.dataset,
            "total": len(self.traces),
            "queue": len(queued),
            "done": sum(done),
            "resume": resume,
            "saturation": saturation(mine, threshold=self.threshold).to_json(),
            "agreement": [a.__dict__ for a in agreement(self.notes.latest, self.reviewer)],
            "tags": sorted(tags, key=lambda t: (-tags[t], t)),
            "has_verdicts": bool(self.reports) or bool(self.outcome),
            "has_modes": bool(self.mode_names),
            "can_undo": bool(self._undo),
        }

    def trace_at(self, pos: int) -> dict[str, Any]:
        trace = self._trace(pos)
        note = self.notes.get(trace.id, self.reviewer)
        return {"q": pos, "trace": self.trace_json(pos), "note": note.to_json() if note else None}

    def verdicts_at(self, pos: int) -> dict[str, Any]:
        """The judge's and rules' verdicts, once the reviewer has said something of their own."""
        trace = self._trace(pos)
        note = self.notes.get(trace.id, self.reviewer)
        if note is None or not (note.done or note.note.strip()):
            raise PermissionError("write your own note or verdict first; then the judge's verdicts are shown")
        out: dict[str, Any] = {"q": pos, "verdicts": [], "outcome": None}
        if self.reports is not None:
            out["verdicts"] = [v.to_json() for v in self.reports.by_trace.get(trace.id, [])]
        if self.outcome is not None:
            failed = self.outcome.failed(trace)
            value = trace.get(self.outcome.field)
            out["outcome"] = {"field": self.outcome.field, "value": None if failed is None else value, "failed": failed}
        return out

    def save(self, body: Mapping[str, Any]) -> dict[str, Any]:
        pos = body.get("q")
        if not isinstance(pos, int) or isinstance(pos, bool):
            raise ValueError("'q' must be the trace's position in the queue")
        trace = self._trace(pos)
        verdict = body.get("verdict")
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"'verdict' must be one of {', '.join(VERDICTS)} or null")
        text = body.get("note", "")
        tags = body.get("tags", [])
        step = body.get("first_failing_step")
        if not isinstance(text, str) or len(text) > _MAX_NOTE:
            raise ValueError(f"'note' must be a string of at most {_MAX_NOTE} characters")
        if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags) or len(tags) > 50:
            raise ValueError("'tags' must be a list of at most 50 non-empty strings")
        if step is not None and not isinstance(step, str):
            raise ValueError("'first_failing_step' must be a string or null")
        note = Note(
            trace_id=trace.id,
            reviewer=self.reviewer,
            verdict=verdict,
            note=text,
            tags=tuple(dict.fromkeys(" ".join(t.split()) for t in tags)),
            first_failing_step=step,
            ts=time.time(),
            source_fingerprint=fingerprint(self._full(pos)),
        )
        with self._lock:
            previous = self.notes.get(trace.id, self.reviewer)
            if note.to_json() | {"ts": 0} == (previous.to_json() | {"ts": 0} if previous else None):
                return {"note": previous.to_json() if previous else None, "state": self.state()}
            if body.get("commit"):
                self._undo.append((pos, previous))
            self.notes.append(note)
        return {"note": note.to_json(), "state": self.state()}

    def undo(self) -> dict[str, Any]:
        """Take back the last save's verdict and step mark; the note's text and tags stay
        (what was typed is never lost). Append-only: the restored state is one more line."""
        with self._lock:
            if not self._undo:
                raise LookupError("nothing to undo")
            pos, previous = self._undo.pop()
            trace = self._trace(pos)
            current = self.notes.get(trace.id, self.reviewer)
            base = current or Note(trace_id=trace.id, reviewer=self.reviewer)
            restored = Note(
                **{
                    **base.__dict__,
                    "verdict": previous.verdict if previous else None,
                    "first_failing_step": previous.first_failing_step if previous else None,
                    "ts": time.time(),
                }
            )
            if not (restored.verdict or restored.note.strip() or restored.tags or restored.first_failing_step):
                restored = Note(trace_id=trace.id, reviewer=self.reviewer, ts=restored.ts, retracted=True)
            self.notes.append(restored)
        now = self.notes.get(trace.id, self.reviewer)
        return {"q": pos, "note": now.to_json() if now else None, "state": self.state()}


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "failmodes-review"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the terminal shows the URL and notes, not every request

    # -- guards ---------------------------------------------------------------------------
    def _allowed(self) -> tuple[list[str], dict[str, list[str]]] | None:
        """The path after the token and the query, or None after refusing the request."""
        port = self.server.server_address[1]
        origins = {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}
        host = self.headers.get("Host", "")
        if host not in {o.removeprefix("http://") for o in origins}:
            self._refuse("unknown Host")  # DNS rebinding: another name pointing here
            return None
        origin = self.headers.get("Origin")
        if origin is not None and origin not in origins:
            self._refuse("cross-origin request")
            return None
        if self.headers.get("Sec-Fetch-Site") not in (None, "same-origin", "none"):
            self._refuse("cross-site request")
            return None
        url = urlsplit(self.path)
        parts = url.path.split("/")
        token = self.server.app.token
        if len(parts) < 2 or not hmac.compare_digest(parts[1].encode(), token.encode()):
            self._refuse("wrong or missing token")
            return None
        return parts[2:], parse_qs(url.query)

    def _refuse(self, why: str) -> None:
        self._send(HTTPStatus.FORBIDDEN, json.dumps({"error": f"forbidden: {why}"}).encode(), "application/json")

    def _send(self, status: int, body: bytes, ctype: str, extra: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        # the token is in the URL: never send it on as a Referer
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        allowed = self._allowed()
        if allowed is None:
            return
        rest, query = allowed
        app = self.server.app
        if rest in ([], [""]):
            if not self.path.split("?")[0].endswith("/"):
                # relative asset URLs resolve under the token only with the trailing slash
                self._send(HTTPStatus.MOVED_PERMANENTLY, b"", "text/plain", {"Location": f"/{app.token}/"})
                return
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif len(rest) == 2 and rest[0] == "static" and rest[1] in ASSETS:
            self._send(HTTPStatus.OK, self.server.assets[rest[1]], ASSETS[rest[1]])
        elif rest == ["api", "state"]:
            self._json(app.state())
        elif rest == ["api", "trace"] or rest == ["api", "verdicts"]:
            try:
                pos = int(query.get("q", [""])[0])
                self._json(app.trace_at(pos) if rest[1] == "trace" else app.verdicts_at(pos))
            except ValueError:
                self._error(HTTPStatus.BAD_REQUEST, "'q' must be a position in the queue")
            except LookupError as exc:
                self._error(HTTPStatus.NOT_FOUND, str(exc))
            except PermissionError as exc:
                self._error(HTTPStatus.CONFLICT, str(exc))
        elif rest == ["api", "modes"]:
            self._json({"modes": app.mode_names})
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        allowed = self._allowed()
        if allowed is None:
            return
        if self.headers.get("Origin") is None:
            # browsers send Origin on every POST from a page; a form from elsewhere cannot omit it
            self._refuse("POST without Origin")
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            # JSON only: a cross-site form cannot send it without a preflight we never answer
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
            return
        rest, _query = allowed
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body of at most {_MAX_BODY} bytes")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            app = self.server.app
            if rest == ["api", "note"]:
                self._json(app.save(body))
            elif rest == ["api", "undo"]:
                self._json(app.undo())
            else:
                self._error(HTTPStatus.NOT_FOUND, "not found")
        except LookupError as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except ValueError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except OSError as exc:
            # the notes file could not be written: the page must say so, not pretend it saved
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not write the notes file: {exc}")


class ReviewServer(ThreadingHTTPServer):
    """The review page's server, bound to loopback only."""

    daemon_threads = True

    def __init__(self, app: ReviewApp, port: int = 0) -> None:
        self.app = app
        self.assets = {name: asset_text(name).encode() for name in ASSETS}
        self.page = asset_text("review.html").encode()
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{self.app.token}/"

    def start(self) -> threading.Thread:
        """Serve from a background thread (tests, benchmarks); ``shutdown()`` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="failmodes-review", daemon=True)
        thread.start()
        return thread


def run(args: Any) -> int:
    """``failmodes review``: build the session, print the URL, serve until Ctrl+C."""
    from .sampling import load_reports

    fields = dict(_pair(f, "--field") for f in args.field or ())
    traces, modes, shown = load_source(Path(args.source), fields)
    reports = load_reports([Path(p) for p in args.report]) if args.report else None
    outcome = Outcome.parse(args.outcome) if args.outcome else None
    by = [b.strip() for item in args.by or () for b in item.split(",") if b.strip()]
    notes_path = Path(args.notes)

    def say(msg: str) -> None:
        print(f"failmodes review: {msg}", file=sys.stderr)

    app = ReviewApp.build(
        traces, notes_path, reviewer=args.reviewer, method=args.sample, seed=args.seed, by=by, outcome=outcome,
        reports=reports, limit=args.limit, mode_names=modes, dataset=shown, threshold=args.threshold, announce=say,
    )
    try:
        server = ReviewServer(app, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
    print(f"reviewing {len(app.queue)} of {len(traces)} traces from {shown}; notes go to {notes_path} (reviewer {args.reviewer})", flush=True)
    print(f"open {server.url}", flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped; every note is in", notes_path)
    finally:
        server.server_close()
    return 0


def _pair(text: str, option: str) -> tuple[str, str]:
    from ..trace import TRACE_FIELDS
    from ..errors import did_you_mean

    name, eq, path = text.partition("=")
    if not eq or not name or not path:
        raise UsageError(f"{option} takes TRACE_FIELD=PATH (e.g. id=trace_id), got {text!r}")
    if name not in TRACE_FIELDS:
        raise UsageError(f"{option} {text!r}: {name!r} is not a trace field{did_you_mean(name, TRACE_FIELDS)}; fields: {', '.join(TRACE_FIELDS)}")
    return name, path


def add_review(sub: Any) -> None:
    """The ``failmodes review`` parser."""
    from .sampling import METHODS

    p = sub.add_parser("review", help="read traces one at a time in a local page and write notes (open coding)")
    p.add_argument("source", help="a dataset (.jsonl .json .csv) or a definition file (its dataset; its modes can be tags)")
    p.add_argument("--notes", default="notes.jsonl", help="append-only notes file (default notes.jsonl)")
    p.add_argument("--reviewer", default=_default_reviewer(), help="your name in the notes (default: your login)")
    p.add_argument("--sample", default="all", choices=METHODS, help="which traces, in which order (default: all, in file order)")
    p.add_argument("--by", action="append", metavar="FIELD", help="metadata field(s) for --sample stratified (repeat or comma-separate)")
    p.add_argument("--outcome", metavar="FIELD[=V,...]", help="dataset field that says the run failed (values 1/true/fail... unless given)")
    p.add_argument("--report", action="append", metavar="REPORT.json", help="pytest --failmodes JSON report: judge and rule verdicts (repeat to compare runs)")
    p.add_argument("--limit", type=int, help="review at most N traces")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--field", action="append", metavar="TRACE_FIELD=PATH", help="map a row's field onto a trace field (like fields: in a definition)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="suggest stopping when the chance of a new tag is under this (default 0.05)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the URL only")

    def checked(args: Any) -> int:
        if args.limit is not None and args.limit < 1:
            p.error(f"--limit takes a positive number, got {args.limit}")
        if not 0.0 < args.threshold < 1.0:
            p.error(f"--threshold takes a number between 0 and 1, got {args.threshold}")
        if not args.reviewer.strip():
            p.error("--reviewer must not be empty")
        return run(args)

    p.set_defaults(func=checked)


def _default_reviewer() -> str:
    import getpass

    try:
        return getpass.getuser() or "reviewer"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "reviewer"
