"""A SQLite cache of model-call results: judge verdicts, paraphrases, target outputs.

SQLite because several processes (xdist workers) can share one file, and every
``put`` is committed before it returns, so a killed run keeps what it paid for.
The cache saves money, never changes a result: an unreadable row is a miss, a
damaged or foreign file is set aside (renamed, never deleted) with one warning,
and each row carries a digest, so damage cannot come back as a different verdict.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, final

__all__ = ["CacheWarning", "ResultCache", "cache_key", "FILENAME", "SCHEMA_VERSION"]

FILENAME = "cache.sqlite3"
#: bump when the tables change; a file with another version is set aside, not migrated
SCHEMA_VERSION = 1
_SECRET_WORDS = frozenset({"apikey", "authorization", "token", "secret", "password", "passwd"})
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE results (key TEXT PRIMARY KEY, value TEXT NOT NULL, digest TEXT NOT NULL,"
    " written_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, at REAL NOT NULL) WITHOUT ROWID",
)


# failures of this run's calls, so xdist workers share them instead of paying twice (never read by a later run)
_FAILURES = (
    "CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, owner TEXT NOT NULL, message TEXT NOT NULL,"
    " at REAL NOT NULL) WITHOUT ROWID"
)


class CacheWarning(UserWarning):
    """The cache file could not be used and was set aside; results are unaffected."""


def cache_key(**parts: object) -> str:
    """The sha256 of ``parts`` as canonical JSON: equal inputs give equal keys in any process.

    Raises ``ValueError`` for a dict key anywhere in ``parts`` that names a credential
    (``api_key``, ``Authorization``, ``token``, ...): keys are derived from call
    parameters, and a credential there would tie the cache to one key and put it in
    the key material. Pass credentials to the call, not to the cache.
    """
    _refuse_secrets(parts, "")
    return content_key(parts)


def content_key(data: object) -> str:
    """The sha256 of ``data`` as canonical JSON, with no credential check.

    For content the user's data decides (a trace's messages may well carry a
    ``token_count`` field): only call parameters go through :func:`cache_key`'s check.
    """
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _looks_secret(name: str) -> bool:
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return bool(_SECRET_WORDS.intersection(words)) or "apikey" in "".join(words)


def _refuse_secrets(obj: object, where: str) -> None:
    if isinstance(obj, dict):
        for name, value in obj.items():
            path = f"{where}.{name}" if where else str(name)
            if isinstance(name, str) and _looks_secret(name):
                # the path only, never the value: the message may end up in a log
                raise ValueError(f"cache_key: refusing secret-looking key {path!r}; credentials never enter the cache")
            _refuse_secrets(value, path)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _refuse_secrets(value, f"{where}[{i}]")


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _digest(key: str, text: str) -> str:
    return hashlib.sha256(f"{key}\0{text}".encode()).hexdigest()


def _owner_gone(owner: str) -> bool:
    """Is ``owner`` (``host:pid``, the default) a process on this host that no longer runs?

    A killed run leaves its claims behind; without this check the next run would
    wait ``stale_after`` seconds for each one. Owners on other hosts, or not in the
    default form, count as alive (their claims go stale in time).
    """
    host, _, pid = owner.rpartition(":")
    if sys.platform == "win32" or host != socket.gethostname() or not pid.isdigit():
        return False  # on Windows, os.kill(pid, 0) would terminate the process
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, under another user
        return False
    return False


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


class _Unusable(Exception):
    """The file is damaged or not ours: set it aside."""


@contextmanager
def _opening_lock(path: Path) -> Iterator[None]:
    """Serialise open-and-check across processes: two workers finding one damaged file
    would both set it aside, the second moving away the fresh cache the first made."""
    if sys.platform == "win32":  # no flock; a race there costs a fresh cache, never a wrong value
        yield
        return
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@final
class ResultCache:
    """Model-call results by key, shared by every process of a run.

    ``enabled=False`` opens nothing: gets miss, puts are dropped (after checking the
    value serialises, so a bad value fails the same way with or without a cache).
    ``refresh=True`` ignores values written before ``refresh_since`` (default: when
    this cache opened) and overwrites them; values written during the run still hit,
    so xdist workers and :meth:`wait_for` share the calls they re-pay. Pass the
    controller's start time as ``refresh_since`` so late-starting workers share too.
    ``owner`` names this process in claims. ``hits``/``misses`` count gets (a value
    received through :meth:`wait_for` is a hit), ``writes`` the values stored.
    ``shared``: the folder of a store this run's processes share (pytest-xdist's
    workers), used once this file turns out not to be writable (a read-only file, a
    full disk): new values, claims and failures go there, so the workers still pay
    for each call once; values already in this file are still read from it.
    """

    __slots__ = (
        "path", "enabled", "refresh", "owner", "hits", "misses", "writes", "problem", "unusable", "_since", "_run", "_lock",
        "_conn", "_writable", "_shared_dir", "_shared",
    )

    def __init__(
        self,
        directory: Path,
        *,
        enabled: bool = True,
        refresh: bool = False,
        owner: str | None = None,
        refresh_since: float | None = None,
        run_started: float | None = None,
        shared: Path | None = None,
    ) -> None:
        self.path = Path(directory) / FILENAME
        self.enabled = enabled
        self.refresh = refresh
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.hits = self.misses = self.writes = 0
        #: why the cache is not (fully) used this run, for one warning line; ``None`` while it works
        self.problem: str | None = None
        #: ``"<file>: cannot be used (<why>)"`` when the file could not be opened at all (problem says so too)
        self.unusable: str | None = None
        self._since = (time.time() if refresh_since is None else refresh_since) if refresh else float("-inf")
        # failures recorded since then are this run's: shared between its processes, never with a later run
        self._run = time.time() if run_started is None else run_started
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._writable = True
        self._shared_dir = shared
        self._shared: ResultCache | None = None
        if not enabled:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _opening_lock(self.path.with_name(FILENAME + ".lock")):
                try:
                    self._conn = self._open()
                    return
                except _Unusable as exc:
                    problem = str(exc)
                moved = self._set_aside()
                self._conn = self._open()  # a fresh file
        except (OSError, sqlite3.Error) as exc:
            # a file where the folder should be, a read-only folder, a locked file: the cache
            # saves money and never decides a result, so the run goes on without it
            self.enabled = False
            self._conn = None
            self.unusable = f"{self.path}: cannot be used ({_why(exc)})"
            self.problem = f"{self.unusable}; running without a cache: every call is made, none is stored"
            return
        try:
            warnings.warn(
                CacheWarning(f"{self.path}: {problem}; set aside as {moved.name}, starting a fresh cache"),
                stacklevel=2,
            )
        except BaseException:  # warnings turned into errors: do not leak the connection
            self.close()
            raise

    def _open(self) -> sqlite3.Connection:
        # autocommit (isolation_level=None): every put is its own committed transaction.
        # check_same_thread=False: the judge's event-loop thread and the main thread
        # share this connection, serialised by self._lock.
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise _Unusable("failed its integrity check")
            # checked before switching to WAL, which would rewrite a foreign file's header
            if tables := _tables(conn):
                row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() if "meta" in tables else None
                if row is None or row[0] != str(SCHEMA_VERSION):
                    raise _Unusable(f"schema version {row[0] if row else 'unknown'}, expected {SCHEMA_VERSION}")
            conn.execute("PRAGMA journal_mode = WAL")  # readers never block the one writer
            # NORMAL in WAL: a commit survives the process being killed (what we promise);
            # only power loss can undo the last few. FULL would fsync every verdict.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            if not _tables(conn):  # without flock (Windows) another process may have just made them
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
            return conn
        except sqlite3.DatabaseError as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError):  # locked, unreadable: not the file's fault
                raise
            raise _Unusable(f"not a readable cache ({exc})") from exc
        except _Unusable:
            conn.close()
            raise

    def _set_aside(self) -> Path:
        """Rename the file (and its -wal/-shm, which would otherwise replay into the fresh one)."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{FILENAME}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target, n = self.path.with_name(f"{FILENAME}.corrupt-{stamp}-{n}"), n + 1
        for suffix in ("", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                os.rename(f"{self.path}{suffix}", f"{target}{suffix}")
        return target

    def _cannot_write(self, exc: BaseException) -> None:
        """Stop writing after the first failed write (a read-only file, a full disk): values
        already stored are still read, new ones are made and used, only not stored."""
        self._writable = False
        self.problem = f"{self.path}: cannot be written ({_why(exc)}); cached results are read, new ones are not stored"
        if self._shared_dir is not None:
            self.problem += "; the xdist workers share this run's new ones"

    def _fallback(self) -> ResultCache | None:
        """The run's shared store, once this file cannot be written (opened on first use); else None."""
        if self._writable or self._shared_dir is None:
            return None
        if self._shared is None:
            self._shared = ResultCache(self._shared_dir, owner=self.owner, run_started=self._run)
        return self._shared if self._shared.enabled else None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, where busy_timeout waits for it;
        # upgrading a read transaction later would fail at once with "database is locked".
        assert self._conn is not None
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:  # SQLite may have rolled back already (disk full)
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _read(self, key: str) -> dict[str, Any] | None:
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT value, digest FROM results WHERE key = ? AND written_at >= ?", (key, self._since)
        ).fetchone()
        if row is None or row[1] != _digest(key, row[0]):
            return None
        try:
            value = json.loads(row[0])
        except ValueError:  # a damaged row is a miss; the next put overwrites it
            return None
        return value if isinstance(value, dict) else None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored value for ``key``, or ``None`` (never an exception for a bad row)."""
        with self._lock:
            try:
                value = None if self._conn is None else self._read(key)
            except sqlite3.Error as exc:  # I/O error, locked past the timeout: a miss, never a failed call
                self.problem = self.problem or f"{self.path}: cannot be read ({_why(exc)}); those results are made again"
                value = None
            shared = self._fallback() if value is None else None
            if shared is not None:
                value = shared.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` (a JSON-serialisable dict), committed before returning; drops any claim on ``key``."""
        if not isinstance(value, dict):
            raise TypeError(f"cache values must be dicts, not {type(value).__name__}")
        try:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        except ValueError as exc:  # circular reference: as unstorable as a set
            raise TypeError(f"cache value is not JSON-serialisable: {exc}") from exc
        with self._lock:
            if self._conn is None:
                return
            if self._writable:
                try:
                    with self._write() as conn:
                        conn.execute(
                            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", (key, text, _digest(key, text), time.time())
                        )
                        conn.execute("DELETE FROM claims WHERE key = ?", (key,))
                except (OSError, sqlite3.Error) as exc:
                    self._cannot_write(exc)
                else:
                    self.writes += 1
                    return
            shared = self._fallback()
        if shared is not None:
            shared.put(key, value)

    def put_many(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Store several values in one committed transaction (a batch's record of its requests:
        one commit each made thousands of them take seconds)."""
        items = list(items)
        rows = []
        now = time.time()
        for key, value in items:
            if not isinstance(value, dict):
                raise TypeError(f"cache values must be dicts, not {type(value).__name__}")
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
            rows.append((key, text, _digest(key, text), now))
        with self._lock:
            if self._conn is None:
                return
            if self._writable:
                try:
                    with self._write() as conn:
                        conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows)
                except (OSError, sqlite3.Error) as exc:
                    self._cannot_write(exc)
                else:
                    self.writes += len(rows)
                    return
            shared = self._fallback()
        if shared is not None:
            shared.put_many(items)

    def claim(self, key: str, *, stale_after: float = 120.0) -> bool:
        """May this owner make the call for ``key``? So xdist workers pay for each key once.

        ``False`` when a value is stored or another owner's claim is younger than
        ``stale_after`` seconds (then :meth:`wait_for` it). A stale claim is taken over:
        its owner died or hung. Claiming again refreshes the claim during a long call.
        """
        with self._lock:
            if self._conn is None:
                return True
            if self._writable:
                try:
                    with self._write() as conn:
                        if self._read(key) is not None or self._failure(key) is not None:
                            return False
                        row = conn.execute("SELECT owner, at FROM claims WHERE key = ?", (key,)).fetchone()
                        now = time.time()
                        if row is not None and row[0] != self.owner and row[1] > now - stale_after and not _owner_gone(row[0]):
                            return False
                        conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (key, self.owner, now))
                        return True
                except (OSError, sqlite3.Error) as exc:
                    self._cannot_write(exc)
            shared = self._fallback()
            if shared is None:
                return True
            try:
                if self._read(key) is not None:
                    return False
            except sqlite3.Error:
                pass
        return shared.claim(key, stale_after=stale_after)

    def release(self, key: str, *, failure: str | None = None) -> None:
        """Drop this owner's claim without a value. With ``failure`` (the call failed for
        good, after its retries) the other processes of this run get that failure from
        :meth:`failure` instead of paying for the same call again; without it (the call
        was cancelled) a waiter can try."""
        with self._lock:
            if self._conn is None:
                return
            if self._writable:
                try:
                    with self._write() as conn:
                        conn.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))
                        if failure is not None:
                            # created on first use: files made by earlier versions lack it
                            conn.execute(_FAILURES)
                            conn.execute(
                                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)", (key, self.owner, failure, time.time())
                            )
                        return
                except (OSError, sqlite3.Error) as exc:
                    self._cannot_write(exc)
            shared = self._fallback()
        if shared is not None:
            shared.release(key, failure=failure)

    def _failure(self, key: str) -> str | None:
        assert self._conn is not None
        try:
            # another owner's: this process asking again (a later pass) makes the call again
            row = self._conn.execute(
                "SELECT message FROM failures WHERE key = ? AND at >= ? AND owner != ?", (key, self._run, self.owner)
            ).fetchone()
        except sqlite3.OperationalError:  # no such table: nothing failed yet
            return None
        return None if row is None else str(row[0])

    def failure(self, key: str) -> str | None:
        """Why another process of this run failed to get ``key`` (see :meth:`release`), or ``None``."""
        with self._lock:
            if self._conn is None:
                return None
            try:
                found = self._failure(key)
            except sqlite3.Error:
                found = None
            shared = self._fallback() if found is None else None
        return shared.failure(key) if shared is not None else found

    def wait_for(self, key: str, *, timeout: float, poll: float = 0.05, stale_after: float = 120.0) -> dict[str, Any] | None:
        """Poll for another owner's value; ``None`` once its claim is gone or stale, or at ``timeout``
        (then claim and call: a vanished claim means that call failed)."""
        with self._lock:
            shared = self._fallback()
        if shared is not None:  # the other workers' new values and claims are there
            value = shared.wait_for(key, timeout=timeout, poll=poll, stale_after=stale_after)
            if value is not None:
                self.hits += 1
            return value
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._conn is None:
                    return None
                try:
                    self._conn.execute("BEGIN")  # value and claim from one snapshot
                    try:
                        value = self._read(key)
                        claim = self._conn.execute("SELECT at, owner FROM claims WHERE key = ?", (key,)).fetchone()
                    finally:
                        self._conn.execute("COMMIT")
                except sqlite3.Error:  # unreadable now: make the call (the claim's owner may make it too)
                    return None
                if value is not None:
                    self.hits += 1
                    return value
            if claim is None or claim[0] <= time.time() - stale_after or time.monotonic() >= deadline:
                return None
            if _owner_gone(claim[1]):  # killed mid-call: its claim will never be filled
                return None
            time.sleep(poll)

    def close(self) -> None:
        """Close the connection; later gets miss and puts are dropped, as when disabled."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._shared is not None:
                self._shared.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
