"""Hypothesis fuzzing of the loaders and the definition parser.

Whatever the input, the outcome is either a valid result or one of our own
one-line errors (DatasetError / DefinitionError) — never another exception.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_failmodes.dataset import DatasetSpec, iter_traces
from pytest_failmodes.definitions import load_suite
from pytest_failmodes.detectors.rules import BUILTIN_RULE_KINDS
from pytest_failmodes.engine import Suite
from pytest_failmodes.errors import DatasetError, DefinitionError
from pytest_failmodes.trace import TRACE_FIELDS, Trace

KINDS = {k.name: k for k in BUILTIN_RULE_KINDS}
SUFFIXES = (".jsonl", ".json", ".csv")

# FAILMODES_FUZZ_SCALE=20 runs twenty times the examples, for a long hunt before a release
SCALE = max(1, int(os.environ.get("FAILMODES_FUZZ_SCALE", "1")))
FUZZ = settings(
    max_examples=200 * SCALE,
    deadline=None,
    # the temporary directory is module-scoped and each example overwrites its file
    suppress_health_check=[HealthCheck.too_slow],
)
# parsing YAML (pure Python) and deep strategies cost more per example
FUZZ_SLOW = settings(FUZZ, max_examples=100 * SCALE)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _load(path: Path, fields: dict[str, str] | None = None) -> list[tuple[int, Trace]] | DatasetError:
    try:
        return list(iter_traces(DatasetSpec(path, fields or {})))
    except DatasetError as exc:
        return exc


def _check_dataset_outcome(path: Path, outcome: list[tuple[int, Trace]] | DatasetError) -> None:
    if isinstance(outcome, DatasetError):
        text = str(outcome)
        assert "\n" not in text and "\r" not in text, text
        assert text.startswith(str(path)), text
        assert outcome.message
        if outcome.line is not None:
            assert outcome.line >= 1
        return
    assert outcome, "a successful load yields at least one trace"
    lines = [line for line, _ in outcome]
    assert lines == sorted(lines), "rows come in file order"
    ids = [t.id for _, t in outcome]
    assert len(ids) == len(set(ids))
    for _, trace in outcome:
        assert isinstance(trace, Trace) and trace.id
        assert isinstance(trace.output, str) and isinstance(trace.input, str)


# -- raw bytes ---------------------------------------------------------------

# fragments that make the parsers go past their first byte now and then
_FRAGMENTS = st.sampled_from(
    [
        "{", "}", "[", "]", ",", ":", '"', "\n", "\r\n", " ", "\\", "\ufeff",
        '"id"', '"output"', '"input"', '"messages"', '"metadata"', '"labels"',
        '"role"', '"content"', '"user"', '"assistant"', '"tool_calls"',
        "1", "2", "-0.5", "1e999", "null", "true", "false", '"x"', '""',
        "id,output", "id,output,route", "a,b", '"a\nb"', ",", '""""',
    ]
)
_TEXTISH = st.lists(_FRAGMENTS, max_size=40).map("".join).map(str.encode)
_BYTES = st.binary(max_size=300) | _TEXTISH | st.text(max_size=200).map(str.encode)


@FUZZ
@given(data=_BYTES, suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_load_or_raise_dataset_error(workdir: Path, data: bytes, suffix: str) -> None:
    path = workdir / f"bytes{suffix}"
    path.write_bytes(data)
    _check_dataset_outcome(path, _load(path))


# -- random JSON rows --------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "assistant", "tool", "system"]) | JSON,
        "content": st.text(max_size=10) | st.lists(st.dictionaries(st.sampled_from(["type", "text"]), JSON)) | JSON,
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "function": st.fixed_dictionaries(
                        {}, optional={"name": st.text(max_size=5) | JSON, "arguments": st.text(max_size=10) | JSON}
                    ),
                    "id": JSON,
                },
            ),
            max_size=2,
        )
        | JSON,
    },
)
# rows shaped like traces, with any field possibly of the wrong type
_TRACE_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers(0, 5).map(str) | st.integers(0, 5) | JSON,
        "input": st.text(max_size=10) | JSON,
        "output": st.text(max_size=10) | JSON,
        "messages": st.lists(_MESSAGE, max_size=3) | JSON,
        "metadata": st.dictionaries(st.text(max_size=5), JSON, max_size=3) | JSON,
        "labels": st.dictionaries(st.text(max_size=5), JSON, max_size=3) | JSON,
        "route": JSON,
    },
)
ROWS = st.lists(_TRACE_LIKE | JSON, max_size=6)
FIELDS = st.dictionaries(
    st.sampled_from(TRACE_FIELDS), st.sampled_from(["id", "output", "x", "x.y", "metadata.k", "route"]), max_size=3
)


