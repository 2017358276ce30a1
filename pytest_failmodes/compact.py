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
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from itertools import chain, compress
from typing import IO, Any, overload

__all__ = ["StrColumn", "Details", "FirstSeen", "index_array", "ComboTraces", "CohortMembers"]

#: evidence of these types is interned with its reason (equal values of one type print alike)
_SCALARS = (str, int, float, bool, type(None))
#: past this many distinct (reason, evidence) pairs new ones are stored without interning:
#: reasons that never repeat (an LLM judge's) would only grow the lookup table
INTERN_LIMIT = 50_000
#: past about this many bytes of distinct reasons held in memory, new ones go to a temporary
#: file: a judge gives every failing trace its own reason, 0.3-1 KB each, a gigabyte at a
#: million failures
SPILL_BYTES = 32 * 1024 * 1024
#: a reference with this bit set points into the temporary file, not the in-memory table
_SPILLED = 1 << 31


def index_array(values: Iterable[int] = ()) -> array[int]:
    """Trace indices, 4 bytes each (a run holds far fewer than 2**32 traces)."""
    return array("I", values)


class ComboTraces:
    """Which traces hold each cohort combination (``keys[combo]``: the cohort keys of the
    traces with that combo), built once for a run from each trace's combo in dataset order.

    One 4-byte index per trace for the whole run, however many modes and cohorts: each
    mode's cohort members (:class:`CohortMembers`) are derived from it when read, where
    per-mode arrays would hold modes x cohorts per trace for as long as the run lasts."""

    __slots__ = ("n", "keys", "traces", "combos_of")

    def __init__(self, combos: Sequence[int], keys: Sequence[tuple[str, ...]]) -> None:
        self.n = len(combos)
        self.keys = keys
        traces = [index_array() for _ in keys]
        for i, combo in enumerate(combos):
            traces[combo].append(i)
        self.traces = traces
        #: cohort key -> the combos that hold it
        self.combos_of: dict[str, list[int]] = {}
        for combo, held in enumerate(keys):
            for key in held:
                self.combos_of.setdefault(key, []).append(combo)

    def indices(self, cohort: str) -> Sequence[int]:
        """The traces in ``cohort``, ascending."""
        combos = self.combos_of.get(cohort, ())
        if len(combos) == len(self.traces):
            return range(self.n)
        if len(combos) == 1:
            return self.traces[combos[0]]
        # each combo's traces are ascending: the sort merges runs
        return sorted(chain.from_iterable(self.traces[c] for c in combos))


#: a status code (engine.CODE_OF_STATUS) -> 1 for a decided verdict (pass or fail), else 0
_DECIDED = bytes(1 if chr(b) in "PF" else 0 for b in range(256))


