"""Dataset loaders: JSONL, JSON array, CSV; ``fields:`` mapping; one-line errors."""

from __future__ import annotations

import gc
import json
import warnings
from pathlib import Path

import pytest

from pytest_failmodes.dataset import DatasetSpec, iter_rows, iter_traces
from pytest_failmodes.errors import DatasetError
from pytest_failmodes.trace import Trace


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def load(path: Path, **fields: str) -> list[tuple[int, Trace]]:
    return list(iter_traces(DatasetSpec(path, fields)))


def load_error(path: Path, **fields: str) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load(path, **fields)
    text = str(info.value)
    assert "\n" not in text and "\r" not in text, f"error spans lines: {text!r}"
    return info.value


# -- happy paths --------------------------------------------------------------


def test_jsonl_rows_with_their_line_numbers_blank_lines_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.jsonl",
        '{"id": "a", "input": "hi", "output": "hello"}\n'
        "\n"
        '{"id": "b", "output": "bye", "route": "billing", "turns": 3}\n'
        "   \n",
    )
    rows = load(path)
    assert [line for line, _ in rows] == [1, 3]
    first, second = (t for _, t in rows)
    assert (first.id, first.input, first.output, first.metadata) == ("a", "hi", "hello", {})
    assert second.input == ""  # absent input becomes empty text
    assert second.metadata == {"route": "billing", "turns": 3}


def test_ndjson_suffix_and_crlf_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path, "t.ndjson", '{"id": "a", "output": "x"}\r\n{"id": "b", "output": "y"}\r\n')
    assert [(line, t.id) for line, t in load(path)] == [(1, "a"), (2, "b")]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    for name, body in [
        ("bom.jsonl", '{"id": "a", "output": "x"}\n'),
        ("bom.json", '[{"id": "a", "output": "x"}]'),
        ("bom.csv", "id,output\na,x\n"),
    ]:
        path = write(tmp_path, name, b"\xef\xbb\xbf" + body.encode())
        assert [t.id for _, t in load(path)] == ["a"], name


def test_json_array_elements_get_the_line_they_start_on(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.json",
        "[\n"
        '  {"id": "a", "output": "x"},\n'
        "\n"
        '  {"id": "b",\n'
        '   "output": "multi\\nline"},   {"id": "c", "output": "z"}\n'
        "]\n",
    )
    rows = load(path)
    assert [(line, t.id) for line, t in rows] == [(2, "a"), (4, "b"), (5, "c")]
    assert rows[1][1].output == "multi\nline"


def test_json_array_on_a_single_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.json", json.dumps([{"id": i, "output": "x"} for i in range(3)]))
    assert [(line, t.id) for line, t in load(path)] == [(1, "0"), (1, "1"), (1, "2")]


def test_csv_rows_lines_account_for_quoted_multiline_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        "id,input,output,route\n"
        'a,hi,"first\nsecond",billing\n'
        "b,q,r,\n"
        'c,"x\r\n\r\ny",z,tech\n'
        "d,q,r,tech\n",
    )
    rows = load(path)
    assert [(line, t.id) for line, t in rows] == [(2, "a"), (4, "b"), (5, "c"), (8, "d")]
    traces = {t.id: t for _, t in rows}
    assert traces["a"].output == "first\nsecond"
    assert traces["a"].metadata == {"route": "billing"}
    assert traces["b"].metadata == {}  # empty CSV cells are absent, not ""
    assert traces["c"].input == "x\r\n\r\ny"


def test_csv_cells_holding_json_for_structured_fields(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "where is my order?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": '{"order": 7}'}}],
        },
        {"role": "assistant", "content": "on its way"},
    ]
    path = write(
        tmp_path,
        "t.csv",
        "id,messages,metadata,labels,route\n"
        + "a,"
        + _csv_quote(json.dumps(messages))
        + ","
        + _csv_quote(json.dumps({"persona": "new", "route": "from-json"}))
        + ","
        + _csv_quote(json.dumps({"verdict": "ok"}))
        + ",billing\n"
        + 'b,"[{""role"": ""assistant"", ""content"": ""hey""}]",,,\n',
    )
    (_, a), (_, b) = load(path)
    assert a.input == "where is my order?"
    assert a.output == "on its way"
    assert [(c.name, c.arguments) for c in a.tool_calls] == [("lookup", {"order": 7})]
    assert a.labels == {"verdict": "ok"}
    # an explicit metadata object is merged over the other columns
    assert a.metadata == {"route": "from-json", "persona": "new"}
    assert b.output == "hey" and b.metadata == {} and b.labels == {}


