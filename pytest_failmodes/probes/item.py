"""The pytest item of a probe: a view on :func:`run_probe`'s result, like a mode's gate."""

from __future__ import annotations

from typing import Any

import pytest

from .. import options as opt
from ..items import GateBreach, _FailmodesItem
from ..engine import Aggregator, cohort_keys, finish_mode
from ..errors import FailmodesError
from ..session import session_of
from ..seen import Need, Seen, UnmatchedName
from . import compare
from .models import ENV_PARAPHRASE_MODEL, EquivalenceSpec
from .run import ProbeInput, ProbeSpec, failure_lines, run_probe

__all__ = ["ProbeItem"]


class ProbeItem(_FailmodesItem):
    """One consistency probe: fails when its gate is breached."""

    evaluates = "probe"

    def __init__(self, *, probe: ProbeSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe = probe

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, self.probe.line - 1, f"probe {self.probe.name}"

    def runtest(self) -> None:
        probe = self.probe
        self._skip_without_model()
        session = session_of(self.config)
        try:
            app = self._target_app(probe.target, file=probe.source, line=probe.line, key=f"probes.{probe.name}.target")
            comparator = self._comparator()
            inputs, notes = self._inputs()
            result = self._run(session, app, inputs, comparator)
        except FailmodesError as exc:
            broken = finish_mode(self.mode, Aggregator(), [], "", {}, broken=str(exc))
            self.failmodes_payload = session.mode_payload(broken)
            raise
        result.notes.extend(notes)
        self.failmodes_payload = session.mode_payload(result)
        if not result.passed:
            from ..report.terminal import breach_text

            limit = self.config.getoption(opt.dest(opt.MAX_EXAMPLES))
            text = breach_text(result, limit).replace(f"failure mode {probe.name!r}", f"probe {probe.name!r}", 1)
            raise GateBreach("\n".join([text, *failure_lines(result, limit)]))

    def _run(self, session: Any, app: Any, inputs: list[ProbeInput], comparator: Any) -> Any:
        probe = self.probe
        if probe.paraphrase is not None or isinstance(comparator, EquivalenceSpec):
            return run_probe(probe, app, session.model_context(), inputs, comparator)
        # no model call: the run's settings, but no cache opened (nothing to cache; no .failmodes/)
        from ..judge import ModelContext

        with session.make_runner() as runner:
            try:
                return run_probe(probe, app, ModelContext(runner, None), inputs, comparator)
            finally:
                session.merge_model_stats(runner.stats_dict())

    def _skip_without_model(self) -> None:
        from ..judge import ENV_MODEL

        probe = self.probe
        if probe.paraphrase is not None and not probe.paraphrase.resolved_model:
            pytest.skip(
                f"probe {probe.name!r} paraphrases with a model: set {ENV_PARAPHRASE_MODEL} (or {ENV_MODEL}) "
                f"or paraphrase.model in {probe.source}"
            )
        if isinstance(probe.comparator, EquivalenceSpec) and not probe.comparator.resolved_model:
            pytest.skip(f"probe {probe.name!r} compares with a judge: set {ENV_MODEL} or same_when.judge.model in {probe.source}")

    def _comparator(self) -> compare.Comparator | EquivalenceSpec:
        cmp = self.probe.comparator
        if cmp is None:
            return compare.exact()
        if not isinstance(cmp, str):
            return cmp

        def error(message: str) -> FailmodesError:
            return FailmodesError(
                message, file=self.probe.source, line=self.probe.line, key=f"probes.{self.probe.name}.same_when.fixture"
            )

        try:
            func = self._request.getfixturevalue(cmp)
        except pytest.FixtureLookupError:
            raise error(f"comparator fixture {cmp!r} not found; define it in a conftest.py this file can see") from None
        if not callable(func):
            raise error(
                f"comparator fixture {cmp!r} returned {type(func).__name__}; it must return a callable "
                "(original_output, variant_output) -> bool (True: the same answer)"
            )
        return compare.from_callable(cmp, func)

    def _inputs(self) -> tuple[list[ProbeInput], list[str]]:
        probe = self.probe
        if not probe.from_dataset:
            return list(probe.inputs), []
        from ..dataset import iter_traces

        suite = self.suite
        assert suite.dataset is not None
        out = []
        empty = 0
        # the where: keys and cohort fields must occur in some trace, as a mode's must
        needs = [*suite.needs]
        for fieldname in dict.fromkeys(c.field for c in (probe.where.conditions if probe.where else ())):
            needs.append(Need("field", fieldname, probe.source, probe.line, f"probes.{probe.name}.inputs.where.{fieldname}"))
        seen = Seen(needs)
        for _line, trace in iter_traces(suite.dataset):
            seen.observe(trace)
            if probe.where is not None and not probe.where(trace):
                continue
            if not (trace.input or "").strip():
                empty += 1
                continue
            out.append(ProbeInput(trace.id, trace.input or "", tuple(cohort_keys(trace, suite.cohorts)[1:])))
        errors, unmatched = seen.problems(needs)
        if errors:
            raise UnmatchedName(errors[0])
        notes = [f"{empty} dataset rows have no input and were not probed"] if empty else []
        return out, notes + unmatched
