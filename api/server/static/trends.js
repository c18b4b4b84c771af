// runcast dashboard: the session over time (cost and tokens charts, the spend rate,
// when the budget and the queue run out at that rate) and usage per model.
//
// Everything comes from the event stream: session_update frames are sampled (one a
// second at most) into a bounded history, and task_usage frames are summed per model.
// When the history is full every other sample is dropped, so the charts keep covering
// the whole time this page has watched, at a coarser grain. The charts are SVG
// polylines drawn here: no library, no build step, nothing fetched.
"use strict";

window.RuncastTrends = function createTrends(shared) {
  const { $, fmtInt, fmtUsd } = shared;
  const MAX_SAMPLES = 600;
  const SAMPLE_EVERY_MS = 1000;
  const RATE_WINDOW_MS = 60000;
  // A rate over less time than this says more about noise than about spending.
  const MIN_RATE_SPAN_MS = 2000;
  const MAX_MODELS = 50;
  const OTHER_MODELS = "(other models)";
  const CHART_W = 300;
  const CHART_H = 60;

  let samples = []; // {at, cost, tokens, done}
  let sessionId = null;
  const models = new Map(); // model -> {tokens, cost, unpriced}
  let dirty = true;

  function num(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : 0;
  }

  function onSession(data) {
    if (data.session_id !== sessionId) {
      sessionId = data.session_id;
      samples = [];
      models.clear();
    }
    const at = performance.now();
    const sample = {
      at,
      cost: num(data.estimated_cost_usd),
      tokens: num(data.total_tokens),
      done: num(data.tasks_completed) + num(data.tasks_failed) + num(data.tasks_cancelled),
    };
    const last = samples[samples.length - 1];
    if (last && at - last.at < SAMPLE_EVERY_MS) samples[samples.length - 1] = { ...sample, at: last.at };
    else samples.push(sample);
    if (samples.length > MAX_SAMPLES) samples = samples.filter((_, k) => k % 2 === 0 || k === samples.length - 1);
    dirty = true;
  }

  function onUsage(data) {
    let name = typeof data.model === "string" && data.model ? data.model : "(no model)";
    if (!models.has(name) && models.size >= MAX_MODELS) name = OTHER_MODELS;
    const entry = models.get(name) || { tokens: 0, cost: 0, unpriced: false };
    for (const key of ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]) {
      entry.tokens += num(data[key]);
    }
    entry.cost += num(data.cost_usd);
    if (data.cost_source === "unpriced") entry.unpriced = true;
    models.set(name, entry);
    dirty = true;
  }

  // Change per minute of `field` over the last minute; null without enough to go on.
  function perMinute(field) {
    if (samples.length < 2) return null;
    const last = samples[samples.length - 1];
    let first = samples[0];
    for (const sample of samples) {
      if (last.at - sample.at <= RATE_WINDOW_MS) {
        first = sample;
        break;
      }
    }
    const span = last.at - first.at;
    if (span < MIN_RATE_SPAN_MS) return null;
    return ((last[field] - first[field]) / span) * RATE_WINDOW_MS;
  }

  function fmtMinutes(minutes) {
    if (minutes < 1) return "under a minute";
    if (minutes < 120) return `~${Math.round(minutes)} min`;
    return `~${(minutes / 60).toFixed(1)} h`;
  }

  function points(field) {
    if (!samples.length) return "";
    const t0 = samples[0].at;
    const span = Math.max(1, samples[samples.length - 1].at - t0);
    const top = Math.max(...samples.map((s) => s[field])) || 1;
    return samples
      .map((s) => {
        const x = ((s.at - t0) / span) * CHART_W;
        const y = CHART_H - (s[field] / top) * (CHART_H - 2) - 1;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(" ");
  }

  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  function renderRates(session) {
    const rate = perMinute("cost");
    setText("spend-rate", rate === null ? "–" : `${fmtUsd(Math.max(0, rate))}/min`);
    let budget = "no budget";
    if (session && typeof session.budget_usd === "number") {
      const left = Math.max(0, session.budget_usd - num(session.estimated_cost_usd));
      if (left <= 0) budget = "budget reached";
      else if (rate === null) budget = "budget: not enough data yet";
      else if (rate <= 0) budget = "budget: nothing spent in the last minute";
      else budget = `budget reached in ${fmtMinutes(left / rate)} at this rate`;
    }
    setText("budget-eta", budget);
    const done = perMinute("done");
    const left = session ? num(session.tasks_queued) + num(session.tasks_running) : 0;
    let queue = "";
    if (session && left === 0) queue = "queue: empty";
    else if (done !== null && done > 0) queue = `queue done in ${fmtMinutes(left / done)} at this rate`;
    else queue = "queue: no task finished in the last minute";
    setText("queue-eta", queue);
  }

  function renderModels() {
    const rows = Array.from(models.entries()).sort((a, b) => b[1].cost - a[1].cost || b[1].tokens - a[1].tokens);
    const body = document.createDocumentFragment();
    for (const [name, entry] of rows) {
      const tr = document.createElement("tr");
      tr.dataset.model = name;
      for (const [cls, text] of [
        ["model", name],
        ["tokens", fmtInt(entry.tokens)],
        ["cost", entry.unpriced ? `${fmtUsd(entry.cost)} + unpriced` : fmtUsd(entry.cost)],
      ]) {
        const td = document.createElement("td");
        td.className = cls;
        td.textContent = text;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    $("model-rows").replaceChildren(body);
    $("models-empty").hidden = rows.length > 0;
  }

  function render(session) {
    renderRates(session);
    if (!dirty) return;
    dirty = false;
    $("chart-cost-line").setAttribute("points", points("cost"));
    $("chart-tokens-line").setAttribute("points", points("tokens"));
    const last = samples[samples.length - 1];
    setText("chart-cost-top", last ? fmtUsd(Math.max(...samples.map((s) => s.cost))) : "–");
    setText("chart-tokens-top", last ? fmtInt(Math.max(...samples.map((s) => s.tokens))) : "–");
    renderModels();
  }

  return { onSession, onUsage, render };
};
