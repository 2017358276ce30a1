"""Compact run state (ids, reasons, members) and the JSON report streamed into its file."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from pytest_failmodes.compact import INTERN_LIMIT, CohortMembers, ComboTraces, Details, FirstSeen, StrColumn
from pytest_failmodes.dataset import DatasetSpec
from pytest_failmodes.engine import ModeResult, ModeSpec, Suite, evaluate
from pytest_failmodes.report.json_report import build_report, trace_records, write_report
from pytest_failmodes.report.safe import JsonArray, iter_json, json_text, write_json_atomically, write_text_atomically
from pytest_failmodes.verdict import Verdict


def test_str_column_is_a_list_of_its_strings() -> None:
    values = ["t1", "", "naïve ✓", "lone \ud83d surrogate", "t1"]
    col = StrColumn(values)

    assert len(col) == 5
    assert list(col) == values
    assert col == values
    assert [col[i] for i in range(-5, 5)] == values + values
    assert col[1:4] == values[1:4]
    with pytest.raises(IndexError):
        col[5]


def test_details_is_a_mapping_of_reason_and_evidence() -> None:
    d = Details()
    d[3] = ["too long", 612]
    d[7] = ["too long", 612]
    d[9] = ["contains 'refund'", "refund"]
    d[5] = ["placed out of order", None]  # a model call that finished late

    assert d == {3: ["too long", 612], 5: ["placed out of order", None], 7: ["too long", 612], 9: ["contains 'refund'", "refund"]}
    assert list(d) == [3, 5, 7, 9]
    assert 5 in d and 4 not in d
    assert d.get(4, ("", None)) == ("", None)
    assert d[3] is d[7]  # one stored pair for equal ones
    d[7] = ["replaced", True]
    assert d[7] == ["replaced", True] and d[3] == ["too long", 612]
    with pytest.raises(KeyError):
        d[4]


def test_details_keeps_equal_values_of_different_types_apart() -> None:
    # 1, 1.0 and True are equal keys in Python but print differently in a report
    d = Details([(0, ["r", 1]), (1, ["r", 1.0]), (2, ["r", True]), (3, ["r", [1]]), (4, ["r", {"a": 1}])])

    assert [json.dumps(v) for _k, v in d.items()] == ['["r", 1]', '["r", 1.0]', '["r", true]', '["r", [1]]', '["r", {"a": 1}]']


def test_details_stops_interning_reasons_that_never_repeat() -> None:
    d = Details((i, [f"unique reason {i}", None]) for i in range(INTERN_LIMIT + 10))

    assert len(d) == INTERN_LIMIT + 10
    assert d[INTERN_LIMIT + 5] == [f"unique reason {INTERN_LIMIT + 5}", None]
    assert len(d._intern) == INTERN_LIMIT


def test_details_spills_distinct_reasons_past_its_budget_and_reads_them_back() -> None:
    # a judge writes a new reason for every failing trace; past the budget they go to a file
    d = Details(spill_bytes=2_000)
    expected: dict[int, list[Any]] = {}
    for i in range(0, 600, 2):
        value = [f"the reply promises a refund for order {i} \u2713 \ud83d", {"span": i, "quote": [i, "x"]}]
        d[i] = value
        expected[i] = value
    d[5] = ["late model call", None]  # out of order, after spilling began
    expected[5] = ["late model call", None]
    d[10] = ["replaced after spilling", 1.0]
    expected[10] = ["replaced after spilling", 1.0]

    assert d._spill is not None and len(d._spill_ends) > 200  # most of them live in the file
    assert len(d._table) < 50
    assert d == expected
    assert list(d) == sorted(expected)
    assert d[598] == expected[598] and d.get(596) == expected[596] and d.get(599) is None
    assert dict(d.items()) == expected
    del d[598]
    assert 598 not in d and len(d) == len(expected) - 1

    import pickle

    copy = pickle.loads(pickle.dumps(d))  # a copy carries its pairs, not the file
    assert copy == d and list(copy) == list(d)

    class Unpicklable:
        def __reduce__(self) -> Any:
            raise TypeError("not this one")

    thing = Unpicklable()
    d[1000] = ["a Python detector's own evidence", thing]
    assert d[1000][1] is thing  # kept in memory, not lost


def test_iter_json_writes_what_json_text_writes() -> None:
    value = {
        "a": [1, {"b": JsonArray(iter([{"x": "\ud83d"}, [], 2.5]))}],
        "empty": JsonArray(iter(())),
        "deep": {"k": [[{}]]},
        "s": "\x1b[31m",
    }
    plain = {**value, "a": [1, {"b": [{"x": "\ud83d"}, [], 2.5]}], "empty": []}

    assert "".join(iter_json(value)).replace("\ud83d", "\\ud83d") == json_text(plain)


def _weird(trace: Any) -> Any:
    n = int(trace.id[1:])
    if n % 5 == 0:
        raise ValueError("boom\nsecond line")
    if n % 4 == 0:
        return Verdict.fail("bad \ud83d \x1b[31m \u202e", {"nested": [1, 2.5, {"x": "\ud800"}]})
    if n % 3 == 0:
        return Verdict.fail("number", 1.5)
    if n % 7 == 0:
        return Verdict.fail("flag", True)
    return n % 2 == 0


def _results(tmp_path: Path, **kwargs: Any) -> list[ModeResult]:
    rows = [
        {"id": f"t{i}", "input": "q", "output": f"answer {i}", "metadata": {"route": ["a", "b", 'c "d"'][i % 3], "task": i % 4}}
        for i in range(1, 60)
    ]
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    modes = (ModeSpec(name="weird", source="s.yaml", detector=_weird),)
    suite = Suite(
        source="s.yaml", dataset=DatasetSpec(path=data), cohorts=(("route",), ("route", "task")), modes=modes, **kwargs
    )
    return list(evaluate(suite, {"weird": _weird}, track_members=True).modes.values())


@pytest.mark.parametrize("kwargs", [{}, {"cluster_by": "task", "pair_by": ("task", "id")}])
def test_streamed_report_is_the_report_byte_for_byte(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    results = _results(tmp_path, **kwargs)
    path = tmp_path / "out" / "report.json"

    write_report(path, results, interrupted=True)

    text = path.read_text(encoding="utf-8")
    assert text == json_text(build_report(results, interrupted=True)) + "\n"
    report = json.loads(text)
    traces = report["modes"][0]["traces"]
    assert len(traces) == 59
    assert {t["verdict"] for t in traces} == {"pass", "fail", "error"}
    assert ("cluster" in traces[0]) is bool(kwargs)
    assert report["modes"][0]["cohorts"][1]["members"]
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temp file left


def test_trace_records_yield_the_failures_with_reasons(tmp_path: Path) -> None:
    (result,) = _results(tmp_path)

    failing = list(trace_records(result))

    assert failing == [t for t in build_report([result])["modes"][0]["traces"] if t["verdict"] in ("fail", "error")]
    assert failing[0] == {"id": "t2", "verdict": "fail", "reason": "detector returned True", "evidence": None}
    assert any(t["verdict"] == "error" and t["reason"].startswith("ValueError: boom") for t in failing)


def test_a_streamed_report_that_fails_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old\n")

    def items() -> Any:
        yield 1
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_json_atomically(path, {"traces": JsonArray(items())})

    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_first_seen_finds_every_duplicate_and_where_it_was_first() -> None:
    seen = FirstSeen()
    ids = [f"t{i}" for i in range(5000)]  # enough to grow the table several times

    assert all(seen.add(tid, Path("a.jsonl"), i + 1) is None for i, tid in enumerate(ids))
    assert seen.add("t4321", Path("b.jsonl"), 9) == (Path("a.jsonl"), 4322)
    assert seen.add("t0", Path("b.jsonl"), 10) == (Path("a.jsonl"), 1)
    assert seen.add("new", Path("b.jsonl"), 11) is None
    assert seen.add("new", Path("c.jsonl"), 1) == (Path("b.jsonl"), 11)
    assert len(seen) == 5001


def _members_by_hand(codes: str, keys: list[tuple[str, ...]], combos: list[int]) -> dict[str, list[int]]:
    """Each cohort's decided traces, in the order its first one occurs: a plain loop over the traces."""
    out: dict[str, list[int]] = {}
    for i, code in enumerate(codes):
        if code in "PF":
            for key in keys[combos[i]]:
                out.setdefault(key, []).append(i)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_cohort_members_are_each_cohorts_decided_traces_in_the_order_first_seen(seed: int) -> None:
    rng = random.Random(seed)
    routes, personas = ["a", "b", "c"][: rng.randint(1, 3)], ["x", "y"]
    keys = [
        ("all", f"route={r}", f"route={r} & persona={p}") if rng.random() < 0.8 else (f"route={r}",)
        for r in routes
        for p in personas
    ]
    n = rng.choice([0, 1, 7, 300])
    combos = [rng.randrange(len(keys)) for _ in range(n)]
    codes = "".join(rng.choice("PPPFFES") for _ in range(n))

    members = CohortMembers(ComboTraces(combos, keys), codes)
    expected = _members_by_hand(codes, keys, combos)

    assert list(members) == list(expected)  # the cohorts' order decides the page's cohort labels
    assert {k: list(v) for k, v in members.items()} == expected
    assert len(members) == len(expected) and bool(members) is bool(expected)
    for key in {k for held in keys for k in held} - expected.keys():  # no decided trace: not a member list
        assert key not in members
        assert members.get(key) is None
        with pytest.raises(KeyError):
            members[key]