def _csv_quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def test_fields_mapping_with_dotted_paths_rest_becomes_metadata(tmp_path: Path) -> None:
    row = {
        "trace_id": 17,
        "request": {"query": "refund please", "lang": "en"},
        "response": {"text": "sure"},
        "route": "billing",
        "human": {"verdict": "bad"},
    }
    path = write(tmp_path, "t.jsonl", json.dumps(row) + "\n")
    [(line, trace)] = load(
        path, id="trace_id", input="request.query", output="response.text", labels="human"
    )
    assert line == 1
    assert trace.id == "17"
    assert trace.input == "refund please"
    assert trace.output == "sure"
    assert trace.labels == {"verdict": "bad"}
    # a column mapped by name is consumed; the rest (incl. parents of dotted paths) is metadata
    assert "trace_id" not in trace.metadata and "human" not in trace.metadata
    assert trace.metadata["route"] == "billing"
    assert trace.metadata["request"] == {"query": "refund please", "lang": "en"}
    assert trace.get("request.lang") == "en"


def test_fields_mapping_for_csv_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "uid,question,answer,route\nu1,q1,a1,tech\n")
    [(_, trace)] = load(path, id="uid", input="question", output="answer")
    assert (trace.id, trace.input, trace.output) == ("u1", "q1", "a1")
    assert trace.metadata == {"route": "tech"}


def test_key_with_a_dot_in_the_row_wins_over_a_dotted_path(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", json.dumps({"id": "a", "a.b": "flat", "a": {"b": "nested"}}) + "\n")
    [(_, trace)] = load(path, output="a.b")
    assert trace.output == "flat"


def test_explicit_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "traces.txt", '{"id": "a", "output": "x"}\n')
    assert [t.id for _, t in iter_traces(DatasetSpec(path, {}, "jsonl"))] == ["a"]


def test_iter_rows_yields_raw_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '[1]\n\n"x"\n')
    assert list(iter_rows(path, "jsonl")) == [(1, [1]), (3, "x")]


def test_loading_is_lazy(tmp_path: Path) -> None:
    # the second row is broken, yet the first comes out before the error
    path = write(tmp_path, "t.jsonl", '{"id": "a", "output": "x"}\n{oops\n')
    it = iter_traces(DatasetSpec(path, {}))
    assert next(it)[1].id == "a"
    with pytest.raises(DatasetError):
        next(it)


# -- errors -------------------------------------------------------------------


def test_malformed_jsonl_row(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"id": "a", "output": "x"}\n\n{"id": "b", "output": }\n')
    err = load_error(path)
    assert err.line == 3
    assert str(err).startswith(f"{path}:3: malformed JSON: ")
    assert "column 23" in str(err)


def test_malformed_json_array_element_on_a_later_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.json", '[\n  {"id": "a", "output": "x"},\n\n  {"id": "b", "output": nope}\n]\n')
    err = load_error(path)
    assert err.line == 4
    assert str(err).startswith(f"{path}:4: malformed JSON")


def test_json_array_missing_comma_and_trailing_content(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", '[\n{"id": "a", "output": "x"}\n{"id": "b", "output": "y"}\n]')
    err = load_error(path)
    assert (err.line, err.message) == (3, "malformed JSON: expected ',' or ']' between traces")

    path = write(tmp_path, "b.json", '[{"id": "a", "output": "x"}]\n\n[]\n')
    err = load_error(path)
    assert (err.line, err.message) == (3, "unexpected content after the closing ']'")


def test_json_document_that_is_one_object_is_one_trace(tmp_path: Path) -> None:
    # one trace per file (a folder of them is a dataset); the line is where it starts
    path = write(tmp_path, "t.json", '\n\n{"id": "a", "output": "x"}')
    assert [(line, t.id) for line, t in load(path)] == [(3, "a")]
    path = write(tmp_path, "u.json", '{"id": "a", "output": "x"} 1')
    assert str(load_error(path)) == f"{path}:1: unexpected content after the closing '}}'"


def test_json_document_that_is_a_scalar(tmp_path: Path) -> None:
    path = write(tmp_path, "t.json", '\n\n"hello"')
    assert str(load_error(path)) == f"{path}:3: expected a JSON array of traces (or one JSON object)"


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        ("[1, 2]", "an array"),
        ('"text"', "a string"),
        ("3", "a number"),
        ("-2.5", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
    ],
)
def test_non_object_row(tmp_path: Path, row: str, kind: str) -> None:
    path = write(tmp_path, "t.jsonl", '{"id": "a", "output": "x"}\n' + row + "\n")
    err = load_error(path)
    assert str(err) == f"{path}:2: expected an object with trace fields, got {kind}"


def test_non_object_json_array_element(tmp_path: Path) -> None:
    path = write(tmp_path, "t.json", '[\n  {"id": "a", "output": "x"},\n  ["b"]\n]')
    assert str(load_error(path)) == f"{path}:3: expected an object with trace fields, got an array"