@FUZZ
@given(rows=ROWS, fields=FIELDS, indent=st.none() | st.integers(0, 2))
# found by CI: an array where a content block's type should be; a null role
@example(rows=[{"id": "0", "messages": [{"content": [{"type": []}]}]}], fields={}, indent=None)
@example(rows=[{"messages": [{"role": None, "tool_calls": []}]}], fields={}, indent=None)
def test_random_json_rows_as_jsonl_and_json_array(
    workdir: Path, rows: list[Any], fields: dict[str, str], indent: int | None
) -> None:
    jsonl = workdir / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    outcome = _load(jsonl, fields)
    _check_dataset_outcome(jsonl, outcome)
    if not isinstance(outcome, DatasetError):
        # no blank lines were written, so each trace sits on the line of its row
        assert [line for line, _ in outcome] == list(range(1, len(rows) + 1))
    elif outcome.line is not None:
        assert 1 <= outcome.line <= len(rows)

    array = workdir / "rows.json"
    array.write_text(json.dumps(rows, indent=indent), encoding="utf-8")
    array_outcome = _load(array, fields)
    _check_dataset_outcome(array, array_outcome)
    # same rows, same verdict on whether they are acceptable
    assert isinstance(array_outcome, DatasetError) == isinstance(outcome, DatasetError)
    if not isinstance(outcome, DatasetError):
        assert isinstance(array_outcome, list)
        assert [t for _, t in array_outcome] == [t for _, t in outcome]


# before Python 3.11 the csv module can neither write nor read a NUL character (the reader's
# one-line error for it is tested below), so the generated tables hold none there
_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="" if sys.version_info >= (3, 11) else "\x00")
_CELL = st.text(_CHARS, max_size=10) | JSON.map(json.dumps)


@FUZZ_SLOW
@given(
    columns=st.lists(
        st.sampled_from(["id", "output", "input", "messages", "metadata", "labels", "route"]) | st.text(_CHARS, max_size=5),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    data=st.data(),
)
def test_random_csv_tables(workdir: Path, columns: list[str], data: st.DataObject) -> None:
    rows = data.draw(st.lists(st.fixed_dictionaries({c: _CELL for c in columns}), max_size=5))
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    path = workdir / "table.csv"
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    _check_dataset_outcome(path, _load(path))


def test_a_nul_in_a_csv_cell_is_read_or_named(workdir: Path) -> None:
    path = workdir / "nul.csv"
    path.write_bytes(b'id,output\na,"x\x00y"\n')
    if sys.version_info >= (3, 11):
        assert [t.output for _line, t in iter_traces(DatasetSpec(path))] == ["x\x00y"]
    else:  # the csv module refuses the line: one error naming the file and the line
        with pytest.raises(DatasetError, match=r"nul\.csv:2: malformed CSV: line contains NUL"):
            list(iter_traces(DatasetSpec(path)))


# -- definitions -------------------------------------------------------------

VALID_DEFINITION: dict[str, Any] = {
    "dataset": {"path": "data/traces.jsonl", "fields": {"id": "trace_id", "input": "query"}},
    "cohorts": ["route", ["route", "persona"]],
    "gate": {
        "max_fail_rate": 0.05,
        "gate_on": "point",
        "max_errors": 0,
        "min_cohort_size": 30,
        "cohort_limits": {"route=billing": 0.1},
    },
    "failure_modes": [
        {
            "name": "leaks_system_prompt",
            "description": "quotes its instructions",
            "rule": {"regex": "(?i)my instructions", "field": "output"},
            "max_fail_rate": 0,
        },
        {
            "name": "missing_lookup",
            "where": {"intent": "order_status", "turns": {"gte": 2}, "route": {"in": ["a", "b"]}},
            "rule": {"tool_called": {"name": "lookup_order", "args": {"id": 1}, "present": False}},
        },
        {
            "name": "bad_json",
            "rule": {
                "any": [
                    {"json_schema": {"type": "object"}},
                    {"not": {"contains": ["ok"], "ignore_case": False}},
                    {"all": [{"max_chars": 10}, {"min_chars": 2, "field": "input"}]},
                ]
            },
        },
        {"name": "pii", "detector": "pii_detector"},
        {
            "name": "escalation_missed",
            "label": {"field": "human_verdict", "fail_values": ["escalate"], "pass_values": ["ok"]},
            "gate": {"max_fail_rate": 0.1, "gate_on": "upper"},
        },
    ],
}

_KEYS = st.sampled_from(
    [
        "dataset", "path", "fields", "format", "cohorts", "gate", "failure_modes", "name", "rule",
        "label", "detector", "where", "max_fail_rate", "gate_on", "max_errors", "min_cohort_size",
        "cohort_limits", "regex", "contains", "tool_called", "any", "not", "field", "fail_values",
        "gt", "in", "exists", "present", "args", "json_schema",
    ]
) | st.text(max_size=8)
YAMLISH = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=20,
)