def test_members_derived_when_read_cross_xdist_and_report_as_the_engine_kept_them(tmp_path: Path) -> None:
    (result,) = _results(tmp_path)
    assert isinstance(result.members, CohortMembers)
    expected = _members_by_hand(result.codes, *_combos_of(tmp_path))

    back = ModeResult.from_dict(json.loads(json.dumps(result.to_dict())))  # as a worker sends it

    assert {k: list(v) for k, v in result.members.items()} == expected
    assert result.to_dict()["members"] == expected
    assert back.members is not None and {k: list(v) for k, v in back.members.items()} == expected
    assert json_text(build_report([back])) == json_text(build_report([result]))


def _combos_of(tmp_path: Path) -> tuple[list[tuple[str, ...]], list[int]]:
    """The cohort keys of _results' traces (route; route & task), interned as combos by hand."""
    keys: list[tuple[str, ...]] = []
    combos = []
    for line in (tmp_path / "traces.jsonl").read_text().splitlines():
        meta = json.loads(line)["metadata"]
        route = json.dumps(meta["route"]) if '"' in meta["route"] else meta["route"]
        held = ("all", f"route={route}", f"route={route} & task={meta['task']}")
        if held not in keys:
            keys.append(held)
        combos.append(keys.index(held))
    return keys, combos


def test_text_written_in_pieces_is_the_joined_text_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    pieces = ["<p>", "x" * 100_000, "lone \ud83d surrogate", *("é" for _ in range(70_000)), "</p>\n"]

    write_text_atomically(path, iter(pieces))

    assert path.read_bytes() == "".join(pieces).replace("\ud83d", "\ufffd").encode("utf-8")

    def failing() -> Any:
        yield "<p>" * 50_000  # a block is written before the failure
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_text_atomically(path, failing())
    assert path.read_bytes() == "".join(pieces).replace("\ud83d", "\ufffd").encode("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]
