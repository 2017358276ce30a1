"""The model-call cache: keys, round trips, several processes, kills and damaged files."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_failmodes.cache import FILENAME, SCHEMA_VERSION, CacheWarning, ResultCache, cache_key

SPAWN = multiprocessing.get_context("spawn")
JOIN_TIMEOUT = 120  # generous: a hung child must fail the test, not hang the run


def verdict(i: int) -> dict[str, Any]:
    return {"status": "fail" if i % 3 else "pass", "reason": f"critique {i} — ünïcode", "tokens": i}


# --- cache_key -------------------------------------------------------------------------


def test_cache_key_is_canonical_sha256() -> None:
    a = cache_key(model="gpt-x", params={"temperature": 0, "max_tokens": 50}, template="judge-v1")
    b = cache_key(template="judge-v1", params={"max_tokens": 50, "temperature": 0}, model="gpt-x")
    assert a == b
    assert len(a) == 64 and int(a, 16) >= 0
    assert a != cache_key(model="gpt-x", params={"temperature": 0, "max_tokens": 51}, template="judge-v1")
    assert cache_key(trace={"output": "é"}) != cache_key(trace={"output": "e"})


@pytest.mark.parametrize(
    "parts",
    [
        {"api_key": "x"},
        {"params": {"API-Key": "x"}},
        {"params": {"apiKey": "x"}},
        {"params": {"extra_headers": {"Authorization": "Bearer x"}}},
        {"params": {"token": "x"}},
        {"params": {"access_token": "x"}},
        {"mode": {"secret": "x"}},
        {"params": {"Password": "x"}},
        {"trace": {"messages": [{"role": "user"}, {"client_secret": "x"}]}},
    ],
)
def test_cache_key_refuses_secret_looking_keys(parts: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="secret-looking key") as info:
        cache_key(**parts)
    assert "Bearer x" not in str(info.value)


def test_cache_key_allows_token_counts() -> None:
    assert cache_key(params={"max_tokens": 5, "max_completion_tokens": 5, "prompt_tokens": 1})


def test_cache_key_rejects_unserialisable_parts() -> None:
    with pytest.raises(TypeError):
        cache_key(trace={"x": object()})


# --- one process -----------------------------------------------------------------------


def test_put_get_persists_across_reopen(tmp_path: Path) -> None:
    directory = tmp_path / "nested" / ".failmodes"
    with ResultCache(directory) as cache:
        assert cache.get("k1") is None
        cache.put("k1", verdict(1))
        cache.put("k1", verdict(2))  # overwrite
        assert cache.get("k1") == verdict(2)
        assert (cache.hits, cache.misses, cache.writes) == (1, 1, 2)
    assert (directory / FILENAME).is_file()
    with ResultCache(directory) as cache:
        assert cache.get("k1") == verdict(2)
        assert cache.get("k2") is None


def test_disabled_cache_misses_and_writes_nothing(tmp_path: Path) -> None:
    with ResultCache(tmp_path / "c") as cache:
        cache.put("k", verdict(1))
    with ResultCache(tmp_path / "c", enabled=False) as cache:
        assert cache.get("k") is None
        cache.put("k2", verdict(2))
        assert cache.get("k2") is None
        assert cache.claim("k") is True
        assert cache.wait_for("k", timeout=0) is None
        assert (cache.hits, cache.misses, cache.writes) == (0, 2, 0)
        with pytest.raises(TypeError):
            cache.put("k3", {"x": {1, 2}})
    assert not (tmp_path / "off").exists()
    ResultCache(tmp_path / "off", enabled=False).close()
    assert not (tmp_path / "off").exists()


def test_refresh_repays_old_values_and_overwrites(tmp_path: Path) -> None:
    with ResultCache(tmp_path) as cache:
        cache.put("k", verdict(1))
    with ResultCache(tmp_path, refresh=True) as cache:
        assert cache.get("k") is None
        assert cache.claim("k") is True  # the old value does not block re-paying
        cache.put("k", verdict(2))
        assert cache.get("k") == verdict(2)  # written during this run: shared
    with ResultCache(tmp_path) as cache:
        assert cache.get("k") == verdict(2)


def test_unserialisable_values_raise_and_store_nothing(tmp_path: Path) -> None:
    with ResultCache(tmp_path) as cache:
        circular: dict[str, Any] = {}
        circular["self"] = circular
        for bad in ({"x": object()}, {"x": {1}}, circular, ["not", "a", "dict"]):
            with pytest.raises(TypeError):
                cache.put("k", bad)  # type: ignore[arg-type]
        assert cache.get("k") is None
        assert cache.writes == 0


@pytest.mark.parametrize("stored", ["{not json", '"a string"', '{"status": "pass"}'])
def test_undecodable_or_tampered_row_is_a_miss_then_overwritten(tmp_path: Path, stored: str) -> None:
    with ResultCache(tmp_path) as cache:
        cache.put("k", {"status": "fail"})
    raw = sqlite3.connect(tmp_path / FILENAME)
    with raw:  # a damaged row: its digest no longer matches, or it does not decode
        raw.execute("UPDATE results SET value = ? WHERE key = 'k'", (stored,))
    raw.close()
    with ResultCache(tmp_path) as cache:
        assert cache.get("k") is None  # never the wrong verdict
        assert cache.claim("k") is True
        cache.put("k", {"status": "fail"})
        assert cache.get("k") == {"status": "fail"}


def test_claims_between_owners(tmp_path: Path) -> None:
    with ResultCache(tmp_path, owner="a") as a, ResultCache(tmp_path, owner="b") as b:
        assert a.claim("k") is True
        assert a.claim("k") is True  # own claim: refreshed
        assert b.claim("k") is False
        assert b.wait_for("k", timeout=0.2, poll=0.01) is None  # a's claim is live: timed out
        a.release("k")
        assert b.wait_for("k", timeout=60) is None  # claim gone: b should call itself
        assert b.claim("k") is True
        assert a.claim("k", stale_after=0.0) is True  # b's claim counts as stale: taken over
        a.put("k", verdict(7))
        assert b.claim("k") is False  # a value exists
        assert b.wait_for("k", timeout=60) == verdict(7)
        assert b.hits == 1


def test_threads_share_one_instance(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(100):
                cache.put(f"{t}-{i}", verdict(i))
                assert cache.get(f"{t}-{i}") == verdict(i)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    with ResultCache(tmp_path) as cache:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert cache.writes == 800 and cache.hits == 800


# --- several processes -----------------------------------------------------------------


def _put_get_worker(directory: str, start: int, count: int) -> None:
    with ResultCache(Path(directory), owner=f"w{start}") as cache:
        for i in range(start, start + count):
            cache.get(f"key-{i}")
            cache.put(f"key-{i}", verdict(i))
            if cache.get(f"key-{i - 50}") not in (None, verdict(i - 50)):
                raise AssertionError(f"wrong value for key-{i - 50}")


def test_processes_write_at_once_without_losing_anything(tmp_path: Path) -> None:
    # 4 workers x 200 keys, each range overlapping the next by 100
    procs = [SPAWN.Process(target=_put_get_worker, args=(str(tmp_path), w * 100, 200)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(JOIN_TIMEOUT)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    with ResultCache(tmp_path) as cache:
        for i in range(500):
            assert cache.get(f"key-{i}") == verdict(i)


def _claim_worker(directory: str, name: str, start: Any, results: Any) -> None:
    with ResultCache(Path(directory), owner=name) as cache:
        start.wait(JOIN_TIMEOUT)
        if cache.claim("shared"):
            threading.Event().wait(0.3)  # the model call
            cache.put("shared", {"made_by": name})
            results.put((name, True, cache.get("shared")))
        else:
            results.put((name, False, cache.wait_for("shared", timeout=JOIN_TIMEOUT)))


def test_exactly_one_process_wins_a_claim_and_others_get_its_value(tmp_path: Path) -> None:
    start, results = SPAWN.Event(), SPAWN.Queue()
    names = [f"w{i}" for i in range(5)]
    procs = [SPAWN.Process(target=_claim_worker, args=(str(tmp_path), n, start, results)) for n in names]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = [results.get(timeout=JOIN_TIMEOUT) for _ in names]
    for proc in procs:
        proc.join(JOIN_TIMEOUT)
    winners = [name for name, won, _ in outcomes if won]
    assert len(winners) == 1
    assert sorted(name for name, _, _ in outcomes) == names
    assert all(value == {"made_by": winners[0]} for _, _, value in outcomes)


def _put_forever_worker(directory: str, first: int, ready: Any) -> None:
    with ResultCache(Path(directory)) as cache:
        for i in range(first):
            cache.put(f"key-{i}", verdict(i))
        ready.set()
        i = first
        while True:
            cache.put(f"key-{i}", verdict(i))
            i += 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_mid_run_loses_nothing_already_put(tmp_path: Path) -> None:
    ready = SPAWN.Event()
    proc = SPAWN.Process(target=_put_forever_worker, args=(str(tmp_path), 300, ready))
    proc.start()
    assert ready.wait(JOIN_TIMEOUT)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(JOIN_TIMEOUT)
    assert proc.exitcode == -signal.SIGKILL
    # filterwarnings=error: a CacheWarning here (file judged damaged) fails the test
    with ResultCache(tmp_path) as cache:
        for i in range(300):
            assert cache.get(f"key-{i}") == verdict(i)
        cache.put("after", {"ok": True})
        assert cache.get("after") == {"ok": True}
    assert not list(tmp_path.glob("*.corrupt-*"))


# --- damaged and foreign files ----------------------------------------------------------


def _filled(directory: Path, n: int = 400) -> None:
    with ResultCache(directory) as cache:
        for i in range(n):
            cache.put(f"key-{i}", {"reason": "x" * 500, "i": i})


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _future_schema(path: Path) -> None:
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    raw.close()


def _foreign(path: Path) -> None:
    path.unlink()
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("CREATE TABLE results (key TEXT, value TEXT)")
        raw.execute("INSERT INTO results VALUES ('key-1', '{}')")
    raw.close()


@pytest.mark.parametrize("damage", [_random_bytes, _truncated, _future_schema, _foreign])
def test_damaged_file_is_set_aside_with_one_warning(tmp_path: Path, damage: Any) -> None:
    _filled(tmp_path)
    path = tmp_path / FILENAME
    damage(path)
    saved = path.read_bytes()
    with pytest.warns(CacheWarning) as record:
        cache = ResultCache(tmp_path)
    assert len(record) == 1
    message = str(record[0].message)
    assert str(path) in message and "set aside" in message
    (moved,) = tmp_path.glob(f"{FILENAME}.corrupt-*")
    assert moved.name in message
    assert moved.read_bytes() == saved  # nothing the user had is deleted
    with cache:
        for i in range(400):
            assert cache.get(f"key-{i}") is None  # a fresh cache: never an old or wrong value
        cache.put("key-1", {"fresh": True})
        assert cache.get("key-1") == {"fresh": True}
    with ResultCache(tmp_path) as cache:  # no second warning: the fresh file is sound
        assert cache.get("key-1") == {"fresh": True}


def test_empty_file_is_a_fresh_cache(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"")
    with ResultCache(tmp_path) as cache:
        cache.put("k", {"a": 1})
        assert cache.get("k") == {"a": 1}


def test_no_secret_reaches_the_file(tmp_path: Path) -> None:
    secret = "sk-test-9f8e7d6c5b4a"
    call = {"model": "openai/gpt-x", "temperature": 0, "api_key": secret}
    with pytest.raises(ValueError):
        cache_key(params=call)  # the whole call, credentials included: refused
    params = {name: value for name, value in call.items() if name != "api_key"}
    with ResultCache(tmp_path) as cache:
        for i in range(50):
            key = cache_key(params=params, template="judge-v1", trace={"output": f"reply {i}"})
            cache.put(key, {"status": "pass", "critique": "fine", "usage": {"total_tokens": 12}})
        on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(FILENAME))
    assert b"sk-" not in on_disk
    assert secret.encode() not in on_disk
