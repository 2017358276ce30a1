"""Produce the trace-format fixtures in this folder with the real exporters.

Run from the repository root: ``python tests/data/make_fixtures.py``. A tiny
support agent (one LLM call that asks for a tool, the tool, one LLM call that
answers) talks to the loopback fake server (``tests/fakellm.py``) through the
``openai`` SDK; the instrumentations and exporters below record it:

- ``openinference.jsonl``: openinference-instrumentation-openai plus
  OpenInference's own tracer for the agent and tool spans, written by the
  OpenTelemetry SDK's ``ConsoleSpanExporter`` one span per line;
- ``otlp_genai.json``: opentelemetry-instrumentation-openai-v2 (GenAI
  semantic conventions, messages as ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` attributes) encoded as OTLP/JSON by the
  exporter's own protobuf encoder;
- ``otlp_events.json``: the older convention, one span event per message
  (``gen_ai.user.message``, ``gen_ai.choice``, ...), same encoder;
- ``anthropic.jsonl`` / ``responses.jsonl``: conversations built from the
  ``anthropic`` and ``openai`` SDKs' own response models, dumped as they
  serialise them;
- ``langsmith.jsonl``: the agent traced with ``langsmith``'s ``RunTree``,
  exported as the API's ``Run`` objects, one run per line;
- ``langfuse.jsonl``: the agent as Langfuse observations, one per line, each
  the ``langfuse`` SDK's own ``ObservationV2`` model (what the v2 observations
  API returns) serialised by the SDK. The SDK traces through OpenTelemetry and
  the Langfuse *server* turns spans into observations, so without a server
  (no network here) the observations are built with the SDK's models;
- ``inspect/``: a tiny Inspect AI eval (a tool-using solver, two epochs, an
  ``includes`` scorer) run against Inspect's ``mockllm/model`` and written by
  Inspect itself as ``.eval`` and ``.json`` logs;
- ``multiagent/``: Magentic-One style logs (no package exports them; see
  ``multiagent_logs``).

The outputs are committed; the tests read them and never run this script.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# read once, when OpenTelemetry's instrumentation package is first imported
os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "span_only"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fakellm import FakeLLM, text  # noqa: E402

QUESTIONS = [
    ("Where is my order 1234?", True, False),
    ("What are your opening hours?", False, False),
    ("Refund order 999 please", True, True),
]


def _replies(server: FakeLLM, tool: bool, order: str) -> None:
    if tool:
        server.script(
            text(None, tool_calls=[{"id": f"call_{order}", "name": "lookup_order", "arguments": {"order_id": order}}]),
            text(f"Order {order} ships tomorrow." if order != "999" else "I could not find order 999."),
        )
    else:
        server.script(text("We are open 9am to 5pm, Monday to Friday."))


def _lookup(order: str, fail: bool) -> str:
    if fail:
        raise LookupError(f"order {order} not found")
    return json.dumps({"order_id": order, "status": "shipped"})


def _agent(client: Any, question: str, tool: bool, fail: bool, on_tool: Any) -> str:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a support agent. Use lookup_order for order questions."},
        {"role": "user", "content": question},
    ]
    tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}}]
    first = client.chat.completions.create(model="fake-agent", messages=messages, tools=tools)
    msg = first.choices[0].message
    if not msg.tool_calls:
        return str(msg.content)
    messages.append(msg.model_dump(exclude_none=True))
    for call in msg.tool_calls:
        result = on_tool(call, json.loads(call.function.arguments)["order_id"], fail)
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    second = client.chat.completions.create(model="fake-agent", messages=messages, tools=tools)
    return str(second.choices[0].message.content)


def openinference(server: FakeLLM) -> None:
    import openai
    from openinference.instrumentation import OITracer, TraceConfig
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    out = (HERE / "openinference.jsonl").open("w", encoding="utf-8")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=lambda s: s.to_json(indent=None) + "\n")))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = OITracer(provider.get_tracer(__name__), config=TraceConfig())
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-fake")

    def on_tool(call: Any, order: str, fail: bool) -> str:
        with tracer.start_as_current_span("lookup_order", openinference_span_kind="tool") as span:
            span.set_tool(name="lookup_order", parameters={"order_id": order})
            span.set_input({"order_id": order})
            try:
                result = _lookup(order, fail)
            except LookupError as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return f"error: {exc}"
            span.set_output(result)
            return result

    try:
        for question, tool, fail in QUESTIONS:
            _replies(server, tool, "1234" if "1234" in question else "999")
            with tracer.start_as_current_span("support_agent", openinference_span_kind="agent") as root:
                root.set_input(question)
                answer = _agent(client, question, tool, fail, on_tool)
                root.set_output(answer)
                root.set_status(Status(StatusCode.OK))
    finally:
        OpenAIInstrumentor().uninstrument()
        provider.shutdown()
        out.close()


def _otlp_json(spans: Any, path: Path) -> None:
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    doc = MessageToDict(encode_spans(spans))
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def otlp_genai(server: FakeLLM) -> None:
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer(__name__)
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-fake")

    def on_tool(call: Any, order: str, fail: bool) -> str:
        with tracer.start_as_current_span("execute_tool lookup_order") as span:
            span.set_attribute("gen_ai.operation.name", "execute_tool")
            span.set_attribute("gen_ai.tool.name", "lookup_order")
            span.set_attribute("gen_ai.tool.call.id", call.id)
            span.set_attribute("gen_ai.tool.call.arguments", call.function.arguments)
            try:
                result = _lookup(order, fail)
            except LookupError as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                span.set_attribute("error.type", type(exc).__name__)
                return f"error: {exc}"
            span.set_attribute("gen_ai.tool.call.result", result)
            return result

    try:
        for question, tool, fail in QUESTIONS:
            _replies(server, tool, "1234" if "1234" in question else "999")
            with tracer.start_as_current_span("invoke_agent support_agent") as root:
                root.set_attribute("gen_ai.operation.name", "invoke_agent")
                root.set_attribute("gen_ai.agent.name", "support_agent")
                _agent(client, question, tool, fail, on_tool)
    finally:
        OpenAIInstrumentor().uninstrument()
    _otlp_json(memory.get_finished_spans(), HERE / "otlp_genai.json")
    provider.shutdown()


def otlp_events() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(__name__)
    for i, (question, _tool, _fail) in enumerate(QUESTIONS[:2]):
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.system", "openai")
            span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            span.set_attribute("gen_ai.usage.input_tokens", 20 + i)
            span.set_attribute("gen_ai.usage.output_tokens", 7)
            span.add_event("gen_ai.system.message", {"gen_ai.system": "openai", "content": "You are a support agent."})
            span.add_event("gen_ai.user.message", {"gen_ai.system": "openai", "content": question})
            span.add_event(
                "gen_ai.choice",
                {"gen_ai.system": "openai", "index": 0, "finish_reason": "stop",
                 "message": json.dumps({"role": "assistant", "content": f"Answer {i}: we are on it."})},
            )
    _otlp_json(memory.get_finished_spans(), HERE / "otlp_events.json")
    provider.shutdown()


def _sdk_conversations() -> list[tuple[str, str, str | None, str, bool]]:
    """(id, question, order id or None, answer, tool fails) for the SDK-model fixtures."""
    return [
        ("conv-1", "Where is my order 1234?", "1234", "Order 1234 ships tomorrow.", False),
        ("conv-2", "What are your opening hours?", None, "We are open 9am to 5pm, Monday to Friday.", False),
        ("conv-3", "Refund order 999 please", "999", "I could not find order 999.", True),
    ]


def anthropic_messages() -> None:
    from anthropic.types import Message, TextBlock, ToolUseBlock, Usage

    rows = []
    for cid, question, order, answer, fail in _sdk_conversations():
        messages: list[Any] = [{"role": "user", "content": question}]
        if order is not None:
            ask = Message(
                id=f"msg_{cid}_1", type="message", role="assistant", model="claude-fake", stop_reason="tool_use",
                content=[TextBlock(type="text", text="Let me look that up."),
                         ToolUseBlock(type="tool_use", id=f"toolu_{order}", name="lookup_order", input={"order_id": order})],
                usage=Usage(input_tokens=30, output_tokens=12),
            )
            messages.append({"role": "assistant", "content": ask.model_dump(mode="json", exclude_none=True)["content"]})
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": f"toolu_{order}"}
            if fail:
                result.update(content=f"order {order} not found", is_error=True)
            else:
                result["content"] = [{"type": "text", "text": _lookup(order, False)}]
            messages.append({"role": "user", "content": [result]})
        reply = Message(
            id=f"msg_{cid}_2", type="message", role="assistant", model="claude-fake", stop_reason="end_turn",
            content=[TextBlock(type="text", text=answer)], usage=Usage(input_tokens=40, output_tokens=9),
        )
        messages.append({"role": "assistant", "content": reply.model_dump(mode="json", exclude_none=True)["content"]})
        rows.append({"id": cid, "system": "You are a support agent.", "model": "claude-fake", "messages": messages})
    _write_jsonl(HERE / "anthropic.jsonl", rows)


def responses_items() -> None:
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    rows = []
    for cid, question, order, answer, fail in _sdk_conversations():
        items: list[Any] = [{"role": "user", "content": question}]
        if order is not None:
            call = ResponseFunctionToolCall(
                type="function_call", id=f"fc_{order}", call_id=f"call_{order}", name="lookup_order",
                arguments=json.dumps({"order_id": order}), status="completed",
            )
            items.append(call.model_dump(mode="json", exclude_none=True))
            output = f"error: order {order} not found" if fail else _lookup(order, False)
            items.append({"type": "function_call_output", "call_id": f"call_{order}", "output": output})
        reply = ResponseOutputMessage(
            type="message", id=f"msg_{cid}", role="assistant", status="completed",
            content=[ResponseOutputText(type="output_text", text=answer, annotations=[])],
        )
        rows.append({"id": cid, "model": "gpt-fake", "instructions": "You are a support agent.",
                     "input": items, "output": [reply.model_dump(mode="json", exclude_none=True)]})
    _write_jsonl(HERE / "responses.jsonl", rows)


def multiagent_logs() -> None:
    """Magentic-One style logs. No Python package exports this shape (it is how
    failure-attribution datasets publish AutoGen runs), so these are written
    here, turn by turn, in that shape: a folder with one log per file."""
    folder = HERE / "multiagent"
    folder.mkdir(exist_ok=True)
    logs = {
        "task-1.json": {
            "question": "How many studio albums did the band release before 2000?",
            "ground_truth": "4", "question_ID": "task-1", "is_correct": False,
            "mistake_agent": "WebSurfer", "mistake_step": "3",
            "history": [
                {"role": "human", "content": "How many studio albums did the band release before 2000?"},
                {"role": "Orchestrator (thought)", "content": "We need the discography. WebSurfer should search."},
                {"role": "Orchestrator (-> WebSurfer)", "content": "Search for the band's discography."},
                {"role": "WebSurfer", "content": "I typed 'band discography' into the search box. The page lists 5 albums."},
                {"role": "Orchestrator (thought)", "content": "The request is satisfied."},
                {"role": "Orchestrator (final answer)", "content": "5"},
                {"role": "Orchestrator (termination condition)", "content": "No agent selected."},
            ],
        },
        "task-2.json": {
            "question": "What is 17 * 23?", "ground_truth": "391", "question_ID": "task-2", "is_correct": True,
            "history": [
                {"role": "human", "content": "What is 17 * 23?"},
                {"role": "Orchestrator (-> Coder)", "content": "Compute 17 * 23 in Python."},
                {"role": "Coder", "content": "```python\nprint(17 * 23)\n```"},
                {"role": "ComputerTerminal", "content": "391"},
                {"role": "Coder", "content": "The answer is 391. TERMINATE"},
                {"role": "Orchestrator (termination condition)", "content": "TERMINATE"},
            ],
        },
    }
    for name, log in logs.items():
        (folder / name).write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")


def langsmith_runs() -> None:
    """The agent traced with langsmith's RunTree, exported as the API's ``Run``
    objects (what ``Client.list_runs`` returns), one run per JSONL line."""
    from langsmith.run_trees import RunTree
    from langsmith.schemas import Run

    runs: list[Any] = []

    def export(tree: Any, tokens: tuple[int, int] | None = None) -> None:
        fields = {k: getattr(tree, k) for k in ("id", "name", "start_time", "run_type", "end_time", "extra", "error",
                                                 "inputs", "outputs", "parent_run_id", "tags", "trace_id", "dotted_order")}
        usage = {"prompt_tokens": tokens[0], "completion_tokens": tokens[1], "total_tokens": sum(tokens)} if tokens else {}
        runs.append(Run(**fields, status="error" if tree.error else "success", **usage).model_dump(mode="json"))

    for cid, question, order, answer, fail in _sdk_conversations():
        root = RunTree(name="support_agent", run_type="chain", inputs={"question": question}, project_name="fixtures")
        messages: list[Any] = [{"role": "user", "content": question}]
        if order is not None:
            call = {"id": f"call_{order}", "type": "function", "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": order})}}
            llm = root.create_child(name="ChatOpenAI", run_type="llm", inputs={"messages": list(messages)},
                                    extra={"metadata": {"ls_model_name": "fake-agent"}})
            llm.end(outputs={"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [call]}}]})
            export(llm, (30, 12))
            tool = root.create_child(name="lookup_order", run_type="tool", inputs={"order_id": order})
            if fail:
                tool.end(error=f"LookupError: order {order} not found")
                result = f"error: order {order} not found"
            else:
                result = _lookup(order, False)
                tool.end(outputs={"output": result})
            export(tool)
            messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": f"call_{order}", "content": result}]
        llm = root.create_child(name="ChatOpenAI", run_type="llm", inputs={"messages": list(messages)},
                                    extra={"metadata": {"ls_model_name": "fake-agent"}})
        llm.end(outputs={"choices": [{"message": {"role": "assistant", "content": answer}}]})
        export(llm, (40, 9))
        root.end(outputs={"answer": answer})
        export(root)
    _write_jsonl(HERE / "langsmith.jsonl", runs)


def langfuse_observations() -> None:
    """The agent as the Langfuse v2 observations API returns it (``ObservationV2``)."""
    from datetime import datetime, timedelta, timezone

    from langfuse.api import ObservationV2

    rows: list[Any] = []
    clock = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)

    def observe(trace: str, n: int, parent: str | None, type_: str, name: str, ms: int, **fields: Any) -> str:
        nonlocal clock
        start, clock = clock, clock + timedelta(milliseconds=ms)
        obs_id = f"{trace[-12:]}{n:04x}"
        obs = ObservationV2(
            id=obs_id, trace_id=trace, parent_observation_id=parent, type=type_, name=name, project_id="fixtures",
            start_time=start, end_time=clock, environment="default", **fields,
        )
        rows.append(json.loads(obs.json()))
        return obs_id

    for t, (cid, question, order, answer, fail) in enumerate(_sdk_conversations()):
        trace = f"{t + 1:032x}"
        pending: list[Any] = []
        root = f"{trace[-12:]}0000"
        messages: list[Any] = [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": question}]
        n = 1
        if order is not None:
            call = {"id": f"call_{order}", "type": "function",
                    "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": order})}}
            ask = {"role": "assistant", "content": None, "tool_calls": [call]}
            pending.append(("GENERATION", "chat", 120, dict(
                model="fake-agent", input=list(messages), output=ask,
                usage_details={"input": 30, "output": 12, "total": 42}, model_parameters={"temperature": 0}),
            ))
            result = f"error: order {order} not found" if fail else _lookup(order, False)
            tool_fields: dict[str, Any] = dict(input={"order_id": order}, output=result)
            if fail:
                tool_fields.update(level="ERROR", status_message=f"LookupError: order {order} not found")
            pending.append(("TOOL", "lookup_order", 15, tool_fields))
            messages += [ask, {"role": "tool", "tool_call_id": f"call_{order}", "content": result}]
        pending.append(("GENERATION", "chat", 90, dict(
            model="fake-agent", input=list(messages), output={"role": "assistant", "content": answer},
            usage_details={"input": 40, "output": 9, "total": 49}),
        ))
        # the root first, as the API lists observations by start time
        at = len(rows)
        for type_, name, ms, fields in pending:
            observe(trace, n, root, type_, name, ms, **fields)
            n += 1
        first = datetime.fromisoformat(rows[at]["startTime"].replace("Z", "+00:00"))
        root_obs = ObservationV2(
            id=root, trace_id=trace, type="AGENT", name="support_agent", project_id="fixtures",
            start_time=first, end_time=clock, environment="default", input=question, output=answer,
            metadata={"conversation": cid}, session_id=f"session-{cid}", user_id="customer-7",
        )
        rows.insert(at, json.loads(root_obs.json()))
    _write_jsonl(HERE / "langfuse.jsonl", rows)


def inspect_logs() -> None:
    """A tiny Inspect AI eval run on Inspect's ``mockllm/model``, logged by Inspect as ``.eval``.

    The model's replies are scripted (a tool call, then the answer); token usage is
    given with them because mockllm would otherwise count tokens with a tokenizer
    it downloads. The JSON form of the log is made from this one by the tests
    (``write_eval_log(..., format="json")``, what ``inspect log convert`` does).
    """
    import shutil
    import tempfile

    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import ToolError, tool

    @tool
    def lookup_order() -> Any:
        async def execute(order_id: str) -> str:
            """Look up an order.

            Args:
                order_id: The order's id.
            """
            if order_id == "999":
                raise ToolError(f"order {order_id} not found")
            return _lookup(order_id, False)
        return execute

    task = Task(
        name="support",
        dataset=[Sample(input="Where is my order 1234?", target="ships tomorrow", id="order", metadata={"topic": "orders"}),
                 Sample(input="Refund order 999 please", target="refund issued", id="refund", metadata={"topic": "refunds"})],
        solver=[use_tools(lookup_order()), generate()],
        scorer=includes(),
    )
    outputs = []
    for _epoch in range(2):
        for order, answer in (("1234", "Order 1234 ships tomorrow."), ("999", "I could not find order 999.")):
            ask = ModelOutput.for_tool_call("mockllm/model", "lookup_order", {"order_id": order})
            ask.usage = ModelUsage(input_tokens=30, output_tokens=12, total_tokens=42)
            reply = ModelOutput.from_content("mockllm/model", answer)
            reply.usage = ModelUsage(input_tokens=40, output_tokens=9, total_tokens=49)
            outputs += [ask, reply]
    with tempfile.TemporaryDirectory() as tmp:
        model = get_model("mockllm/model", custom_outputs=outputs, memoize=False)
        [log] = eval(task, model=model, epochs=2, log_dir=tmp, log_format="eval", display="none", max_samples=1)
        assert log.status == "success", log.error
        (HERE / "inspect").mkdir(exist_ok=True)
        shutil.copy(log.location, HERE / "inspect" / "support.eval")


def _write_jsonl(path: Path, rows: list[Any]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    with FakeLLM() as server:
        openinference(server)
        otlp_genai(server)
    otlp_events()
    anthropic_messages()
    responses_items()
    multiagent_logs()
    langsmith_runs()
    langfuse_observations()
    inspect_logs()
    print("wrote", ", ".join(sorted(p.name for p in HERE.iterdir() if p.suffix in (".json", ".jsonl"))))


if __name__ == "__main__":
    main()
