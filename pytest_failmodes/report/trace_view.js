/* The one trace view: turns a trace (the JSON of pytest_failmodes.trace.Trace) into DOM.
 *
 * Used by `failmodes review` and meant for any page that shows a trace. Every
 * piece of trace content goes into the DOM through textContent or attribute
 * values set by setAttribute with fixed names: nothing from a trace is ever
 * parsed as markup, so `<script>` or `<img onerror>` in a trace is shown as text.
 *
 *   const el = FailmodesTraceView.render(trace, {selected: "step-id", onSelect: id => ...});
 *   FailmodesTraceView.selectables(el)   // the elements that can be marked as a failing step
 */
(function () {
  "use strict";

  const FOLD_CHARS = 1500;
  const FOLD_LINES = 30;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function safeClass(value) {
    return String(value || "").toLowerCase().replace(/[^a-z0-9_-]/g, "").slice(0, 20) || "other";
  }

  function pretty(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string") {
      const t = value.trim();
      if ((t.startsWith("{") && t.endsWith("}")) || (t.startsWith("[") && t.endsWith("]"))) {
        try { return JSON.stringify(JSON.parse(t), null, 2); } catch (e) { /* not JSON: as written */ }
      }
      return value;
    }
    return JSON.stringify(value, null, 2);
  }

  // Long text is folded; Markdown and HTML stay plain text (textContent), never rendered.
  function textBlock(value, cls, foldLines) {
    const full = pretty(value);
    const box = el("div", "fm-text" + (cls ? " " + cls : ""));
    const lines = full.split("\n");
    const maxLines = foldLines || FOLD_LINES;
    if (full.length <= FOLD_CHARS && lines.length <= maxLines) {
      box.textContent = full;
      return box;
    }
    let head = lines.slice(0, maxLines).join("\n");
    if (head.length > FOLD_CHARS) head = head.slice(0, FOLD_CHARS);
    const body = el("span", null, head + " …");
    const more = el("button", "fm-more", "show all (" + (full.length - head.length) + " more characters)");
    more.type = "button";
    more.addEventListener("click", function (ev) {
      ev.stopPropagation();
      body.textContent = full;
      more.remove();
    });
    box.append(body, el("br"), more);
    return box;
  }

  function msgText(message) {
    const c = message.content;
    if (c === null || c === undefined) return "";
    if (typeof c === "string") return c;
    if (Array.isArray(c)) {
      return c.map(function (part) {
        if (part && part.type === "text") return String(part.text || "");
        return "[" + String((part && part.type) || "part") + "] " + pretty(part);
      }).join("\n");
    }
    return pretty(c);
  }

  function selectable(node, id, opts) {
    node.classList.add("fm-selectable");
    node.setAttribute("data-step", id);
    if (opts.selected === id) node.classList.add("fm-selected");
    if (opts.marked === id) node.classList.add("fm-marked");
    node.addEventListener("click", function (ev) {
      if (ev.target.closest && ev.target.closest("button, summary")) return;
      ev.stopPropagation();
      if (opts.onSelect) opts.onSelect(id);
    });
  }

  function renderMessages(trace, opts) {
    const section = el("section", "fm-section fm-conversation");
    section.append(el("h3", null, "Conversation"));
    let messages = trace.messages || [];
    if (!messages.length) {
      messages = [];
      if (trace.input) messages.push({role: "user", content: trace.input});
      if (trace.output !== null && trace.output !== undefined) messages.push({role: "assistant", content: trace.output});
    }
    messages.forEach(function (m, i) {
      const box = el("div", "fm-msg fm-role-" + safeClass(m.role));
      const head = el("div", "fm-msg-head");
      head.append(el("span", "fm-role", m.role));
      if (m.name) head.append(el("span", "fm-name", m.name));
      if (m.tool_call_id) head.append(el("span", "fm-muted", "result of " + m.tool_call_id));
      head.append(el("span", "fm-index", "#" + i));
      box.append(head);
      const text = msgText(m);
      // a system prompt is long and the same in every trace: fold it to a few lines
      // tool results are often whole records: a dozen lines show what came back
      if (text) box.append(textBlock(text, m.role === "tool" ? "fm-code" : "", m.role === "system" ? 4 : m.role === "tool" ? 12 : 0));
      (m.tool_calls || []).forEach(function (call) {
        const fn = call.function || {};
        const tc = el("div", "fm-toolcall");
        const th = el("div", "fm-toolcall-head");
        th.append(el("span", "fm-badge fm-kind-tool", "tool call"), el("code", "fm-toolname", fn.name || "?"));
        if (call.id) th.append(el("span", "fm-muted", call.id));
        tc.append(th, textBlock(fn.arguments, "fm-code"));
        box.append(tc);
      });
      selectable(box, "message:" + i, opts);
      section.append(box);
    });
    return section;
  }

  function duration(step) {
    if (step.start_ms === null || step.start_ms === undefined || step.end_ms === null || step.end_ms === undefined) return "";
    const ms = step.end_ms - step.start_ms;
    return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : Math.round(ms) + " ms";
  }

  function renderSteps(trace, opts) {
    const steps = trace.steps || [];
    const section = el("section", "fm-section fm-steps");
    section.append(el("h3", null, "Steps (" + steps.length + ")"));
    const children = new Map();
    const ids = new Set(steps.map(function (s) { return s.id; }));
    steps.forEach(function (s) {
      const parent = s.parent_id && ids.has(s.parent_id) ? s.parent_id : null;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(s);
    });
    const t0 = Math.min.apply(null, steps.map(function (s) { return s.start_ms === null || s.start_ms === undefined ? Infinity : s.start_ms; }));
    function node(step, depth) {
      const d = el("details", "fm-step fm-status-" + safeClass(step.status));
      d.open = depth < 2;
      const sum = el("summary");
      sum.append(
        el("span", "fm-badge fm-kind-" + safeClass(step.kind), step.kind),
        el("span", "fm-stepname", step.name || step.id),
        el("span", "fm-badge fm-st-" + safeClass(step.status), step.status)
      );
      const dur = duration(step);
      if (dur) sum.append(el("span", "fm-muted", dur + (isFinite(t0) ? " @ +" + Math.round(step.start_ms - t0) + " ms" : "")));
      if (step.tokens && step.tokens.total) sum.append(el("span", "fm-muted", step.tokens.total + " tok"));
      d.append(sum);
      const body = el("div", "fm-step-body");
      if (step.error) body.append(el("div", "fm-label", "error"), textBlock(step.error, "fm-error"));
      if (step.input !== null && step.input !== undefined) body.append(el("div", "fm-label", "input"), textBlock(step.input, "fm-code"));
      if (step.output !== null && step.output !== undefined) body.append(el("div", "fm-label", "output"), textBlock(step.output, "fm-code"));
      if (step.attributes && Object.keys(step.attributes).length) {
        const a = el("details", "fm-attrs");
        a.append(el("summary", null, "attributes"), textBlock(step.attributes, "fm-code"));
        body.append(a);
      }
      (children.get(step.id) || []).forEach(function (c) { body.append(node(c, depth + 1)); });
      d.append(body);
      selectable(sum, step.id, opts);
      return d;
    }
    (children.get(null) || []).forEach(function (s) { section.append(node(s, 0)); });
    return section;
  }

  function renderMeta(trace) {
    const section = el("section", "fm-section fm-meta");
    section.append(el("h3", null, "Metadata"));
    const table = el("table", "fm-kv");
    [["metadata", trace.metadata || {}], ["labels", trace.labels || {}]].forEach(function (pair) {
      Object.keys(pair[1]).forEach(function (k) {
        const tr = el("tr");
        tr.append(el("th", null, (pair[0] === "labels" ? "labels." : "") + k));
        const td = el("td");
        td.append(textBlock(pair[1][k]));
        tr.append(td);
        table.append(tr);
      });
    });
    if (!table.children.length) section.append(el("p", "fm-muted", "none"));
    else section.append(table);
    return section;
  }

  function render(trace, options) {
    const opts = options || {};
    const root = el("article", "fm-trace");
    root.append(el("h2", "fm-trace-id", trace.id));
    root.append(renderMessages(trace, opts));
    if ((trace.steps || []).length) root.append(renderSteps(trace, opts));
    root.append(renderMeta(trace));
    return root;
  }

  function selectables(root) {
    return Array.prototype.slice.call(root.querySelectorAll("[data-step]"));
  }

  window.FailmodesTraceView = Object.freeze({render: render, selectables: selectables, pretty: pretty});
})();