@pytest.mark.parametrize("row", ['{"output": "x"}', '{"id": "", "output": "x"}', '{"id": null, "output": "x"}'])
def test_missing_id(tmp_path: Path, row: str) -> None:
    path = write(tmp_path, "t.jsonl", '{"id": "a", "output": "x"}\n' + row + "\n")
    assert str(load_error(path)) == f"{path}:2: id: missing id"


def test_missing_mapped_id_names_the_source_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"trace_id": "a", "output": "x"}\n{"output": "y"}\n')
    err = load_error(path, id="trace_id")
    assert str(err) == f"{path}:2: trace_id: missing id (mapped from 'trace_id')"


def test_missing_id_in_a_csv_cell(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "id,output\na,x\n,y\n")
    assert str(load_error(path)) == f"{path}:3: id: missing id"


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.jsonl",
        '{"id": "a", "output": "x"}\n{"id": "b", "output": "x"}\n\n{"id": "b", "output": "y"}\n',
    )
    assert str(load_error(path)) == f"{path}:4: id: duplicate id 'b' (first seen on line 2)"


def test_duplicate_numeric_and_string_ids_are_the_same_id(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"id": 1, "output": "x"}\n{"id": "1", "output": "y"}\n')
    err = load_error(path)
    assert (err.line, err.key) == (2, "id")
    assert "duplicate id '1' (first seen on line 1)" in str(err)


def test_duplicate_id_in_a_one_line_json_array(tmp_path: Path) -> None:
    path = write(tmp_path, "t.json", '[{"id": "a", "output": "x"}, {"id": "a", "output": "y"}]')
    assert str(load_error(path)) == f"{path}:1: id: duplicate id 'a' (first seen on line 1)"


def test_duplicate_mapped_id_names_the_source_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "uid,output\nu,x\nv,x\nu,y\n")
    assert str(load_error(path, id="uid")) == f"{path}:4: uid: duplicate id 'u' (first seen on line 2)"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("e.jsonl", ""),
        ("e2.jsonl", "\n  \n\n"),
        ("e.json", "[]"),
        ("e2.json", " [ \n ] \n"),
        ("e.csv", ""),
        ("e2.csv", "id,output\n"),
    ],
)
def test_empty_dataset(tmp_path: Path, name: str, body: str) -> None:
    path = write(tmp_path, name, body)
    assert str(load_error(path)) == f"{path}: dataset is empty: no traces found"


def test_empty_json_file_is_not_an_array(tmp_path: Path) -> None:
    path = write(tmp_path, "t.json", "")
    assert str(load_error(path)) == f"{path}:1: expected a JSON array of traces (or one JSON object)"


@pytest.mark.parametrize(
    ("name", "body", "line"),
    [
        ("u.jsonl", b'{"id": "a", "output": "x"}\n\n{"id": "b", "output": "\xff"}\n', 3),
        ("u.json", b'[\n{"id": "a", "output": "x"},\n{"id": "b",\n "output": "\xfe"}]', 4),
        ("u.csv", b"id,output\na,x\nb,\xc3\n", 3),
        ("u2.csv", b'id,output\na,"x\ny\xff"\nb,z\n', 3),
        ("u3.csv", b"id,outp\xe9t\na,x\n", 1),
        # far past the first read chunk: the line must still be right
        ("u4.csv", b"id,output\n" + b"".join(b"%d,x\n" % i for i in range(5000)) + b"z,\xff\n", 5002),
    ],
)
def test_invalid_utf8_names_the_line(tmp_path: Path, name: str, body: bytes, line: int) -> None:
    path = write(tmp_path, name, body)
    err = load_error(path)
    assert err.line == line
    assert "not valid UTF-8 (byte 0x" in str(err)
    assert str(err).startswith(f"{path}:{line}: ")


def test_csv_row_with_too_many_cells(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", 'id,output,route\na,x,r\nb,"y\nz",r,extra,more\n')
    assert str(load_error(path)) == f"{path}:3: row has 5 cells; the header has 3"


def test_csv_row_with_too_few_cells(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "id,output,route\na,x,r\nb,y\n")
    assert str(load_error(path)) == f"{path}:3: route: row has too few cells; no value for column 'route'"


def test_csv_duplicate_header_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "id,output,id\na,x,b\n")
    assert str(load_error(path)) == f"{path}:1: duplicate column 'id' in the header"


def test_csv_quote_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", 'id,output\na,x\nb,"y"z\n')
    err = load_error(path)
    assert err.line == 3 and err.message.startswith("malformed CSV: ")

    # an unclosed quote swallows the rest of the file: point at the row that opened it
    path = write(tmp_path, "b.csv", 'id,output\na,x\nb,"y\nc,z\nd,w\n')
    err = load_error(path)
    assert err.line == 3 and err.message.startswith("malformed CSV: ")


