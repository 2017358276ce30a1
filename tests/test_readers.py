"""Trace formats: each reader on data its real exporter produced (tests/data,
made by tests/data/make_fixtures.py), detection, and one-line errors for
corrupted files of each format."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_failmodes.dataset import DatasetSpec, iter_traces
from pytest_failmodes.errors import DatasetError
from pytest_failmodes.trace import Trace

DATA = Path(__file__).parent / "data"


def load(path: Path, fmt: str | None = None, **fields: Any) -> list[Trace]:
    return [t for _line, t in iter_traces(DatasetSpec(path, fields, fmt))]


def load_error(path: Path, fmt: str | None = None, **fields: Any) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load(path, fmt, **fields)
    assert "\n" not in str(info.value)
    return info.value


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def write_lines(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- OpenInference ------------------------------------------------------------


def check_support_agent(traces: list[Trace]) -> None:
    """The three conversations of make_fixtures.py, whatever the format."""
    assert len(traces) == 3
    by_input = {t.input: t for t in traces}
    assert set(by_input) == {"Where is my order 1234?", "What are your opening hours?", "Refund order 999 please"}
    order = by_input["Where is my order 1234?"]
    assert order.output == "Order 1234 ships tomorrow."
    assert order.get("tools") == ["lookup_order"]
    [tool] = [s for s in order.steps if s.kind == "tool"]
    assert tool.input == {"order_id": "1234"} and tool.status != "error"
    assert "shipped" in str(tool.output)
    hours = by_input["What are your opening hours?"]
    assert hours.output == "We are open 9am to 5pm, Monday to Friday."
    assert hours.get("tools") == []
    refund = by_input["Refund order 999 please"]
    assert refund.output == "I could not find order 999."
    [failed] = [s for s in refund.steps if s.status == "error"]
    assert (failed.kind, failed.name) == ("tool", "lookup_order")
    assert str(failed.error).endswith("order 999 not found")
    for t in traces:
        assert t.get("model") == "fake-agent"
        assert t.get("tokens.total") > 0
        assert t.get("latency_ms") >= 0
        ids = [s.id for s in t.steps]
        for i, s in enumerate(t.steps):  # pre-order: a parent comes before its children
            assert s.parent_id is None or s.parent_id in ids[:i]


def test_openinference_spans_from_the_sdk_exporter() -> None:
    traces = load(DATA / "openinference.jsonl")
    check_support_agent(traces)
    by_input = {t.input: t for t in traces}
    order = by_input["Where is my order 1234?"]
    assert [s.kind for s in order.steps] == ["agent", "llm", "tool", "llm"]
    assert order.get("steps.count") == 4 and order.get("agents") == ["support_agent"]
    # the last LLM call's conversation: tool rules over messages see the call too
    assert [c.name for c in order.tool_calls] == ["lookup_order"]
    assert order.messages[-1].role == "assistant" and order.messages[-1].text == order.output
    assert by_input["What are your opening hours?"].get("steps.count") == 2


def test_openinference_detected_and_named_explicitly(tmp_path: Path) -> None:
    spans = lines(DATA / "openinference.jsonl")
    path = write_lines(tmp_path / "spans.log.jsonl", spans)
    assert len(load(path, "openinference")) == 3
    # one trace per file: a JSON array of its spans
    array = tmp_path / "one.json"
    first = spans[0]["context"]["trace_id"]
    array.write_text(json.dumps([s for s in spans if s["context"]["trace_id"] == first]), encoding="utf-8")
    [trace] = load(array)
    assert trace.id == first[2:]


def test_openinference_interleaved_traces_are_grouped(tmp_path: Path) -> None:
    spans = lines(DATA / "openinference.jsonl")
    # round-robin the traces' spans: an exporter flushing concurrent traces
    by_trace: dict[str, list[Any]] = {}
    for s in spans:
        by_trace.setdefault(s["context"]["trace_id"], []).append(s)
    mixed = [s for group in zip(*by_trace.values()) for s in group]
    mixed += [s for group in by_trace.values() for s in group[min(map(len, by_trace.values())):]]
    check_support_agent(load(write_lines(tmp_path / "mixed.jsonl", mixed)))


def test_openinference_span_after_its_trace_completed_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_failmodes.readers import spans as spans_mod

    monkeypatch.setattr(spans_mod, "WINDOW", 2)
    rows = lines(DATA / "openinference.jsonl")
    first = rows[0]["context"]["trace_id"]
    late = [r for r in rows if r["context"]["trace_id"] == first][:1]
    rest = [r for r in rows if r not in late]
    path = write_lines(tmp_path / "late.jsonl", rest + late)
    err = load_error(path)
    assert err.line == len(rest) + 1
    assert f"of trace {first[2:]!r} arrives after its trace was complete" in err.message
    assert "sort the file by trace id" in err.message


@pytest.mark.parametrize(
    ("mutate", "key", "message"),
    [
        (lambda s: s["context"].pop("trace_id"), "context.trace_id", "span has no trace id"),
        (lambda s: s.__setitem__("attributes", ["x"]), "attributes", "attributes must be an object, got an array"),
    ],
)
def test_openinference_corrupted_span_names_line_and_field(tmp_path: Path, mutate: Any, key: str, message: str) -> None:
    rows = lines(DATA / "openinference.jsonl")
    mutate(rows[2])
    err = load_error(write_lines(tmp_path / "bad.jsonl", rows), "openinference")
    assert (err.file, err.line, err.key) == (str(tmp_path / "bad.jsonl"), 3, key)
    assert message in err.message


@pytest.mark.parametrize("depth", [300, 5000])
def test_openinference_tool_input_nested_too_deep(tmp_path: Path, depth: int) -> None:
    # a tool's JSON input is parsed into the step: nesting past MAX_DEPTH (or past Python's
    # recursion limit) is one error naming the span's line and the attribute, not a traceback
    rows = lines(DATA / "openinference.jsonl")
    at = next(i for i, r in enumerate(rows) if r["attributes"]["openinference.span.kind"] == "TOOL")
    rows[at]["attributes"]["input.value"] = "[" * depth + "]" * depth
    err = load_error(write_lines(tmp_path / "deep.jsonl", rows))
    assert (err.line, err.key) == (at + 1, "attributes.input.value")
    assert "nested more than 200 levels deep" in err.message


def test_openinference_truncated_line(tmp_path: Path) -> None:
    text = (DATA / "openinference.jsonl").read_text(encoding="utf-8").splitlines()
    text[1] = text[1][:200]
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    err = load_error(path)
    assert err.line == 2 and err.message.startswith("malformed JSON")


def eager_openinference(path: Path) -> list[Trace]:
    """The traces of a span file built as before messages were lazy: validated by Trace(...)."""
    from pytest_failmodes.readers import Record
    from pytest_failmodes.readers.openinference import _oi_messages, build_trace, span_step
    from pytest_failmodes.readers.spans import SpanGrouper

    grouper = SpanGrouper()
    groups = []
    for i, span in enumerate(lines(path), 1):
        trace_id, step = span_step(Record(path, i, span))
        groups += grouper.add(Record(path, i, span), trace_id, step)
    groups += grouper.finish()
    return [build_trace(g, _oi_messages, "input.mime_type", "output.mime_type") for g in groups]


def test_openinference_messages_are_built_on_first_access_and_equal_a_validated_trace(tmp_path: Path) -> None:
    import copy
    import pickle

    spans = lines(DATA / "openinference.jsonl")
    # a tool call's arguments exported as a number: kept as its JSON text, never a failed build later
    for s in spans:
        for k in s["attributes"]:
            if k.endswith("tool_call.function.arguments"):
                s["attributes"][k] = 7
    path = write_lines(tmp_path / "spans.jsonl", spans)
    lazy, eager = load(path), eager_openinference(path)
    assert [t.id for t in lazy] == [t.id for t in eager]
    for a, b in zip(lazy, eager):
        assert "messages" not in a.__dict__  # not built by reading
        assert (a.input, a.output, a.steps, a.metadata, a.model_fields_set) == (b.input, b.output, b.steps, b.metadata, b.model_fields_set)
        c = copy.copy(a)
        assert pickle.loads(pickle.dumps(a)) == b  # pickling builds them (a worker process has no reader)
        assert a.model_dump() == b.model_dump() and a.model_dump_json() == b.model_dump_json()
        assert c.messages == b.messages and c.transcript == b.transcript
        assert a == b and b == a
    # read from several threads at once (a judge's thread and the run's): every reader gets them
    from concurrent.futures import ThreadPoolExecutor

    fresh = load(path)
    with ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(lambda t: (t.messages, t.steps, t.metadata, t.labels), fresh * 4))
    assert all(m == t.messages and s == t.steps for (m, s, _md, _lb), t in zip(seen, fresh * 4))
    assert [list(t.__dict__)[:7] for t in fresh] == [list(Trace.model_fields)] * len(fresh)
    args = [c.function.arguments for t in lazy for m in t.messages for c in m.tool_calls or ()]
    assert args and set(args) == {"7"}
    assert {c.arguments["_value"] for t in lazy for c in t.tool_calls} == {7}


# -- OpenTelemetry GenAI (OTLP/JSON) ---------------------------------------------


def test_otlp_genai_messages_attributes_from_the_openai_v2_instrumentation() -> None:
    traces = load(DATA / "otlp_genai.json")
    check_support_agent(traces)
    order = next(t for t in traces if t.input == "Where is my order 1234?")
    assert [(s.kind, s.name) for s in order.steps] == [
        ("agent", "support_agent"), ("llm", "chat fake-agent"), ("tool", "lookup_order"), ("llm", "chat fake-agent"),
    ]
    assert [m.role for m in order.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert [c.name for c in order.tool_calls] == ["lookup_order"]


def test_otlp_older_per_message_events() -> None:
    traces = load(DATA / "otlp_events.json")
    assert [(t.input, t.output) for t in traces] == [
        ("Where is my order 1234?", "Answer 0: we are on it."),
        ("What are your opening hours?", "Answer 1: we are on it."),
    ]
    for t in traces:
        assert t.get("steps.count") == 1 and t.get("tools") == []
        assert t.get("model") == "gpt-4o-mini" and t.get("tokens.total") in (27, 28)
        assert [m.role for m in t.messages] == ["system", "user", "assistant"]


def test_otlp_hex_ids_and_one_export_per_jsonl_line(tmp_path: Path) -> None:
    import base64

    doc = json.loads((DATA / "otlp_genai.json").read_text(encoding="utf-8"))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:  # the Collector's file exporter writes hex ids
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    path = write_lines(tmp_path / "collector.jsonl", [doc])
    check_support_agent(load(path))


def test_otlp_corrupted_span_names_its_path(tmp_path: Path) -> None:
    doc = json.loads((DATA / "otlp_genai.json").read_text(encoding="utf-8"))
    del doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    err = load_error(path)
    assert (err.line, err.key) == (1, "traceId")
    assert err.message == "resourceSpans[0].scopeSpans[0].spans[1]: span has no traceId"
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"] = {"oops": 1}
    path.write_text(json.dumps(doc), encoding="utf-8")
    err = load_error(path, "otlp")
    assert err.key == "resourceSpans[0].scopeSpans[0].spans" and "spans must be a list, got an object" in err.message


# -- Anthropic Messages and OpenAI Responses --------------------------------------


@pytest.mark.parametrize(("name", "fmt"), [("anthropic.jsonl", "anthropic"), ("responses.jsonl", "responses")])
def test_chat_dialects_from_the_sdk_models(name: str, fmt: str) -> None:
    traces = load(DATA / name)
    assert traces == load(DATA / name, fmt)  # detected as the format it is
    assert [t.id for t in traces] == ["conv-1", "conv-2", "conv-3"]
    assert [(t.input, t.output) for t in traces] == [
        ("Where is my order 1234?", "Order 1234 ships tomorrow."),
        ("What are your opening hours?", "We are open 9am to 5pm, Monday to Friday."),
        ("Refund order 999 please", "I could not find order 999."),
    ]
    assert [t.get("steps.count") for t in traces] == [3, 1, 3]
    assert [t.get("tools") for t in traces] == [["lookup_order"], [], ["lookup_order"]]
    first = traces[0]
    assert [m.role for m in first.messages] == ["system", "user", "assistant", "tool", "assistant"]
    [tool] = [s for s in first.steps if s.kind == "tool"]
    assert tool.input == {"order_id": "1234"} and "shipped" in tool.output
    assert first.metadata["model"] in ("claude-fake", "gpt-fake")
    # Anthropic says a tool result is an error (is_error); a Responses result shows it in its text
    assert traces[2].get("errors.count") == 1
    [failed] = [s for s in traces[2].steps if s.status == "error"]
    assert failed.name == "lookup_order" and "order 999 not found" in str(failed.error)


@pytest.mark.parametrize(
    ("name", "path", "key", "message"),
    [
        ("anthropic.jsonl", ("messages", 1, "content", 1, "name"), "messages[1].content[1].name", "tool_use block has no name"),
        ("anthropic.jsonl", ("messages", 2, "content", 0, "tool_use_id"), "messages[2].content[0].tool_use_id", "tool_result block has no tool_use_id"),
        ("responses.jsonl", ("input", 1, "name"), "input[1].name", "function_call item has no name"),
    ],
)
def test_chat_dialect_corrupted_rows(tmp_path: Path, name: str, path: tuple[Any, ...], key: str, message: str) -> None:
    rows = lines(DATA / name)
    target = rows[2]
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    err = load_error(write_lines(tmp_path / name, rows))
    assert (err.line, err.key, err.message) == (3, key, message)


def test_ambiguous_first_record_names_both_formats(tmp_path: Path) -> None:
    row = {"id": "a", "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}]}],
           "output": [{"type": "function_call", "call_id": "c", "name": "x", "arguments": "{}"}]}
    err = load_error(write_lines(tmp_path / "both.jsonl", [row]))
    assert err.line == 1
    assert err.message == "the first record looks like 'anthropic' and 'responses'; set dataset.format to one of them"
    assert load(tmp_path / "both.jsonl", "responses")[0].get("tools") == ["x"]


# -- multi-agent logs -------------------------------------------------------------


def test_multiagent_logs_one_per_file_in_a_folder() -> None:
    traces = load(DATA / "multiagent")
    assert [t.id for t in traces] == ["task-1", "task-2"]
    first, second = traces
    assert first.input == "How many studio albums did the band release before 2000?"
    assert first.output == "5"  # the final-answer channel, not the termination turn
    assert second.output == "The answer is 391."  # the last agent turn, TERMINATE removed
    assert first.get("agents") == ["Orchestrator", "WebSurfer"]
    assert [t.get("steps.count") for t in traces] == [7, 6]
    assert first.steps[0].kind == "message" and first.steps[3].name == "WebSurfer"
    assert first.metadata["mistake_agent"] == "WebSurfer"


def test_multiagent_corrupted_turn(tmp_path: Path) -> None:
    log = json.loads((DATA / "multiagent" / "task-1.json").read_text(encoding="utf-8"))
    del log["history"][2]["role"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(log), encoding="utf-8")
    err = load_error(path)
    assert (err.line, err.key, err.message) == (1, "history[2].role", "a turn needs a role")


# -- files: folders, globs, gzip, nested fields -----------------------------------------


def test_glob_and_gzip(tmp_path: Path) -> None:
    for name in ("anthropic.jsonl", "responses.jsonl"):
        with gzip.open(tmp_path / f"{name}.gz", "wb") as fh:
            fh.write((DATA / name).read_bytes().replace(b'"conv-', f'"{name[:4]}-'.encode()))
    traces = load(tmp_path / "anth*.jsonl.gz")
    assert [t.id for t in traces] == ["anth-1", "anth-2", "anth-3"]
    # a folder: every data file in it, by name, in the format of the first
    (tmp_path / "README.txt").write_text("not data", encoding="utf-8")
    err = load_error(tmp_path)
    assert err.file == str(tmp_path / "responses.jsonl.gz") and err.key == "messages"
    (tmp_path / "responses.jsonl.gz").unlink()
    assert [t.id for t in load(tmp_path)] == ["anth-1", "anth-2", "anth-3"]


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    data = gzip.compress((DATA / "anthropic.jsonl").read_bytes())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    err = load_error(path)
    assert err.file == str(path) and "compressed file" in err.message


def test_folder_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    assert load_error(tmp_path).message == "the folder holds no .jsonl, .json or .csv file (optionally .gz); it has: notes.txt"
    assert load_error(tmp_path / "*.jsonl").message == "the glob matches no file"


def test_raw_json_with_a_nested_list_and_a_composite_id(tmp_path: Path) -> None:
    # the shape of tau-bench's raw trajectories: no id column, messages under "traj"
    runs = [
        {"task_id": 7, "trial": t, "reward": float(t), "info": {"task": {"user_id": "u1"}},
         "traj": [{"role": "user", "content": "cancel my flight"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": f"c{t}", "type": "function", "function": {"name": "cancel_reservation", "arguments": "{\"id\": 1}"}}]},
                  {"role": "tool", "tool_call_id": f"c{t}", "name": "cancel_reservation", "content": "ok"},
                  {"role": "assistant", "content": "Done."}]}
        for t in range(2)
    ]
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(runs), encoding="utf-8")
    traces = load(path, id=["task_id", "trial"], messages="traj", metadata="info.task")
    assert [t.id for t in traces] == ["7/0", "7/1"]
    assert traces[0].input == "cancel my flight" and traces[0].output == "Done."
    assert traces[0].get("tools") == ["cancel_reservation"] and traces[0].get("steps.count") == 3
    assert traces[0].get("user_id") == "u1" and traces[1].get("reward") == 1.0
    # the columns of the composite id are kept: trials are clustered and paired by them
    assert [(t.get("task_id"), t.get("trial")) for t in traces] == [(7, 0), (7, 1)]
    assert load(path, id=["task_id", "trial"], messages="traj", input="traj.0.content")[0].input == "cancel my flight"
    err = load_error(path, id=["task_id", "missing"], messages="traj")
    assert (err.key, err.message) == ("task_id+missing", "missing id (mapped from 'task_id+missing')")


# -- in a pytest --failmodes session ------------------------------------------------


def test_a_span_file_is_detected_and_evaluated_in_a_session(project: Any) -> None:
    shutil.copy(DATA / "openinference.jsonl", project.path / "spans.jsonl")
    project.definitions(
        """
        dataset: spans.jsonl
        failure_modes:
          - name: looked_up_order
            rule: {tool_called: lookup_order}
          - name: could_not
            rule: {regex: "could not", field: output}
        """
    )
    result = project.run()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["looked_up_order*all*3*2*66.7%*", "could_not*all*3*1*33.3%*"])
    assert "empty output" not in result.stdout.str()


def test_traces_with_an_empty_derived_output_are_named_in_the_notes(project: Any) -> None:
    log = json.loads((DATA / "multiagent" / "task-2.json").read_text(encoding="utf-8"))
    log["history"] = log["history"][:2]  # cut before any agent answered
    (project.path / "logs").mkdir()
    (project.path / "logs" / "cut.json").write_text(json.dumps(log), encoding="utf-8")
    shutil.copy(DATA / "multiagent" / "task-1.json", project.path / "logs" / "ok.json")
    project.definitions(
        """
        dataset: logs
        failure_modes:
          - name: says_five
            rule: {regex: "^5$", field: output}
        """
    )
    result = project.run()
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "note: says_five: 1 of 2 traces have an empty output (first: 'task-2'); checks on the output see '' there*",
    ])


# -- LangSmith runs -----------------------------------------------------------------


def test_langsmith_runs_from_the_sdk_run_tree() -> None:
    traces = load(DATA / "langsmith.jsonl")
    check_support_agent(traces)
    order = next(t for t in traces if t.input == "Where is my order 1234?")
    assert [(s.kind, s.name) for s in order.steps] == [
        ("chain", "support_agent"), ("llm", "ChatOpenAI"), ("tool", "lookup_order"), ("llm", "ChatOpenAI"),
    ]
    assert order.get("tokens.total") == 42 + 49
    assert [m.role for m in order.messages] == ["user", "assistant", "tool", "assistant"]


def test_langsmith_corrupted_run(tmp_path: Path) -> None:
    rows = lines(DATA / "langsmith.jsonl")
    del rows[1]["trace_id"]
    err = load_error(write_lines(tmp_path / "runs.jsonl", rows))
    assert (err.line, err.key) == (2, "trace_id")
    assert err.message == f"run {rows[1]['id']!r} has no trace_id"


# -- Langfuse observations and traces ------------------------------------------------


def test_langfuse_observations_from_the_sdk_models() -> None:
    traces = load(DATA / "langfuse.jsonl")
    assert traces == load(DATA / "langfuse.jsonl", "langfuse")  # detected as the format it is
    check_support_agent(traces)
    order = next(t for t in traces if t.input == "Where is my order 1234?")
    assert [(s.kind, s.name) for s in order.steps] == [
        ("agent", "support_agent"), ("llm", "chat"), ("tool", "lookup_order"), ("llm", "chat"),
    ]
    assert order.get("tokens.total") == 42 + 49 and order.get("latency_ms") == 225.0
    assert [m.role for m in order.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert [c.name for c in order.tool_calls] == ["lookup_order"]
    assert order.get("sessionId") == "session-conv-1" and order.get("conversation") == "conv-1"


def test_langfuse_trace_documents_and_api_pages(tmp_path: Path) -> None:
    rows = lines(DATA / "langfuse.jsonl")
    by_trace: dict[str, list[Any]] = {}
    for r in rows:
        by_trace.setdefault(r["traceId"], []).append(r)
    # the trace API's shape: the trace, its observations inside, its scores
    docs = [{"id": tid, "name": "support", "input": {"question": obs[0]["input"]}, "observations": obs,
             "scores": [{"name": "resolved", "value": float(i != 2), "dataType": "NUMERIC"},
                        {"name": "tone", "value": None, "stringValue": "polite", "dataType": "CATEGORICAL"}]}
            for i, (tid, obs) in enumerate(by_trace.items())]
    traces = load(write_lines(tmp_path / "traces.jsonl", docs))
    check_support_agent(traces)
    assert [t.labels for t in traces] == [{"resolved": 1.0, "tone": "polite"}] * 2 + [{"resolved": 0.0, "tone": "polite"}]
    # the v2 observations API's response page
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"data": rows, "meta": {"cursor": None}}), encoding="utf-8")
    check_support_agent(load(page))


@pytest.mark.parametrize(
    ("mutate", "key", "message"),
    [
        (lambda r: r.pop("traceId"), "traceId", "observation '0000000000010001' has no traceId"),
        (lambda r: r.__setitem__("type", ["GENERATION"]), "type",
         "observation '0000000000010001' has no type (GENERATION, SPAN, EVENT, TOOL ...)"),
    ],
)
def test_langfuse_corrupted_observation_names_line_and_field(tmp_path: Path, mutate: Any, key: str, message: str) -> None:
    rows = lines(DATA / "langfuse.jsonl")
    mutate(rows[1])
    err = load_error(write_lines(tmp_path / "obs.jsonl", rows), "langfuse")
    assert (err.file, err.line, err.key, err.message) == (str(tmp_path / "obs.jsonl"), 2, key, message)


def test_langfuse_corrupted_trace_document_names_the_observation(tmp_path: Path) -> None:
    rows = lines(DATA / "langfuse.jsonl")
    doc = {"id": rows[0]["traceId"], "observations": rows[:4]}
    del doc["observations"][2]["id"]
    err = load_error(write_lines(tmp_path / "traces.jsonl", [doc]))
    assert (err.line, err.key, err.message) == (1, "observations[2].id", "observation has no id")


# -- Inspect AI eval logs ---------------------------------------------------------------


def check_inspect_support(traces: list[Trace]) -> None:
    """The eval of make_fixtures.py: two samples, two epochs, one failing tool call."""
    assert sorted(t.id for t in traces) == ["support/order/1", "support/order/2", "support/refund/1", "support/refund/2"]
    by_id = {t.id: t for t in traces}
    order, refund = by_id["support/order/2"], by_id["support/refund/1"]
    assert (order.input, order.output) == ("Where is my order 1234?", "Order 1234 ships tomorrow.")
    assert (refund.input, refund.output) == ("Refund order 999 please", "I could not find order 999.")
    assert [(s.kind, s.name) for s in order.steps] == [("llm", "assistant"), ("tool", "lookup_order"), ("llm", "assistant")]
    assert order.get("tools") == ["lookup_order"] and order.get("agents") == []
    [tool] = [s for s in order.steps if s.kind == "tool"]
    assert tool.input == {"order_id": "1234"} and "shipped" in str(tool.output) and tool.status != "error"
    [failed] = [s for s in refund.steps if s.status == "error"]
    assert failed.name == "lookup_order" and str(failed.error).endswith("order 999 not found")
    assert (order.labels, refund.labels) == ({"includes": "C"}, {"includes": "I"})
    assert (order.get("sample_id"), order.get("epoch"), order.get("topic")) == ("order", 2, "orders")
    assert order.get("model") == "mockllm/model" and order.get("task") == "support"


def test_inspect_eval_log_from_a_real_eval() -> None:
    pytest.importorskip("inspect_ai", reason="the [inspect] extra is not installed")
    check_inspect_support(load(DATA / "inspect" / "support.eval"))


def test_inspect_json_log_and_a_folder_of_logs(tmp_path: Path) -> None:
    pytest.importorskip("inspect_ai", reason="the [inspect] extra is not installed")
    from inspect_ai.log import read_eval_log, write_eval_log

    # the same log as Inspect writes it in its JSON format (what `inspect log convert` does)
    write_eval_log(read_eval_log(str(DATA / "inspect" / "support.eval")), str(tmp_path / "support.json"), format="json")
    check_inspect_support(load(tmp_path / "support.json"))
    # a log folder: every .eval and .json log in it; two runs of one task repeat its ids
    (tmp_path / "logs").mkdir()
    shutil.copy(DATA / "inspect" / "support.eval", tmp_path / "logs" / "run1.eval")
    assert len(load(tmp_path / "logs")) == 4
    shutil.copy(tmp_path / "support.json", tmp_path / "logs" / "run2.json")
    err = load_error(tmp_path / "logs")
    assert err.message.startswith("duplicate id 'support/order/1'") and err.file == str(tmp_path / "logs" / "run2.json")


def test_inspect_corrupted_logs(tmp_path: Path) -> None:
    pytest.importorskip("inspect_ai", reason="the [inspect] extra is not installed")
    from inspect_ai.log import read_eval_log, write_eval_log

    path = tmp_path / "bad.json"
    write_eval_log(read_eval_log(str(DATA / "inspect" / "support.eval")), str(path), format="json")
    log = json.loads(path.read_text(encoding="utf-8"))
    log["samples"][1]["messages"][1]["role"] = "wizard"
    path.write_text(json.dumps(log), encoding="utf-8")
    err = load_error(path)
    assert (err.file, err.key) == (str(path), "samples[1].messages[1].role")
    assert err.message.startswith("not a valid Inspect AI log: Input should be 'system'")
    cut = tmp_path / "cut.eval"
    data = (DATA / "inspect" / "support.eval").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    err = load_error(cut)
    assert err.file == str(cut) and err.message.startswith("cannot read the Inspect AI log: ")


def test_inspect_without_the_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in [m for m in sys.modules if m == "inspect_ai" or m.startswith("inspect_ai.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "inspect_ai", None)  # as if not installed: importing it fails
    err = load_error(DATA / "inspect" / "support.eval")
    assert str(err.file).endswith("support.eval")
    assert err.message == "reading Inspect AI logs needs the inspect_ai package: pip install 'pytest-failmodes[inspect]'"
