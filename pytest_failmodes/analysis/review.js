/* failmodes review: one trace at a time, keyboard first, every change saved as it is made.
 *
 * All URLs are relative: the page lives under /TOKEN/, so every request carries the token.
 * Trace content reaches the DOM only through FailmodesTraceView (textContent).
 */
(function () {
  "use strict";

  const $ = function (id) { return document.getElementById(id); };
  const AUTOSAVE_MS = 400;
  let state = null;
  let cur = null;          // {q, trace, note}
  let selected = null;     // selected step id
  let marked = null;       // first failing step
  let verdict = null;
  let timer = null;
  let chain = Promise.resolve();
  let modeTags = [];

  function setStatus(text, bad) {
    const s = $("status");
    s.textContent = text;
    s.className = bad ? "bad" : "";
  }

  async function api(path, body, keepalive) {
    const init = body === undefined ? {} : {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body), keepalive: !!keepalive
    };
    const res = await fetch(path, init);
    let data = null;
    try { data = await res.json(); } catch (e) { data = {error: "unreadable reply (" + res.status + ")"}; }
    if (!res.ok) {
      const err = new Error((data && data.error) || ("HTTP " + res.status));
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function parseTags(text) {
    const seen = [];
    text.split(",").forEach(function (t) {
      const v = t.trim().replace(/\s+/g, " ");
      if (v && seen.indexOf(v) < 0) seen.push(v);
    });
    return seen;
  }

  // -- rendering -------------------------------------------------------------------------
  function renderTrace() {
    const box = $("trace");
    box.replaceChildren(FailmodesTraceView.render(cur.trace, {
      selected: selected, marked: marked, onSelect: function (id) { select(id); }
    }));
    box.setAttribute("data-q", String(cur.q));
    box.setAttribute("data-trace-id", cur.trace.id);
  }

  function select(id) {
    selected = id;
    document.querySelectorAll("#trace .fm-selected").forEach(function (n) { n.classList.remove("fm-selected"); });
    const node = Array.prototype.find.call(document.querySelectorAll("#trace [data-step]"), function (n) {
      return n.getAttribute("data-step") === id;
    });
    if (node) {
      node.classList.add("fm-selected");
      node.scrollIntoView({block: "nearest"});
    }
  }

  function moveSelection(delta) {
    const all = FailmodesTraceView.selectables($("trace"));
    if (!all.length) return;
    const ids = all.map(function (n) { return n.getAttribute("data-step"); });
    let i = ids.indexOf(selected);
    i = i < 0 ? (delta > 0 ? 0 : ids.length - 1) : Math.max(0, Math.min(ids.length - 1, i + delta));
    select(ids[i]);
  }

  function renderForm() {
    const n = cur.note || {};
    verdict = n.verdict || null;
    marked = n.first_failing_step || null;
    $("note").value = n.note || "";
    $("tags").value = (n.tags || []).join(", ");
    renderVerdict();
    $("ffs").textContent = marked || "—";
    const judge = $("judge");
    judge.hidden = true;
    judge.replaceChildren();
  }

  function renderVerdict() {
    document.querySelectorAll(".verdicts button").forEach(function (b) {
      b.classList.toggle("on", b.getAttribute("data-verdict") === verdict);
      b.setAttribute("aria-pressed", b.getAttribute("data-verdict") === verdict ? "true" : "false");
    });
  }

  function pct(x) { return x === null || x === undefined ? "—" : (100 * x).toFixed(1) + "%"; }

  function renderState() {
    if (!state) return;
    $("where").textContent = state.dataset + " · reviewer " + state.reviewer;
    const q = cur ? cur.q + 1 : 0;
    $("progress").textContent = "trace " + q + " of " + state.queue + " · done " + state.done + " / " + state.queue +
      (state.total !== state.queue ? " (dataset " + state.total + ")" : "");
    $("show-judge").hidden = !state.has_verdicts;
    $("mode-tags").hidden = !state.has_modes || modeTags.length > 0;
    $("undo").disabled = !state.can_undo;
    const list = $("tag-list");
    list.replaceChildren();
    const chips = $("known-tags");
    chips.replaceChildren();
    state.tags.concat(modeTags.filter(function (t) { return state.tags.indexOf(t) < 0; })).slice(0, 40).forEach(function (t) {
      const o = document.createElement("option");
      o.value = t;
      list.append(o);
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.textContent = t;
      chip.addEventListener("click", function () { addTag(t); });
      chips.append(chip);
    });
    renderSaturation(state.saturation);
    renderAgreement(state.agreement);
  }

  function renderSaturation(s) {
    const box = $("saturation");
    box.replaceChildren();
    const h = document.createElement("h3");
    h.textContent = "Saturation";
    box.append(h);
    const lines = [
      "notes with a verdict: " + s.notes + " · distinct tags: " + Object.keys(s.tags).length + " (seen once: " + s.singletons + ")",
      "chance the next trace shows a new tag (Good–Turing): " + pct(s.p_new) +
        (s.interval ? " [" + pct(s.interval[0]) + ", " + pct(s.interval[1]) + "]" : ""),
      "new tags in the last " + s.window + " notes: " + (s.new_recent.length ? s.new_recent.join(", ") : "none"),
    ];
    lines.forEach(function (t) {
      const p = document.createElement("p");
      p.textContent = t;
      box.append(p);
    });
    const advice = document.createElement("p");
    advice.id = "stop-advice";
    advice.className = s.suggest_stop ? "good" : "fm-muted";
    advice.textContent = s.suggest_stop
      ? "Under " + pct(s.threshold) + ": new traces rarely show anything new — you can stop and group your notes."
      : "Keep reading: stop when the chance falls under " + pct(s.threshold) + " (after at least " + s.window + " notes).";
    box.append(advice);
  }

  function renderAgreement(list) {
    const box = $("agreement");
    box.replaceChildren();
    if (!list.length) return;
    const h = document.createElement("h3");
    h.textContent = "Agreement";
    box.append(h);
    list.forEach(function (a) {
      const p = document.createElement("p");
      p.className = "kappa";
      p.textContent = a.shown
        ? "with " + a.other + ": Cohen's κ = " + (a.kappa === null ? "undefined (one label only)" : a.kappa.toFixed(2)) +
          " on " + a.common + " traces (" + a.agree + " agree)"
        : "with " + a.other + ": " + a.common + " traces in common; κ is shown from 20";
      box.append(p);
    });
  }

  // -- saving ----------------------------------------------------------------------------
  function payload(commit) {
    return {
      q: cur.q, verdict: verdict, note: $("note").value, tags: parseTags($("tags").value),
      first_failing_step: marked, commit: !!commit
    };
  }

  function save(commit) {
    if (!cur) return chain;
    clearTimeout(timer);
    timer = null;
    const body = payload(commit);
    setStatus("saving…");
    chain = chain.then(function () {
      return api("api/note", body).then(function (data) {
        state = data.state;
        if (cur && cur.q === body.q) cur.note = data.note;
        renderState();
        setStatus("saved");
      });
    }).catch(function (err) {
      setStatus("NOT SAVED: " + err.message, true);
    });
    return chain;
  }

  function autosave() {
    clearTimeout(timer);
    setStatus("typing…");
    timer = setTimeout(function () { save(false); }, AUTOSAVE_MS);
  }

  async function flush() {
    if (timer) await save(false);
    await chain;
  }

  // -- navigation ------------------------------------------------------------------------
  async function go(q) {
    if (!state || q < 0 || q >= state.queue) return;
    await flush();
    try {
      cur = await api("api/trace?q=" + q);
    } catch (err) {
      setStatus("cannot load trace " + (q + 1) + ": " + err.message, true);
      return;
    }
    selected = null;
    renderForm();
    renderTrace();
    renderState();
    $("trace").scrollTop = 0;
    window.scrollTo(0, 0);
    history.replaceState(null, "", "#" + (q + 1));
  }

  function setVerdict(v) {
    verdict = v;
    renderVerdict();
    save(true);
  }

  function addTag(t) {
    const tags = parseTags($("tags").value);
    if (tags.indexOf(t) < 0) tags.push(t);
    $("tags").value = tags.join(", ");
    save(false);
  }

  function mark() {
    if (!selected) {
      setStatus("select a step or message first ([ / ] or click)", true);
      return;
    }
    marked = selected;
    $("ffs").textContent = marked;
    document.querySelectorAll("#trace .fm-marked").forEach(function (n) { n.classList.remove("fm-marked"); });
    document.querySelectorAll("#trace .fm-selected").forEach(function (n) { n.classList.add("fm-marked"); });
    save(true);
  }

  async function saveNext() {
    await save(true);
    if (cur.q + 1 < state.queue) await go(cur.q + 1);
    else setStatus("saved — that was the last trace of the queue");
  }

  async function undo() {
    await flush();
    try {
      const data = await api("api/undo", {});
      state = data.state;
      if (!cur || cur.q !== data.q) {
        cur = await api("api/trace?q=" + data.q);
      } else {
        cur.note = data.note;
      }
      renderForm();
      renderTrace();
      renderState();
      setStatus("undone");
    } catch (err) {
      setStatus(err.message, true);
    }
  }

  async function showJudge() {
    const box = $("judge");
    if (!box.hidden) { box.hidden = true; return; }
    await flush();
    box.replaceChildren();
    try {
      const data = await api("api/verdicts?q=" + cur.q);
      const h = document.createElement("h3");
      h.textContent = "Judge and rules";
      box.append(h);
      if (data.outcome) {
        const p = document.createElement("p");
        p.className = "outcome";
        p.textContent = "outcome " + data.outcome.field + " = " + JSON.stringify(data.outcome.value) +
          (data.outcome.failed === null ? " (missing)" : data.outcome.failed ? " → failed" : " → passed");
        box.append(p);
      }
      if (!data.verdicts.length && !data.outcome) box.append(document.createTextNode("no verdicts for this trace"));
      data.verdicts.forEach(function (v) {
        const p = document.createElement("div");
        p.className = "verdict v-" + (v.verdict === "fail" ? "fail" : v.verdict === "pass" ? "pass" : "other");
        const b = document.createElement("strong");
        b.textContent = v.mode + ": " + v.verdict;
        const r = document.createElement("div");
        r.className = "fm-text";
        r.textContent = v.reason;
        p.append(b, r);
        box.append(p);
      });
      box.hidden = false;
    } catch (err) {
      setStatus(err.message, true);
    }
  }

  async function offerModes() {
    try {
      modeTags = (await api("api/modes")).modes;
      renderState();
    } catch (err) {
      setStatus(err.message, true);
    }
  }

  function toggleHelp(show) {
    $("help").hidden = show === undefined ? !$("help").hidden : !show;
  }

  // -- keys ------------------------------------------------------------------------------
  function onKey(ev) {
    const typing = ev.target && (ev.target.tagName === "TEXTAREA" || ev.target.tagName === "INPUT");
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      saveNext();
      return;
    }
    if (ev.key === "Escape") {
      if (typing) ev.target.blur();
      toggleHelp(false);
      return;
    }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const actions = {
      j: function () { go(cur.q + 1); }, ArrowRight: function () { go(cur.q + 1); },
      k: function () { go(cur.q - 1); }, ArrowLeft: function () { go(cur.q - 1); },
      "1": function () { setVerdict("pass"); }, "2": function () { setVerdict("fail"); }, d: function () { setVerdict("defer"); },
      n: function () { $("note").focus(); }, u: undo, s: mark, v: showJudge, "?": function () { toggleHelp(); },
      "[": function () { moveSelection(-1); }, "]": function () { moveSelection(1); },
    };
    const act = actions[ev.key];
    if (act && cur) {
      ev.preventDefault();
      act();
    }
  }

  async function start() {
    document.addEventListener("keydown", onKey);
    $("note").addEventListener("input", autosave);
    $("tags").addEventListener("input", autosave);
    $("prev").addEventListener("click", function () { go(cur.q - 1); });
    $("next").addEventListener("click", function () { go(cur.q + 1); });
    $("undo").addEventListener("click", undo);
    $("save-next").addEventListener("click", saveNext);
    $("show-judge").addEventListener("click", showJudge);
    $("mark-step").addEventListener("click", mark);
    $("mode-tags").addEventListener("click", offerModes);
    $("help-btn").addEventListener("click", function () { toggleHelp(); });
    $("help-close").addEventListener("click", function () { toggleHelp(false); });
    document.querySelectorAll(".verdicts button").forEach(function (b) {
      b.addEventListener("click", function () { setVerdict(b.getAttribute("data-verdict")); });
    });
    // a tab closed within the autosave delay still sends what was typed
    window.addEventListener("pagehide", function () {
      if (timer) { clearTimeout(timer); timer = null; api("api/note", payload(false), true).catch(function () {}); }
    });
    try {
      state = await api("api/state");
    } catch (err) {
      setStatus("cannot reach the review server: " + err.message, true);
      return;
    }
    if (!state.queue) {
      $("trace").textContent = "no traces to review";
      return;
    }
    await go(state.resume);
    setStatus(state.done ? "resumed at the first trace not done" : "ready — press ? for keys");
  }

  start();
})();
