"""Put this folder on PYTHONPATH and Hypothesis looks uninstalled, as in a
virtualenv without the ``probes`` extra: its modules cannot be imported and its
distribution (with its pytest11 entry point) is not listed.

Used by tests/test_without_hypothesis.py and bench/startup.py.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import sys
from collections.abc import Iterator, Sequence
from typing import Any

BLOCKED = ("hypothesis", "_hypothesis_pytestplugin", "_hypothesis_globals", "_hypothesis_ftz_detector")


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
_distributions = importlib.metadata.distributions


def distributions(**kwargs: Any) -> Iterator[importlib.metadata.Distribution]:
    return (d for d in _distributions(**kwargs) if (d.metadata["Name"] or "").lower() != "hypothesis")


importlib.metadata.distributions = distributions  # type: ignore[assignment]
