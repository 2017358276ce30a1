"""Inspect AI eval logs (``.eval`` and ``.json``), read with ``inspect_ai.log``.

``inspect_ai`` is an optional dependency (``pip install 'pytest-failmodes[inspect]'``);
without it, a dataset of Inspect logs is one clear error naming the extra.
Samples stream one at a time (``read_eval_log_samples``); their events, which
are most of a log, are never loaded.

Each sample of each epoch is one trace:

- ``id``: ``<task>/<sample id>/<epoch>``, the same in every run of the task
  (so a baseline pairs by id; two runs of one task in one dataset are duplicate
  ids, an error: compare runs as two datasets); ``metadata`` holds ``sample_id`` and
  ``epoch`` (so ``cluster_by: sample_id`` treats epochs as repeated trials of
  one task and ``pair_by: [sample_id, epoch]`` pairs runs), the task, the
  model, the target, the sample's own metadata, the log's status and the
  sample's error where it has one;
- ``messages``: the sample's conversation in OpenAI form (tool calls and tool
  results included; a tool result with an error is marked failed), from which
  the steps are derived;
- ``input``: the sample's input text; ``output``: the final completion;
- ``labels``: the scores, ``{scorer name: value}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import DatasetError
from ..trace import Trace
from . import Options, Record
from ._source import Archive

__all__ = ["InspectReader", "READERS", "NEEDS_EXTRA"]

NEEDS_EXTRA = "reading Inspect AI logs needs the inspect_ai package: pip install 'pytest-failmodes[inspect]'"
# a sample's parts this reader never uses: the events are most of a log
_SKIP = {"events", "events_data", "timelines", "store"}


def _is_json_log(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("eval"), dict) and "status" in value
            and "task" in value["eval"] and ("samples" in value or "results" in value))


def _message(m: Any) -> dict[str, Any]:
    """One Inspect chat message as an OpenAI message."""
    out: dict[str, Any] = {"role": m.role, "content": m.text}
    if m.role == "assistant" and m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.function, "arguments": c.arguments or {}}}
            for c in m.tool_calls
        ]
    elif m.role == "tool":
        # no "name": a message's name is read as the agent who spoke
        out["tool_call_id"] = m.tool_call_id
        if m.error is not None:
            # Inspect records a failed tool call apart from its (empty) result
            out["is_error"] = True
            out["content"] = m.text or f"{m.error.type}: {m.error.message}"
    return out


def _input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    users = [m.text for m in value if getattr(m, "role", None) == "user"]
    return users[-1] if users else ""


def _json_path(loc: tuple[Any, ...]) -> str:
    """``samples[1].messages[1].role`` from a pydantic error location (its validator
    names, such as ``function-wrap[...]``, are not keys of the file)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" not in str(part) and "(" not in str(part):
            out += f".{part}" if out else str(part)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class InspectReader:
    """Inspect AI eval logs: one trace per sample and epoch."""

    name = "inspect"

    def sniff(self, value: Any) -> int:
        if isinstance(value, Archive):
            return 100
        return 90 if _is_json_log(value) else 0

    def read(self, records: Iterator[Record], options: Options) -> Iterator[tuple[Record, Trace]]:
        for rec in records:
            if not isinstance(rec.value, Archive) and not _is_json_log(rec.value):
                raise DatasetError(
                    "expected an Inspect AI eval log (a .eval file, or a .json log with 'eval' and 'samples')",
                    file=rec.file, line=rec.line,
                )
            if not isinstance(rec.value, Archive) and (rec.line != 1 or rec.file.suffix.lower() != ".json"):
                # inspect_ai reads logs from their files: one log per .json file
                raise DatasetError("an Inspect AI log must be a file of its own (.eval or .json)", file=rec.file, line=rec.line)
            yield from self._log(rec)

    def _log(self, rec: Record) -> Iterator[tuple[Record, Trace]]:
        try:
            from inspect_ai.log import read_eval_log, read_eval_log_samples
        except ImportError:
            raise DatasetError(NEEDS_EXTRA, file=rec.file) from None
        from pydantic import ValidationError

        path = str(rec.file)
        try:
            header = read_eval_log(path, header_only=True)
            samples = read_eval_log_samples(path, all_samples_required=False, resolve_attachments=True,
                                            exclude_fields=_SKIP)
            for sample in samples:
                yield rec, self._trace(header, sample)
        except DatasetError:
            raise
        except ValidationError as exc:
            first = exc.errors()[0]
            raise DatasetError(
                f"not a valid Inspect AI log: {first['msg']}", file=rec.file, key=_json_path(first["loc"]),
            ) from None
        except Exception as exc:  # noqa: BLE001 - inspect's reader raises many kinds; each is one line here
            raise DatasetError(f"cannot read the Inspect AI log: {_first_line(exc)}", file=rec.file) from None

    def _trace(self, header: Any, sample: Any) -> Trace:
        spec = header.eval
        metadata: dict[str, Any] = {
            "sample_id": sample.id, "epoch": sample.epoch, "task": spec.task, "model": spec.model,
            "target": sample.target, "log_status": header.status,
        }
        if isinstance(sample.metadata, dict):
            metadata.update(sample.metadata)
        if sample.error is not None:
            metadata["sample_error"] = sample.error.message
        completion = sample.output.completion if sample.output is not None else ""
        messages = [_message(m) for m in sample.messages]
        labels = {name: score.value for name, score in (sample.scores or {}).items()}
        return Trace(
            id=f"{spec.task}/{sample.id}/{sample.epoch}",
            input=_input_text(sample.input),
            output=completion if completion or not messages else None,
            messages=messages,
            metadata=metadata,
            labels=labels,
        )


READERS = {"inspect": InspectReader()}