def test_csv_cell_with_invalid_json_for_a_structured_field(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "id,output,metadata\na,x,{}\nb,y,{not json\n")
    assert str(load_error(path)) == f"{path}:3: metadata: expected JSON in this CSV cell"


def test_csv_mapped_structured_field_names_the_source_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "id,chat\na,[oops\n")
    assert str(load_error(path, messages="chat")) == f"{path}:2: chat: expected JSON in this CSV cell"


def test_row_without_output_or_messages(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"id": "a", "input": "q"}\n')
    err = load_error(path)
    assert err.line == 1
    assert err.message == "a trace needs an 'output' or 'messages'"


def test_wrong_type_in_a_field_names_the_field_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.jsonl",
        '{"id": "a", "output": "x"}\n{"id": "b", "messages": [{"role": "user", "content": "q"}, {"content": "x"}]}\n',
    )
    err = load_error(path)
    assert str(err) == f"{path}:2: messages[1].role: required field is missing"

    # a field mapped onto labels means it: a list there is an error naming its source
    path = write(tmp_path, "l.jsonl", '{"id": "a", "output": "x", "verdicts": ["bad"]}\n')
    err = load_error(path, labels="verdicts")
    assert (err.line, err.key) == (1, "verdicts")
    assert "valid dictionary" in err.message


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("l.jsonl", '{"id": "a", "output": "x", "labels": "refund, billing", "metadata": 3}\n'),
        ("l.csv", "id,output,labels,metadata\na,x,\"refund, billing\",3\n"),
    ],
)
def test_a_column_merely_named_labels_or_metadata_is_metadata(tmp_path: Path, name: str, body: str) -> None:
    # a free-text "labels" column from someone's export must not break the dataset
    [(_, trace)] = load(write(tmp_path, name, body))
    assert trace.labels == {}
    assert trace.metadata["labels"] == "refund, billing"
    assert trace.metadata["metadata"] in (3, "3")


def test_wrong_type_in_a_mapped_field_names_the_source(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", '{"id": "a", "chat": "not a list"}\n')
    err = load_error(path, messages="chat")
    assert (err.line, err.key) == (1, "chat")


def test_unknown_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "traces.txt", '{"id": "a", "output": "x"}\n')
    err = load_error(path)
    assert err.line is None
    assert str(err) == (
        f"{path}: cannot tell the format from the suffix '.txt'; "
        "use .jsonl, .json or .csv, or set dataset.format"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    err = load_error(path)
    assert str(err).startswith(f"{path}: cannot open dataset: ")


def test_error_path_is_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    path = write(tmp_path, "data/t.jsonl", "[1]\n")
    monkeypatch.chdir(tmp_path)
    assert str(load_error(path)) == "data/t.jsonl:1: expected an object with trace fields, got an array"


def test_csv_file_is_closed_when_a_row_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "id,output\na,x\n,y\nc,z\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_error(path)
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_jsonl_rows_read_as_json_loads_reads_each_line(tmp_path: Path) -> None:
    """Rows go straight to json's C scanner; every other shape of line still reads as json.loads reads it."""
    lines = [
        b'\xef\xbb\xbf{"id": "bom", "n": 1}\n',  # a BOM on the first line
        b'{"id": "crlf", "n": [1, {"a": null}]}\r\n',
        b'  {"id": "padded", "n": 2}  \t\n',
        b'{"id": "nan", "n": NaN}\n',
        b'{"id": "accents", "s": "caf\xc3\xa9 \\u00e9 \\ud83d\\ude00"}\n',
        b"\n",
        b'{"id": "last", "n": 3}',  # no line break at the end
    ]
    path = write(tmp_path, "rows.jsonl", b"".join(lines))
    got = list(iter_rows(path, "jsonl"))
    want = [(i, json.loads(raw)) for i, raw in enumerate(lines, 1) if raw.strip()]
    assert repr(got) == repr(want)  # repr: NaN is not equal to itself


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"id": "s", "s": "\xed\xa0\x80"}\n', "not valid UTF-8 (byte 0xed); save the file as UTF-8"),
        (b'{"id": "a"} {"id": "b"}\n', "malformed JSON: Extra data at column 13"),
        (b'{"id": "a"\n', "malformed JSON: Expecting ',' delimiter at column 11"),
    ],
    ids=["encoded-surrogate", "two-values", "truncated"],
)
def test_jsonl_row_the_fast_path_refuses_is_explained(tmp_path: Path, raw: bytes, message: str) -> None:
    path = write(tmp_path, "rows.jsonl", b'{"id": "ok"}\n' + raw)
    with pytest.raises(DatasetError) as info:
        list(iter_rows(path, "jsonl"))
    assert (info.value.line, info.value.message) == (2, message)