class CohortMembers(Mapping[str, Sequence[int]]):
    """A mode's cohort -> indices of its decided (pass or fail) traces, ascending, for the
    cohorts that have any, in the order they first occur: a read-only mapping derived
    from the run's :class:`ComboTraces` and the mode's status codes when a cohort is
    read, so a run with reports holds no member arrays of its own."""

    __slots__ = ("_combos", "_codes", "_order")

    def __init__(self, combos: ComboTraces, codes: str) -> None:
        self._combos = combos
        self._codes = codes
        self._order: dict[str, None] | None = None

    def _decided(self) -> bytes:
        return self._codes.encode("ascii").translate(_DECIDED)

    def _keys(self) -> dict[str, None]:
        if self._order is None:
            decided = self._decided()
            # a cohort is first seen at the first decided trace of a combo that holds it
            first = []
            for combo, traces in enumerate(self._combos.traces):
                at = next((i for i in traces if decided[i]), None)
                if at is not None:
                    first.append((at, combo))
            first.sort()
            self._order = {key: None for _at, combo in first for key in self._combos.keys[combo]}
        return self._order

    def __getitem__(self, cohort: str) -> Sequence[int]:
        if cohort not in self._keys():
            raise KeyError(cohort)
        indices = self._combos.indices(cohort)
        return index_array(compress(indices, map(self._decided().__getitem__, indices)))

    def __contains__(self, cohort: object) -> bool:
        return cohort in self._keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def __repr__(self) -> str:
        return f"CohortMembers({len(self)} cohorts over {self._combos.n} traces)"


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

    Once the distinct pairs held in memory pass ``spill_bytes`` (about: the reasons'
    lengths), further ones are pickled to an anonymous temporary file and read back
    when asked for, so a run whose judge writes a new reason for each of a million
    traces keeps flat memory. A pair that cannot be pickled (a Python detector's own
    evidence object) stays in memory.
    """

    __slots__ = ("_keys", "_refs", "_max", "_table", "_intern", "_sorted", "_held", "_spill_bytes", "_spill", "_spill_ends")

    def __init__(self, items: Iterable[tuple[int, list[Any]]] = (), *, spill_bytes: int = SPILL_BYTES) -> None:
        self._keys = array("I")
        self._refs = array("I")
        self._max = -1
        self._table: list[list[Any]] = []
        self._intern: dict[tuple[Any, ...], int] = {}
        self._sorted = True
        self._held = 0
        self._spill_bytes = spill_bytes
        self._spill: IO[bytes] | None = None
        self._spill_ends = array("Q")
        for key, value in items:
            self[key] = value

    def _ref(self, value: Sequence[Any]) -> int:
        reason, evidence = value[0], value[1]
        key = (reason, type(evidence), evidence) if type(evidence) in _SCALARS else None
        if key is not None:
            found = self._intern.get(key)
            if found is not None:
                return found
        if self._held >= self._spill_bytes:
            spilled = self._spill_one(reason, evidence)
            if spilled is not None:
                return spilled
        self._table.append([reason, evidence])
        self._held += (len(reason) if isinstance(reason, str) else 64) + 64
        ref = len(self._table) - 1
        if key is not None and len(self._intern) < INTERN_LIMIT:
            self._intern[key] = ref
        return ref

    def _spill_one(self, reason: Any, evidence: Any) -> int | None:
        """Append the pair to the temporary file; its reference, or None if it cannot be pickled."""
        import pickle

        try:
            data = pickle.dumps((reason, evidence), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - any object a detector returned; it then stays in memory
            return None
        if len(self._spill_ends) >= _SPILLED - 1:
            return None
        if self._spill is None:
            import tempfile

            self._spill = tempfile.TemporaryFile(prefix="failmodes-reasons-")
        spill = self._spill
        spill.seek(0, 2)
        spill.write(data)
        self._spill_ends.append(spill.tell())
        return _SPILLED | (len(self._spill_ends) - 1)

    def _value(self, ref: int) -> list[Any]:
        if not ref & _SPILLED:
            return self._table[ref]
        import pickle

        i = ref & ~_SPILLED
        start = self._spill_ends[i - 1] if i else 0
        spill = self._spill
        assert spill is not None
        spill.seek(start)
        reason, evidence = pickle.loads(spill.read(self._spill_ends[i] - start))
        return [reason, evidence]

    def __del__(self) -> None:
        spill = getattr(self, "_spill", None)
        if spill is not None:
            spill.close()

    def __getstate__(self) -> dict[str, Any]:
        # a copy for another process (xdist) carries its pairs, not a file handle
        return {"items": list(self.items()), "spill_bytes": self._spill_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["items"], spill_bytes=state["spill_bytes"])  # type: ignore[misc]

    def _find(self, key: int) -> int:
        """The position of ``key`` in the columns, or -1."""
        if not self._sorted:
            self._sort()
        keys = self._keys
        pos = bisect_left(keys, key)
        return pos if pos < len(keys) and keys[pos] == key else -1

    def _sort(self) -> None:
        # verdicts of model calls arrive out of order; lookups come after the pass. A key set
        # again while unsorted was appended once more: the last one set wins (a stable sort
        # keeps the order they were set in)
        keys, refs = self._keys, self._refs
        order = sorted(range(len(keys)), key=keys.__getitem__)
        new_keys, new_refs = array("I"), array("I")
        for i in order:
            if new_keys and new_keys[-1] == keys[i]:
                new_refs[-1] = refs[i]
            else:
                new_keys.append(keys[i])
                new_refs.append(refs[i])
        self._keys, self._refs = new_keys, new_refs
        self._sorted = True

    def __setitem__(self, key: int, value: list[Any]) -> None:
        keys = self._keys
        if keys and key <= self._max:
            if self._sorted:
                pos = self._find(key)
                if pos >= 0:
                    self._refs[pos] = self._ref(value)
                    return
            # out of order: appended now, sorted (and a repeated key resolved) at the first
            # lookup, not once per late arrival
            self._sorted = False
        else:
            self._max = key
        keys.append(key)
        self._refs.append(self._ref(value))

    def __getitem__(self, key: int) -> list[Any]:
        pos = self._find(key) if isinstance(key, int) else -1
        if pos < 0:
            raise KeyError(key)
        return self._value(self._refs[pos])

    def get(self, key: int, default: Any = None) -> Any:
        # no KeyError round trip: reports look up every trace, most of which have no entry
        pos = self._find(key) if isinstance(key, int) else -1
        return self._value(self._refs[pos]) if pos >= 0 else default

    def __delitem__(self, key: int) -> None:
        pos = self._find(key) if isinstance(key, int) else -1
        if pos < 0:
            raise KeyError(key)
        del self._keys[pos]
        del self._refs[pos]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self._find(key) >= 0

    def __len__(self) -> int:
        if not self._sorted:
            self._sort()
        return len(self._keys)

    def __iter__(self) -> Iterator[int]:
        if not self._sorted:
            self._sort()
        return iter(self._keys)

    def items(self) -> Iterator[tuple[int, list[Any]]]:  # type: ignore[override]
        if not self._sorted:
            self._sort()
        table, value = self._table, self._value
        return ((k, table[r] if r < _SPILLED else value(r)) for k, r in zip(self._keys, self._refs))

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

    __slots__ = ("_slots", "_order", "_mask", "_files", "_file_index", "_file_of", "_line_of", "_count", "_last_file", "_last_index")

    def __init__(self) -> None:
        self._mask = 1023
        self._slots = array("Q", bytes(8 * (self._mask + 1)))  # 0: empty
        self._order = array("I", bytes(4 * (self._mask + 1)))  # the id's position in the stream
        self._files: list[Any] = []
        self._file_index: dict[Any, int] = {}
        self._file_of = array("I")
        self._line_of = array("Q")
        self._count = 0
        # the file of the previous id: rows come file by file, and hashing a Path is not free
        self._last_file: Any = None
        self._last_index = 0

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
        if file is self._last_file:
            f = self._last_index
        else:
            found_f = self._file_index.get(file)
            if found_f is None:
                found_f = self._file_index[file] = len(self._files)
                self._files.append(file)
            f = self._last_index = found_f
            self._last_file = file
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
