// runcast dashboard: the task detail panel (a task's output, live and kept).
//
// dashboard.js creates it with what it shares (helpers, the task rows, `send`) and
// feeds it the task_output frames of the "*" subscription. Opening a task asks
// /api/tasks/ID/output for its newest lines; frames that arrive meanwhile are held
// and applied on top of the answer (only those after its `seq`), so nothing shows
// twice or goes missing. Each line carries the server's line number `n`, so "load
// earlier" asks for the lines before the oldest one shown.
"use strict";

window.RuncastTaskDetail = function createTaskDetail(shared) {
  const { $, fetchJson, send, rowOf, fmtInt, fmtUsd, canCommand } = shared;
  // Lines fetched at a time, lines kept in the page for the open task, stderr lines
  // shown apart for a failed task.
  const PAGE = 200;
  const MAX_LINES = 2000;
  const MAX_LOADED = 10000;
  const STDERR_TAIL = 10;
  const ACTIVE = new Set(["queued", "running", "retrying"]);

  let detail = null;

  function fresh(taskId) {
    return {
      taskId, lines: [], pending: [], loading: true, seq: 0, lastN: 0,
      firstKept: 1, notKept: 0, dropped: 0, stderr: [], dirty: true, error: "",
    };
  }

  function path(taskId, query) {
    return `api/tasks/${encodeURIComponent(taskId)}/output?${new URLSearchParams(query)}`;
  }

  async function open(taskId) {
    const mine = (detail = fresh(taskId));
    $("task-detail").hidden = false;
    $("detail-task-id").textContent = taskId;
    render();
    try {
      const page = await fetchJson(path(taskId, { limit: String(PAGE) }));
      if (detail !== mine) return;
      mine.lines = page.lines;
      mine.seq = page.seq;
      mine.lastN = page.last;
      mine.firstKept = page.first_kept;
      mine.notKept = page.not_kept;
      mine.loading = false;
      for (const frame of mine.pending) if (frame.seq > mine.seq) append(frame);
      mine.pending = [];
      await loadStderr(mine);
    } catch (err) {
      if (detail === mine) {
        mine.loading = false;
        mine.error = `could not load the output: ${err.message || err}`;
      }
    }
    mine.dirty = true;
    render();
  }

  async function loadStderr(mine) {
    const row = rowOf(mine.taskId);
    if (!row || row.state !== "failed") {
      mine.stderr = [];
      return;
    }
    const page = await fetchJson(path(mine.taskId, { limit: String(STDERR_TAIL), stream: "stderr" }));
    if (detail === mine) mine.stderr = page.lines;
  }

  async function loadEarlier() {
    const mine = detail;
    if (!mine || mine.loading || !mine.lines.length) return;
    const before = mine.lines[0].n;
    mine.loading = true;
    try {
      const page = await fetchJson(path(mine.taskId, { before: String(before), limit: String(PAGE) }));
      if (detail !== mine) return;
      mine.lines = page.lines.concat(mine.lines);
      mine.firstKept = page.first_kept;
      mine.notKept = page.not_kept;
      mine.dropped = Math.max(0, mine.dropped - page.lines.length);
    } catch (err) {
      mine.error = `could not load earlier lines: ${err.message || err}`;
    } finally {
      mine.loading = false;
      mine.dirty = true;
      render();
    }
  }

  function append(frame) {
    const data = frame.data || {};
    if (typeof data.line !== "string") return;
    for (const text of data.line.split("\n")) {
      detail.lastN += 1;
      detail.lines.push({ n: detail.lastN, stream: data.stream || "stdout", text });
    }
    const excess = detail.lines.length - MAX_LINES;
    if (excess > 0) {
      detail.lines.splice(0, excess);
      detail.dropped += excess;
    }
    detail.dirty = true;
  }

  // Every task_output frame of the session, and every task's end (a failed task's
  // stderr is shown apart).
  function onFrame(frame) {
    if (!detail || frame.task_id !== detail.taskId) return;
    if (frame.event === "task_output") {
      if (detail.loading && detail.pending.length < MAX_LINES) detail.pending.push(frame);
      else if (!detail.loading) append(frame);
    } else if (frame.event === "task_failed") {
      const mine = detail;
      loadStderr(mine).then(() => { mine.dirty = true; render(); }, () => {});
    }
  }

  // A gap in the stream: the live numbering may be off, so ask again.
  function resync() {
    if (detail) open(detail.taskId);
  }

  function close() {
    detail = null;
    $("task-detail").hidden = true;
  }

  function lineNodes(lines) {
    const fragment = document.createDocumentFragment();
    for (const line of lines) {
      const div = document.createElement("div");
      div.className = "line";
      div.dataset.stream = line.stream;
      div.textContent = line.text;
      fragment.appendChild(div);
    }
    return fragment;
  }

  function renderFacts(row) {
    const facts = [
      ["state", row ? row.state : "–"],
      ["attempts", row ? String(row.attempts) : "–"],
      ["exit code", row && row.exitCode !== null && row.exitCode !== undefined ? String(row.exitCode) : "–"],
      ["error", row && row.error ? row.error : "–"],
      ["tokens", row ? `in ${fmtInt(row.input_tokens)} · out ${fmtInt(row.output_tokens)} · cache ${fmtInt(row.cache_read_tokens)} / ${fmtInt(row.cache_write_tokens)}` : "–"],
      ["cost", row ? (row.unpriced ? `${fmtUsd(row.cost)} + unpriced` : fmtUsd(row.cost)) : "–"],
    ];
    const list = document.createDocumentFragment();
    for (const [label, value] of facts) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dd.dataset.fact = label.replace(" ", "-");
      list.appendChild(dt);
      list.appendChild(dd);
    }
    $("detail-facts").replaceChildren(list);
  }

  function render() {
    if (!detail) return;
    const row = rowOf(detail.taskId);
    $("detail-name").textContent = row && row.name ? row.name : "";
    renderFacts(row);
    $("btn-detail-cancel").disabled = !canCommand() || !row || !ACTIVE.has(row.state);
    if (!detail.dirty) return;
    detail.dirty = false;
    const oldest = detail.lines.length ? detail.lines[0].n : detail.lastN + 1;
    const earlier = oldest > detail.firstKept && detail.lines.length < MAX_LOADED;
    $("btn-load-earlier").hidden = !earlier;
    $("detail-not-kept").hidden = detail.notKept === 0 || earlier;
    $("detail-not-kept").textContent = `${fmtInt(detail.notKept)} earlier lines not kept`;
    $("detail-stderr-box").hidden = detail.stderr.length === 0;
    $("detail-stderr").replaceChildren(lineNodes(detail.stderr));
    const output = $("detail-output");
    const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    output.replaceChildren(lineNodes(detail.lines));
    if (atBottom) output.scrollTop = output.scrollHeight;
    let status = detail.error;
    if (!status && detail.loading) status = "loading…";
    if (!status && !detail.lines.length) status = "no output yet";
    $("detail-status").textContent = status;
  }

  $("btn-detail-close").addEventListener("click", close);
  $("btn-load-earlier").addEventListener("click", loadEarlier);
  $("btn-detail-cancel").addEventListener("click", () => {
    if (detail) send({ type: "command", action: "cancel", task_id: detail.taskId });
  });

  return { open, onFrame, resync, render, close };
};
