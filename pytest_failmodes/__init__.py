"""pytest-failmodes: failure-mode regression testing of LLM applications.

Cheap to import: the pytest plugin loads this package on every run, so heavy
modules (pydantic models, the engine) are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import failure_mode

if TYPE_CHECKING:
    from .detectors import Detector, RuleKind
    from .verdict import Verdict
    from .trace import Message, ToolCall, Trace

__all__ = ["Verdict", "failure_mode", "Trace", "Message", "ToolCall", "Detector", "RuleKind", "__version__"]

__version__ = "0.1.0"

# Verdict too: the plugin imports this package on every pytest run, where a
# frozen slotted dataclass costs more than the rest of the package together
_LAZY = {
    "Verdict": "verdict",
    "Trace": "trace",
    "Message": "trace",
    "ToolCall": "trace",
    "Detector": "detectors",
    "RuleKind": "detectors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
