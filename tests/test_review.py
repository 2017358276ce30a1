"""failmodes review without a browser: notes, saturation, sampling, the server's guards, the CLI."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import review_data
from pytest_failmodes.analysis.notes import Note, NotesFile, agreement, cohen_kappa, latest_notes, read_notes
from pytest_failmodes.analysis.review import CSP, ReviewApp, ReviewServer
from pytest_failmodes.analysis.sampling import Outcome, load_reports, sample
from pytest_failmodes.analysis.saturation import saturation
from pytest_failmodes.cli import main
from pytest_failmodes.errors import FailmodesError

# -- notes ------------------------------------------------------------------------------------


def test_latest_line_per_trace_and_reviewer_wins(tmp_path: Path) -> None:
    notes = NotesFile(tmp_path / "n.jsonl")
    notes.append(Note("t1", "ana", "fail", note="first"))
    notes.append(Note("t1", "bo", "pass"))
    notes.append(Note("t1", "ana", "pass", note="second thoughts"))
    notes.append(Note("t2", "ana", "fail"))
    notes.append(Note("t2", "ana", retracted=True))
    latest = latest_notes(read_notes(tmp_path / "n.jsonl"))
    assert latest[("t1", "ana")].note == "second thoughts"
    assert latest[("t1", "bo")].verdict == "pass"
    assert ("t2", "ana") not in latest
    assert len((tmp_path / "n.jsonl").read_text().splitlines()) == 5


def test_a_torn_last_line_is_skipped_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text('{"trace_id": "t1", "reviewer": "ana", "verdict": "fail"}\n{"trace_id": "t2", "revi')
    notes = NotesFile(path)
    assert [n.trace_id for n in notes.notes] == ["t1"]
    notes.append(Note("t3", "ana", "pass"))
    assert [n.trace_id for n in read_notes(path)] == ["t1", "t3"]


def test_a_bad_note_line_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text('{"trace_id": "t1", "reviewer": "ana", "verdict": "fial"}\n{"trace_id": "t2", "reviewer": "ana"}\n')
    with pytest.raises(FailmodesError, match=r"n.jsonl:1: verdict: must be one of pass, fail, defer or null, got 'fial'; did you mean 'fail'\?"):
        list(read_notes(path))
    path.write_text('{"trace": "t1", "reviewer": "ana"}\n')
    with pytest.raises(FailmodesError, match=r"n.jsonl:1: trace: unknown key; did you mean 'trace_id'\?"):
        list(read_notes(path))
    path.write_text('{"trace_id": "t1"\n{"trace_id": "t2", "reviewer": "ana"}\n')
    with pytest.raises(FailmodesError, match=r"n.jsonl:1: malformed JSON"):
        list(read_notes(path))


def test_cohen_kappa_known_values() -> None:
    # the textbook 2x2 table: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["p", "f"], ["p", "f"]) == pytest.approx(1.0)
    assert cohen_kappa(["p", "p"], ["p", "p"]) is None  # one label only: chance agreement is 1
    assert cohen_kappa([], []) is None


def test_agreement_waits_for_twenty_common_traces() -> None:
    notes = [Note(f"t{i}", r, "fail" if i % 2 else "pass") for i in range(19) for r in ("ana", "bo")]
    notes.append(Note("t99", "ana", "defer"))
    (a,) = agreement(latest_notes(notes), "ana")
    assert (a.other, a.common, a.agree, a.shown, a.kappa) == ("bo", 19, 19, False, 1.0)
    notes.append(Note("t19", "ana", "pass"))
    notes.append(Note("t19", "bo", "fail"))
    (a,) = agreement(latest_notes(notes), "ana")
    assert a.shown and a.common == 20 and a.agree == 19


# -- saturation -------------------------------------------------------------------------------


def test_good_turing_chance_of_a_new_tag() -> None:
    tags = [("a",), ("a",), ("b",), ("c", "a"), (), ("b",), ("d",), ("A ",)]
    notes = [Note(f"t{i}", "ana", "fail", tags=t, ts=i) for i, t in enumerate(tags)]
    s = saturation(notes)
    # a x4 (case and spaces folded), b x2, c x1, d x1: two singletons over eight notes
    assert s.tags == {"a": 4, "b": 2, "c": 1, "d": 1}
    assert s.singletons == 2 and s.notes == 8
    assert s.p_new == pytest.approx(0.25)
    low, high = s.interval  # type: ignore[misc]
    assert low < 0.25 < high
    assert s.new_recent == ["a", "b", "c", "d"]  # all within the last 20
    assert not s.suggest_stop  # fewer than 20 notes


def test_saturation_suggests_stopping_once_new_tags_dry_up() -> None:
    notes = [Note(f"t{i}", "ana", "fail", tags=(f"tag{i}",), ts=i) for i in range(5)]
    notes += [Note(f"u{i}", "ana", "fail", tags=(f"tag{i % 5}",), ts=10 + i) for i in range(60)]
    notes.append(Note("draft", "ana", None, note="typing", tags=("new",), ts=100))
    s = saturation(notes)
    assert s.notes == 65 and s.singletons == 0 and s.p_new == 0.0
    assert s.new_recent == [] and s.suggest_stop
    fresh = saturation([*notes, Note("z", "ana", "fail", tags=("novel",), ts=200)], threshold=0.01)
    assert fresh.p_new == pytest.approx(1 / 66) and fresh.new_recent == ["novel"] and not fresh.suggest_stop


# -- sampling ---------------------------------------------------------------------------------


def test_random_and_stratified_samples_are_seeded() -> None:
    traces = review_data.traces(review_data.rows(12))
    assert sample(traces, "random", seed=3) == sample(traces, "random", seed=3)
    assert sorted(sample(traces, "random", seed=3)) == list(range(12))
    assert sample(traces, "random", seed=3) != sample(traces, "random", seed=4)
    strat = sample(traces, "stratified", by=["route"], seed=1, limit=4)
    assert len({traces[i].metadata["route"] for i in strat[:2]}) == 2  # both strata within the first two
    assert sample(traces, "all", skip={"t00", "t01"}, limit=2) == [2, 3]


def test_a_field_that_matches_nothing_is_an_error() -> None:
    traces = review_data.traces(review_data.rows(4))
    with pytest.raises(FailmodesError, match=r"no trace has a field 'rout'; did you mean 'route'\?"):
        sample(traces, "stratified", by=["rout"])
    with pytest.raises(FailmodesError, match=r"--sample stratified needs --by FIELD"):
        sample(traces, "stratified")
    with pytest.raises(FailmodesError, match=r"unknown --sample 'failure'; did you mean 'failures'\?"):
        sample(traces, "failure")
    with pytest.raises(FailmodesError, match=r"no trace qualifies \(values of 'route': billing, shipping"):
        sample(traces, "failures", outcome=Outcome("route"))


def test_unexplained_and_uncertain_from_a_real_report(project: Any) -> None:
    data = review_data.rows(6)
    data[1]["messages"][-1]["content"] = "I might have cancelled it, not sure."
    project.traces(data)
    project.definitions(
        """
        dataset: data/traces.jsonl
        failure_modes:
          - name: hedges
            rule: {regex: "(?i)not sure"}
        """
    )
    result = project.run("--failmodes-report=r.json")
    assert result.ret == 0
    reports = load_reports([project.pytester.path / "r.json"])
    traces = review_data.traces(data)
    failed = Outcome("failed")  # t00 and t03 failed (i % 3 == 0)
    assert sorted(traces[i].id for i in sample(traces, "failures", outcome=failed, reports=reports)) == ["t00", "t01", "t03"]
    # failed by the outcome, explained by no mode
    assert sorted(traces[i].id for i in sample(traces, "unexplained", outcome=failed, reports=reports)) == ["t00", "t03"]
    # judge says fail on t01 where the outcome passed; outcome fail on t00, t03 where no mode fails
    assert sorted(traces[i].id for i in sample(traces, "disagreements", outcome=failed, reports=reports)) == ["t00", "t01", "t03"]
    # the rule's reason quotes "not sure": a hedge
    assert [traces[i].id for i in sample(traces, "uncertain", reports=reports)] == ["t01"]
    with pytest.raises(FailmodesError, match="--sample unexplained needs --outcome FIELD and --report r.json"):
        sample(traces, "unexplained", outcome=failed)


def test_uncertain_finds_verdicts_that_changed_between_runs(tmp_path: Path) -> None:
    traces = review_data.traces(review_data.rows(3))
    one = review_data.report(tmp_path / "a.json", {"t00": ("fail", "x"), "t01": ("pass", ""), "t02": ("pass", "")})
    two = review_data.report(tmp_path / "b.json", {"t00": ("fail", "x"), "t01": ("fail", "y"), "t02": ("pass", "")})
    assert [traces[i].id for i in sample(traces, "uncertain", reports=load_reports([one, two]))] == ["t01"]
    other = review_data.report(tmp_path / "c.json", {"z1": ("fail", "x")})
    with pytest.raises(FailmodesError, match="no trace id of the dataset is in .*c.json"):
        sample(traces, "uncertain", reports=load_reports([other]))


# -- the server -------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReviewServer]:
    app = ReviewApp.build(review_data.traces(review_data.rows(3)), tmp_path / "notes.jsonl", reviewer="ana")
    srv = ReviewServer(app)
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _request(srv: ReviewServer, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={k.replace("_", "-"): v for k, v in headers.items()})
    res = conn.getresponse()
    out = res.status, dict(res.getheaders()), res.read()
    conn.close()
    return out


def test_every_request_needs_the_token(server: ReviewServer) -> None:
    token = server.app.token
    assert server.server_address[0] == "127.0.0.1"
    status, headers, body = _request(server, "GET", f"/{token}/")
    assert status == 200 and b"failmodes review" in body
    assert headers["Content-Security-Policy"] == CSP and "'unsafe-inline'" not in CSP
    assert headers["Referrer-Policy"] == "no-referrer"
    other = token[:-1] + ("y" if token[-1] == "x" else "x")  # one character off
    for path in ("/", "/api/state", f"/{other}/api/state", f"/x{token}/", "/static/review.js", f"/api/trace?q=0&t={token}"):
        status, _h, body = _request(server, "GET", path)
        assert status == 403, path
        assert b"forbidden" in body and b"cancel" not in body.lower()
    assert _request(server, "GET", f"/{token}/api/trace?q=0")[0] == 200
    assert _request(server, "GET", f"/{token}/api/trace?q=7")[0] == 404


def test_other_origins_and_hosts_are_refused(server: ReviewServer) -> None:
    token = server.app.token
    port = server.server_address[1]
    me = f"http://127.0.0.1:{port}"
    body = {"q": 0, "verdict": "fail", "note": "x", "tags": [], "commit": True}
    assert _request(server, "GET", f"/{token}/api/state", Origin="https://evil.example")[0] == 403
    assert _request(server, "GET", f"/{token}/api/state", Sec_Fetch_Site="cross-site")[0] == 403
    # a DNS name rebound to 127.0.0.1
    assert _request(server, "GET", f"/{token}/api/state", Host=f"evil.example:{port}")[0] == 403
    assert _request(server, "POST", f"/{token}/api/note", body, Origin="https://evil.example", Content_Type="application/json")[0] == 403
    assert _request(server, "POST", f"/{token}/api/note", body, Content_Type="application/json")[0] == 403  # no Origin
    assert _request(server, "POST", f"/{token}/api/note", body, Origin=me, Content_Type="text/plain")[0] == 415
    assert not (server.app.notes.path.exists() and server.app.notes.path.read_text())
    status, _h, raw = _request(server, "POST", f"/{token}/api/note", body, Origin=me, Content_Type="application/json")
    assert status == 200 and json.loads(raw)["state"]["done"] == 1
    bad = {**body, "verdict": "maybe"}
    status, _h, raw = _request(server, "POST", f"/{token}/api/note", bad, Origin=me, Content_Type="application/json")
    assert status == 400 and b"'verdict' must be one of pass, fail, defer" in raw


def test_verdicts_are_refused_before_the_reviewers_own_note(server: ReviewServer) -> None:
    token = server.app.token
    status, _h, raw = _request(server, "GET", f"/{token}/api/verdicts?q=0")
    assert status == 409 and b"write your own note" in raw


# -- the command line -------------------------------------------------------------------------


def test_failmodes_review_prints_the_url_and_serves(tmp_path: Path) -> None:
    data = review_data.write(tmp_path / "traces.jsonl", review_data.rows(5))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_failmodes.cli", "review", str(data), "--no-browser", "--notes", str(tmp_path / "n.jsonl"),
         "--reviewer", "ana", "--sample", "random", "--limit", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"reviewing 3 of 5 traces from {data}; notes go to {tmp_path / 'n.jsonl'} (reviewer ana)")
        url = proc.stdout.readline().strip().removeprefix("open ")
        assert url.startswith("http://127.0.0.1:")
        host, _, rest = url.removeprefix("http://").partition("/")
        conn = http.client.HTTPConnection(host, timeout=10)
        conn.request("GET", "/" + rest + "api/state")
        state = json.loads(conn.getresponse().read())
        assert state["queue"] == 3 and state["total"] == 5
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "failmodes review: missing.jsonl: no such dataset or definition file"),
        (["DATA", "--sample", "stratified", "--by", "persona"], "failmodes review: no trace has a field 'persona'"),
        (["DATA", "--sample", "unexplained", "--outcome", "failed"], "failmodes review: --sample unexplained needs --outcome FIELD and --report r.json"),
        (["DATA", "--report", "nope.json", "--sample", "failures"], "failmodes review: nope.json: no such report"),
        (["DATA", "--field", "ouput=x"], "failmodes review: --field 'ouput=x': 'ouput' is not a trace field; did you mean 'output'?"),
    ],
)
def test_bad_review_arguments_get_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    review_data.write(tmp_path / "d.jsonl", review_data.rows(3))
    code = main(["review", *[("d.jsonl" if a == "DATA" else a) for a in args], "--no-browser"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1


def test_notes_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = NotesFile(tmp_path / "n.jsonl")
    for i in range(6):
        notes.append(Note(f"t{i:02d}", "ana", "fail" if i % 2 else "pass", tags=("no policy check",) if i < 4 else (f"t{i}",)))
        notes.append(Note(f"t{i:02d}", "bo", "fail"))
    data = review_data.write(tmp_path / "d.jsonl", review_data.rows(6))
    assert main(["notes", "summary", str(tmp_path / "n.jsonl"), "--dataset", str(data), "--by", "route", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "12 notes with a verdict, by 2 reviewer(s)" in out
    assert "no policy check" in out
    assert "route=billing (6 notes): no policy check 2, t5 1" in out
    assert "ana vs bo: 6 traces in common; kappa needs 20" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    ana = summary["reviewers"]["ana"]["saturation"]
    assert ana["singletons"] == 2 and ana["p_new"] == pytest.approx(2 / 6)
    assert main(["notes", "summary", str(tmp_path / "none.jsonl")]) == 2


def test_a_definition_file_offers_its_modes_as_tags_on_request(tmp_path: Path) -> None:
    from pytest_failmodes.analysis.review import load_source

    review_data.write(tmp_path / "d.jsonl", [{"tid": r["id"], "messages": r["messages"]} for r in review_data.rows(3)])
    (tmp_path / "bot.failmodes.yaml").write_text(
        "dataset: {path: d.jsonl, fields: {id: tid}}\n"
        "failure_modes:\n"
        "  - name: no_confirmation\n    rule: {regex: x}\n"
        "  - name: wrong_refund\n    rule: {regex: y}\n"
    )
    traces, modes, shown = load_source(tmp_path / "bot.failmodes.yaml")
    assert [t.id for t in traces] == ["t00", "t01", "t02"] and shown == str(tmp_path / "d.jsonl")
    assert modes == ["no_confirmation", "wrong_refund"]
    app = ReviewApp.build(traces, tmp_path / "n.jsonl", reviewer="ana", mode_names=modes)
    srv = ReviewServer(app)
    srv.start()
    try:
        state = json.loads(_request(srv, "GET", f"/{app.token}/api/state")[2])
        assert state["has_modes"] and "no_confirmation" not in json.dumps(state)  # not offered until asked
        status, _h, raw = _request(srv, "GET", f"/{app.token}/api/modes")
        assert status == 200 and json.loads(raw) == {"modes": ["no_confirmation", "wrong_refund"]}
    finally:
        srv.shutdown()
        srv.server_close()