def _containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every dict and list inside ``node`` (the root included)."""
    found = []
    if isinstance(node, (dict, list)):
        found.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            found.extend(_containers(v, (*path, k)))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_definitions(draw: st.DrawFn, base: dict[str, Any] = VALID_DEFINITION) -> Any:
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = _containers(doc)
        if not paths:
            break
        target = _at(doc, draw(st.sampled_from(paths)))
        if isinstance(target, dict):
            if not target:
                continue
            key = draw(st.sampled_from(sorted(target, key=str)))
            action = draw(st.sampled_from(["drop", "rename", "retype"]))
            if action == "drop":
                del target[key]
            elif action == "rename":
                new = draw(_KEYS | st.just(str(key)[:-1]) | st.just(str(key) + "s"))
                target[new] = target.pop(key)
            else:
                target[key] = draw(YAMLISH)
        elif target:
            i = draw(st.integers(0, len(target) - 1))
            action = draw(st.sampled_from(["drop", "duplicate", "retype"]))
            if action == "drop":
                del target[i]
            elif action == "duplicate":
                target.append(copy.deepcopy(target[i]))
            else:
                target[i] = draw(YAMLISH)
    return doc


def _check_definition(path: Path, doc: Any) -> None:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    try:
        suite = load_suite(path, KINDS)
    except DefinitionError as exc:
        text = str(exc)
        assert "\n" not in text and "\r" not in text, text
        assert text.startswith(str(path)), text
        return
    assert isinstance(suite, Suite)
    assert suite.modes
    assert len({m.name for m in suite.modes}) == len(suite.modes)


def test_valid_definition_used_by_the_fuzzer_loads(workdir: Path) -> None:
    path = workdir / "valid.failmodes.yaml"
    path.write_text(yaml.safe_dump(VALID_DEFINITION), encoding="utf-8")
    suite = load_suite(path, KINDS)
    assert [m.name for m in suite.modes] == [m["name"] for m in VALID_DEFINITION["failure_modes"]]


@FUZZ_SLOW
@given(doc=YAMLISH)
def test_random_yaml_documents(workdir: Path, doc: Any) -> None:
    _check_definition(workdir / "random.failmodes.yaml", doc)


@FUZZ_SLOW
@given(doc=mutated_definitions())
def test_mutated_valid_definition(workdir: Path, doc: Any) -> None:
    _check_definition(workdir / "mutated.failmodes.yaml", doc)


_YAML_BITS = st.sampled_from(
    ["a", ":", " ", "\n", "- ", "{", "}", "[", "]", "'", '"', "&x", "*x", "!!", "?", "#", "\t", "\x07", "name", "rule"]
)


@FUZZ
@given(text=st.text(max_size=200) | st.lists(_YAML_BITS, max_size=40).map("".join))
def test_random_yaml_text(workdir: Path, text: str) -> None:
    path = workdir / "text.failmodes.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        suite = load_suite(path, KINDS)
    except DefinitionError as exc:
        assert "\n" not in str(exc), str(exc)
    else:
        assert isinstance(suite, Suite)


# -- end to end: load -> engine -> every report writer ----------------------------------

RUNNABLE_DEFINITION: dict[str, Any] = {
    "dataset": "data.jsonl",
    "cohorts": ["route", ["route", "persona"]],
    "gate": {"max_fail_rate": 0.5},
    "failure_modes": [
        {"name": "leaks", "rule": {"regex": "(?i)instructions|x+$", "field": "output"}},
        {"name": "long", "rule": {"max_chars": 5}, "where": {"route": {"in": ["a", "b"]}}},
        {"name": "shape", "rule": {"json_schema": {"type": "object", "properties": {"a": {"pattern": "^a+$"}}}}},
        {"name": "tools", "rule": {"any": [{"tool_called": {"name": "f", "present": False}}, {"not": {"contains": "ok"}}]}},
        {"name": "human", "label": {"field": "route", "fail_values": ["x", 1, True]}},
    ],
}
# values that have broken writers or cohort keys before: separators, line breaks, markup
_ODD_TEXT = st.sampled_from(["a", "b", "x", " & ", "=", "a=b & c", "\r", "\n", "|", "<b>", "]]>", "é", "😀", ""]) | st.text(max_size=6)
_ODD = _ODD_TEXT | JSON
_E2E_ROW = st.fixed_dictionaries(
    {"id": st.integers(0, 30).map(str)},
    optional={
        "output": _ODD_TEXT | JSON,
        "input": _ODD_TEXT,
        "route": _ODD,
        "persona": _ODD,
        "messages": st.lists(_MESSAGE, max_size=2),
        "metadata": st.dictionaries(st.sampled_from(["route", "persona", "k"]), _ODD, max_size=2),
    },
)
REPORTS = ("--failmodes-report=r.json", "--failmodes-markdown=r.md", "--failmodes-html=r.html", "--junitxml=j.xml")


@settings(
    # a whole pytest session per example: ~1 s each on a quiet machine
    max_examples=12,
    deadline=None,
    # each example rewrites the pytester directory's files before its run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    doc=mutated_definitions(RUNNABLE_DEFINITION) | st.just(RUNNABLE_DEFINITION),
    rows=st.lists(_E2E_ROW | _TRACE_LIKE, min_size=1, max_size=6),
    per_trace=st.booleans(),
)
def test_end_to_end_a_clean_run_or_one_error_line(pytester: pytest.Pytester, doc: Any, rows: list[Any], per_trace: bool) -> None:
    import pytest_failmodes.collect  # noqa: F401 - kept across in-process runs (see conftest)

    pytester.makefile(".jsonl", data="".join(json.dumps(r) + "\n" for r in rows))
    (pytester.path / "failmodes.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    for name in ("r.json", "r.md", "r.html", "j.xml"):
        (pytester.path / name).unlink(missing_ok=True)

    result = pytester.runpytest("--failmodes", "-p", "no:cacheprovider", *REPORTS, *(["--failmodes-per-trace"] if per_trace else []))

    text = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERRUPTED), text
    if result.ret == pytest.ExitCode.INTERRUPTED:
        # a definition error (or, per trace, a dataset error): one line naming the file
        assert any(line.startswith(("failmodes.yaml:", "data.jsonl:")) for line in result.outlines), text
        return
    json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    ET.parse(pytester.path / "j.xml")
    assert (pytester.path / "r.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
    assert (pytester.path / "r.md").read_text(encoding="utf-8").strip()


def _preorder_by_definition(steps: list[Any]) -> list[Any]:
    """Pre-order as the span readers document it, written for clarity, not speed: roots are
    steps whose parent is not in the trace; siblings by start time (none last), ties in file
    order; each id once; steps on a parent cycle without a root appended in file order."""
    ids = {s.id for s in steps}

    def kids_of(parent: str | None) -> list[Any]:
        kids = [s for s in steps if (s.parent_id if s.parent_id in ids else None) == parent]
        return sorted(kids, key=lambda s: (s.start_ms is None, s.start_ms or 0.0))

    out: list[Any] = []
    seen: set[str] = set()

    def visit(s: Any) -> None:
        if s.id in seen:
            return
        seen.add(s.id)
        out.append(s)
        for k in kids_of(s.id):
            visit(k)

    for root in kids_of(None):
        visit(root)
    return out + [s for s in steps if s.id not in seen]


@FUZZ
@given(st.lists(
    st.tuples(
        st.sampled_from("abcdef"), st.none() | st.sampled_from("abcdefz"), st.none() | st.sampled_from([1.0, 2.0, 3.0]),
    ),
    max_size=9,
))
def test_span_preorder_matches_its_definition(spans: list[tuple[str, str | None, float | None]]) -> None:
    # ids repeat, parents are missing or form cycles, start times tie or are absent
    from pytest_failmodes.readers.spans import preorder
    from pytest_failmodes.trace import new_step

    steps = [new_step(id=i, parent_id=p, start_ms=t, name=str(n)) for n, (i, p, t) in enumerate(spans)]
    assert [s.name for s in preorder(list(steps))] == [s.name for s in _preorder_by_definition(steps)]


# -- the fast JSONL row parser against json's -------------------------------------

# every value json can write, and lines it cannot read: numbers of every size (floats
# round-trip through either parser exactly or not at all), NaN and infinities, lone
# surrogates (escaped, or encoded as bytes that strict UTF-8 refuses), a BOM, padding
_ANY_SCALAR = (
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(st.characters(), max_size=8)
)
_ANY_JSON = st.recursive(
    _ANY_SCALAR,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)


@st.composite
def _nested(draw: st.DrawFn) -> str:
    """Arrays and objects nested around MAX_DEPTH levels, the innermost empty or not."""
    from pytest_failmodes.readers._source import MAX_DEPTH

    kinds = draw(st.lists(st.booleans(), min_size=MAX_DEPTH - 2, max_size=MAX_DEPTH + 3))
    inner = draw(st.sampled_from(["", "1", "[]", "{}"]))
    opening = "".join("[" if k else '{"k":' for k in kinds)
    closing = "".join("]" if k else "}" for k in reversed(kinds))
    if not inner and kinds and not kinds[-1]:
        inner = "null"  # an object needs a value after its key
    return opening + inner + closing


@st.composite
def _jsonl_line(draw: st.DrawFn) -> bytes:
    text = draw(
        st.builds(lambda v, a, i: json.dumps(v, ensure_ascii=a, indent=i).replace("\n", ""), _ANY_JSON, st.booleans(), st.none() | st.just(0))
        | _nested()
        | st.lists(_FRAGMENTS, max_size=12).map("".join)
    )
    before = draw(st.sampled_from(["", " ", "\t", "\ufeff"]))
    after = draw(st.sampled_from(["", " ", "\r", " x", ",1"]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    raw = (before + text + after).encode("utf-8", "surrogatepass") + end.encode()
    if draw(st.booleans()):
        return raw
    return draw(st.sampled_from([raw.replace(b"1", b"\xff", 1), raw.replace(b'"', b'"\xed\xa0\x80', 1), raw[: len(raw) // 2] + b"\n"]))


def _rows(path: Path) -> str:
    from pytest_failmodes.readers._source import iter_rows

    try:
        return repr(list(iter_rows(path, "jsonl")))
    except DatasetError as exc:
        return f"error: {exc}"


@FUZZ
@given(lines=st.lists(_jsonl_line(), min_size=1, max_size=4))
@example(lines=[b"[" * 201 + b"]" * 201 + b"\n"])  # one level too deep, the innermost empty
@example(lines=[b"[" * 200 + b"]" * 200 + b"\n", b"[" * 200 + b"1" + b"]" * 200 + b"\n"])  # as deep as a row may be
@example(lines=[b'"\\ud800"\n', b'"\xed\xa0\x80"\n', b"\xef\xbb\xbf{}\n", b"-0\n", b"1e400\n", b"NaN\n"])
def test_fast_jsonl_rows_read_what_json_reads(workdir: Path, lines: list[bytes]) -> None:
    # pydantic-core's parser reads the common row; the rows, values and errors must be
    # exactly those of the json-only reader (compared by repr: 1 is not 1.0, -0.0 not 0.0)
    from pytest_failmodes.readers import _source

    assert _source._FAST_ROW is not None, "the fast parser is in use with the locked pydantic-core"
    path = workdir / "fast.jsonl"
    path.write_bytes(b"".join(lines))
    fast = _rows(path)
    saved, _source._FAST_ROW = _source._FAST_ROW, None
    try:
        plain = _rows(path)
    finally:
        _source._FAST_ROW = saved
    assert fast == plain
