"""Compact per-trace state for runs over very many traces.

A run keeps, per trace, its id and per mode a status code and (for
non-passes) a reason and evidence. As Python objects that is ~0.4 KB a trace:
at a million traces the run state alone outgrew the process. Here the same
data lives in flat buffers: ids as UTF-8 bytes with offsets, reasons interned
(most rules repeat a handful of reasons), indices in ``array`` columns.

Both classes behave as the plain ``list`` / ``dict`` they replace (they
compare equal to them), so readers of :class:`~pytest_failmodes.engine.ModeResult`
need not know.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from typing import Any, overload

__all__ = ["StrColumn", "Details", "FirstSeen", "index_array"]

#: evidence of these types is interned with its reason (equal values of one type print alike)
_SCALARS = (str, int, float, bool, type(None))
#: past this many distinct (reason, evidence) pairs new ones are stored without interning:
#: reasons that never repeat (an LLM judge's) would only grow the lookup table
INTERN_LIMIT = 50_000


def index_array(values: Iterable[int] = ()) -> array[int]:
    """Trace indices, 4 bytes each (a run holds far fewer than 2**32 traces)."""
    return array("I", values)


class StrColumn(Sequence[str]):
    """An append-only list of strings held as one UTF-8 buffer and end offsets.

    A million short ids take ~20 MB here against ~70 MB as a ``list`` of ``str``.
    """

    __slots__ = ("_data", "_ends")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._data = bytearray()
        self._ends = array("Q")
        for value in values:
            self.append(value)

    def append(self, value: str) -> None:
        # surrogatepass: an id decoded from hostile JSON may hold a lone surrogate; it comes back unchanged
        self._data += value.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._data))

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self._ends)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("StrColumn index out of range")
        start = self._ends[i - 1] if i else 0
        return self._data[start : self._ends[i]].decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        data, start = self._data, 0
        for end in self._ends:
            yield data[start:end].decode("utf-8", "surrogatepass")
            start = end

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (StrColumn, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StrColumn({list(self)!r})" if len(self) <= 10 else f"StrColumn(<{len(self)} strings>)"


class Details(MutableMapping[int, list[Any]]):
    """Trace index -> ``[reason, evidence]`` for a mode's non-passing (and labelled) traces.

    Indices and references into a table of distinct ``[reason, evidence]`` pairs sit in
    two ``array`` columns (8 bytes an entry); equal pairs share one table slot. The
    values handed out are shared: treat them as read-only.
    """

    __slots__ = ("_keys", "_refs", "_table", "_intern", "_sorted")

    def __init__(self, items: Iterable[tuple[int, list[Any]]] = ()) -> None:
        self._keys = array("I")
        self._refs = array("I")
        self._table: list[list[Any]] = []
        self._intern: dict[tuple[Any, ...], int] = {}
        self._sorted = True
        for key, value in items:
            self[key] = value

    def _ref(self, value: Sequence[Any]) -> int:
        reason, evidence = value[0], value[1]
        key = (reason, type(evidence), evidence) if type(evidence) in _SCALARS else None
        if key is not None:
            found = self._intern.get(key)
            if found is not None:
                return found
        self._table.append([reason, evidence])
        ref = len(self._table) - 1
        if key is not None and len(self._intern) < INTERN_LIMIT:
            self._intern[key] = ref
        return ref

    def _find(self, key: int) -> int:
        """The position of ``key`` in the columns, or -1."""
        if not self._sorted:
            self._sort()
        keys = self._keys
        pos = bisect_left(keys, key)
        return pos if pos < len(keys) and keys[pos] == key else -1

    def _sort(self) -> None:
        # verdicts of model calls arrive out of order; lookups come after the pass
        order = sorted(range(len(self._keys)), key=self._keys.__getitem__)
        self._keys = array("I", (self._keys[i] for i in order))
        self._refs = array("I", (self._refs[i] for i in order))
        self._sorted = True

    def __setitem__(self, key: int, value: list[Any]) -> None:
        keys = self._keys
        if keys and key <= keys[-1]:
            pos = self._find(key)
            if pos >= 0:
                self._refs[pos] = self._ref(value)
                return
            self._sorted = False
        keys.append(key)
        self._refs.append(self._ref(value))

    def __getitem__(self, key: int) -> list[Any]:
        pos = self._find(key) if isinstance(key, int) else -1
        if pos < 0:
            raise KeyError(key)
        return self._table[self._refs[pos]]

    def get(self, key: int, default: Any = None) -> Any:
        # no KeyError round trip: reports look up every trace, most of which have no entry
        pos = self._find(key) if isinstance(key, int) else -1
        return self._table[self._refs[pos]] if pos >= 0 else default

    def __delitem__(self, key: int) -> None:
        pos = self._find(key) if isinstance(key, int) else -1
        if pos < 0:
            raise KeyError(key)
        del self._keys[pos]
        del self._refs[pos]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self._find(key) >= 0

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[int]:
        if not self._sorted:
            self._sort()
        return iter(self._keys)

    def items(self) -> Iterator[tuple[int, list[Any]]]:  # type: ignore[override]
        if not self._sorted:
            self._sort()
        table = self._table
        return ((k, table[r]) for k, r in zip(self._keys, self._refs))

    def __repr__(self) -> str:
        return f"Details({dict(self.items())!r})" if len(self) <= 10 else f"Details(<{len(self)} entries>)"


class FirstSeen:
    """Where each id of a stream was first seen, for the duplicate-id check, in ~30 bytes an id.

    A ``dict`` of id -> (file, line) held ~250 bytes per trace (the id string, a
    tuple, an int, the slot): a quarter of a gigabyte at a million traces. Here ids
    are kept as their 64-bit hashes in an open-addressing table; equal ids have
    equal hashes, so no duplicate is missed. Two different ids with the same hash
    (odds ~ n**2 / 2**65: 3e-8 at a million) would be reported as a duplicate,
    loudly, never passed over.
    """

    __slots__ = ("_slots", "_order", "_mask", "_files", "_file_index", "_file_of", "_line_of", "_count")

    def __init__(self) -> None:
        self._mask = 1023
        self._slots = array("Q", bytes(8 * (self._mask + 1)))  # 0: empty
        self._order = array("I", bytes(4 * (self._mask + 1)))  # the id's position in the stream
        self._files: list[Any] = []
        self._file_index: dict[Any, int] = {}
        self._file_of = array("I")
        self._line_of = array("Q")
        self._count = 0

    def add(self, key: str, file: Any, line: int) -> tuple[Any, int] | None:
        """Record ``key`` at (file, line); the (file, line) where it was first seen if it was."""
        h = (hash(key) & 0xFFFFFFFFFFFFFFFF) or 1
        slots, mask = self._slots, self._mask
        i = h & mask
        while True:
            found = slots[i]
            if found == 0:
                break
            if found == h:
                at = self._order[i]
                return self._files[self._file_of[at]], self._line_of[at]
            i = (i + 1) & mask
        f = self._file_index.get(file)
        if f is None:
            f = self._file_index[file] = len(self._files)
            self._files.append(file)
        slots[i] = h
        self._order[i] = self._count
        self._file_of.append(f)
        self._line_of.append(line)
        self._count += 1
        if self._count * 3 > (mask + 1) * 2:
            self._grow()
        return None

    def _grow(self) -> None:
        old_slots, old_order = self._slots, self._order
        self._mask = mask = (self._mask + 1) * 2 - 1
        self._slots = slots = array("Q", bytes(8 * (mask + 1)))
        self._order = order = array("I", bytes(4 * (mask + 1)))
        for h, at in zip(old_slots, old_order):
            if h:
                i = h & mask
                while slots[i]:
                    i = (i + 1) & mask
                slots[i] = h
                order[i] = at

    def __len__(self) -> int:
        return self._count
