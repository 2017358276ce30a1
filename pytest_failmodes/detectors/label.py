"""The ``label`` detector: a person's label is the verdict."""

from __future__ import annotations

from dataclasses import dataclass

from ..trace import MISSING, Trace
from ..verdict import Verdict

__all__ = ["LabelDetector"]


@dataclass(frozen=True)
class LabelDetector:
    """FAIL when the label's value is one of ``fail_values``.

    With ``pass_values`` given, a value in neither list is an error (a typo in
    the labels must not pass silently). A trace without the label is skipped:
    not counted, and reported as skipped.
    """

    field: str
    fail_values: frozenset[str]
    pass_values: frozenset[str] | None = None

    def __call__(self, trace: Trace) -> Verdict:
        value = trace.get(self.field)
        if value is MISSING or value is None or value == "":
            return Verdict.skip(f"no label {self.field!r}")
        text = _text(value)
        if text in self.fail_values:
            return Verdict.fail(f"labelled {self.field}={text}")
        if self.pass_values is not None and text not in self.pass_values:
            return Verdict.error(
                f"label {self.field}={text!r} is in neither fail_values {sorted(self.fail_values)} "
                f"nor pass_values {sorted(self.pass_values)}"
            )
        return Verdict.pass_()

    def __repr__(self) -> str:
        return f"label({self.field} in {sorted(self.fail_values)})"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
