"""The answer a detector gives for one trace."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Verdict", "PASS", "FAIL", "ERROR", "SKIP", "step_of"]

PASS: Final = "pass"
FAIL: Final = "fail"
ERROR: Final = "error"
#: the mode does not apply to the trace (its ``where:`` did not match, or a label is absent)
SKIP: Final = "skip"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Is the failure mode present in this trace?

    ``Verdict.fail(reason)`` means the failure is present, ``Verdict.pass_()``
    that it is absent. ``Verdict.error(reason)`` means the detector could not
    decide; errors are reported and never counted as pass or fail.
    """

    status: str
    reason: str = ""
    evidence: Any = None

    @classmethod
    def fail(
        cls, reason: str = "", evidence: Any = None, *, step_id: str | None = None, step_index: int | None = None
    ) -> Verdict:
        """The failure is present. ``step_id`` / ``step_index`` (its position in
        :attr:`Trace.steps`) name the step at which it happened: the evidence then
        becomes ``{"step_id", "step_index", "found": evidence}``, which the JSON report
        and ``failmodes steps`` / ``cooccur`` read."""
        if step_id is not None or step_index is not None:
            located: dict[str, Any] = {"step_id": step_id, "step_index": step_index}
            if evidence is not None:
                located["found"] = evidence
            evidence = located
        return cls(FAIL, reason, _jsonable(evidence))

    @classmethod
    def pass_(cls, reason: str = "") -> Verdict:
        return cls(PASS, reason) if reason else _PASS

    @classmethod
    def error(cls, reason: str) -> Verdict:
        return cls(ERROR, reason)

    @classmethod
    def skip(cls, reason: str = "") -> Verdict:
        return cls(SKIP, reason)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def errored(self) -> bool:
        return self.status == ERROR


_PASS: Final = Verdict(PASS)


def step_of(evidence: Any) -> tuple[str | None, int | None] | None:
    """``(step_id, step_index)`` where a verdict's evidence names the step it failed at
    (see :meth:`Verdict.fail`), else None."""
    if not isinstance(evidence, dict) or not ("step_id" in evidence or "step_index" in evidence):
        return None
    sid, index = evidence.get("step_id"), evidence.get("step_index")
    sid = sid if isinstance(sid, str) and sid else None
    index = index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else None
    return None if sid is None and index is None else (sid, index)


def _jsonable(value: Any) -> Any:
    """Evidence ends up in JSON reports and crosses xdist: keep it JSON-safe."""
    if value is None:
        return None
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def to_verdict(value: object) -> Verdict:
    """Normalise what a detector returned: a Verdict, or a bool (True = failure present)."""
    if isinstance(value, Verdict):
        return value
    if value is True:
        return Verdict.fail("detector returned True")
    if value is False:
        return _PASS
    return Verdict.error(
        f"detector returned {type(value).__name__} {value!r:.80}; expected a Verdict or a bool"
    )
