// runcast dashboard: plain ES2020, no build step, no dependencies.
//
// It subscribes to "*" over the WebSocket, loads the task table once from
// /api/tasks (page after page), and keeps both current from the event stream.
// When the connection drops it marks everything stale and reconnects forever with
// capped exponential backoff, resubscribing with `since` = the last seq it saw so
// nothing is missed (a `since` the server refuses: afresh, without one).
"use strict";

(function () {
  const BACKOFF_INITIAL_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  // Finished tasks kept in the page (the oldest go first); the table pages through them.
  const MAX_FINISHED_ROWS = 10000;
  // Frames kept while /api/tasks is loading, to replay on top of its answer.
  const MAX_PENDING_FRAMES = 5000;
  // Rows per /api/tasks page (the server's most), pages read at most, and how often
  // a page refused with 503 (server busy) is asked for again.
  const TASKS_PAGE = 1000;
  const MAX_TASK_PAGES = 1000;
  const MAX_BUSY_RETRIES = 5;
  const STATE_OF_EVENT = {
    task_queued: "queued",
    task_started: "running",
    task_retrying: "retrying",
    task_completed: "completed",
    task_failed: "failed",
    task_cancelled: "cancelled",
  };
  // A quiet connection is probed with a ping; one silent for longer is taken for dead
  // (a server that vanished without closing TCP would otherwise leave us waiting).
  const PING_AFTER_MS = 15000;
  const DEAD_AFTER_MS = 45000;
  const FINISHED = new Set(["completed", "failed", "cancelled"]);
  const TOKEN_FIELDS = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"];

  const token = new URLSearchParams(window.location.search).get("token");

  const state = {
    session: null, // the latest session_update data
    sessionAt: 0, // performance.now() when it arrived
    lastSeq: null,
    tasks: new Map(),
    ws: null,
    attempt: 0,
    connected: false,
    subscribing: false,
    stale: true,
    needsResync: true,
    loading: false,
    pending: [],
    reconnectTimer: null,
    renderTimer: null,
    retryText: "",
    refused: null, // the HTTP status of the last refusal, until a connection is accepted
    lastFrameAt: 0,
    pinged: false,
    access: null, // /api/access: {role, commands}; controls stay disabled until known
  };
  const ACTIVE = new Set(["queued", "running", "retrying"]);
  let detail = null;
  let table = null;
  let trends = null;

  const $ = (id) => document.getElementById(id);

  // -- URLs ------------------------------------------------------------------
  function withToken(path, protocol) {
    const url = new URL(path, window.location.href);
    if (protocol) url.protocol = protocol;
    if (token) url.searchParams.set("token", token);
    return url.href;
  }

  function wsUrl() {
    return withToken("ws", window.location.protocol === "https:" ? "wss:" : "ws:");
  }

  // -- connection --------------------------------------------------------------
  function connect() {
    state.reconnectTimer = null;
    // A refusal stays on show while retrying; it only clears once a connection is accepted.
    if (state.refused === null) {
      setConn("connecting", state.attempt ? `reconnecting (attempt ${state.attempt})…` : "connecting…");
    }
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (err) {
      scheduleReconnect(String(err));
      return;
    }
    state.ws = ws;
    ws.onopen = () => {
      state.lastFrameAt = performance.now();
      state.pinged = false;
      subscribe(ws, state.lastSeq);
      if (state.needsResync) loadTasks();
      loadAccess();
    };
    ws.onmessage = (message) => {
      state.lastFrameAt = performance.now();
      state.pinged = false;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (frame && typeof frame === "object") handleFrame(frame);
    };
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
    });
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      dropConnection(event.code === 1000 ? "closed by server" : `closed (${event.code})`);
      // Browsers do not say why a handshake failed; ask over HTTP whether it was the token.
      if (!opened) probeRefusal();
    };
  }

  function dropConnection(why) {
    const ws = state.ws;
    state.ws = null;
    state.connected = false;
    state.subscribing = false;
    if (ws) {
      ws.onmessage = null; // a dropped connection's late frames must not count as fresh
      if (ws.readyState <= WebSocket.OPEN) ws.close();
    }
    markStale();
    scheduleReconnect(why);
  }

  function checkAlive() {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
    const quiet = performance.now() - state.lastFrameAt;
    if (quiet >= DEAD_AFTER_MS) {
      dropConnection(`no answer for ${Math.round(quiet / 1000)}s`);
    } else if (quiet >= PING_AFTER_MS && !state.pinged) {
      state.pinged = true;
      state.ws.send(JSON.stringify({ type: "ping" }));
    }
  }

  function subscribe(ws, since) {
    const frame = { type: "subscribe", task_id: "*" };
    if (since !== null) frame.since = since;
    state.subscribing = true;
    ws.send(JSON.stringify(frame));
  }

  function scheduleReconnect(why) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.min(state.attempt, 20));
    const delay = Math.min(BACKOFF_MAX_MS, base * (0.8 + 0.4 * Math.random()));
    state.attempt += 1;
    state.retryText = `retrying in ${(delay / 1000).toFixed(1)}s`;
    if (state.refused !== null) showRefused();
    else setConn("disconnected", `disconnected (${why}); ${state.retryText}`);
    render();
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  async function probeRefusal() {
    let status;
    try {
      status = (await fetch(withToken("api/session"), { cache: "no-store" })).status;
    } catch (err) {
      return; // unreachable: the "disconnected" status already says so
    }
    if (status === 401 || status === 403) {
      state.refused = status;
      if (!state.ws) showRefused();
    }
  }

  function showRefused() {
    setConn("refused", `refused (${state.refused}): check the ?token= of this page; ${state.retryText}`);
  }

  function setConn(kind, text) {
    const el = $("conn-status");
    el.dataset.state = kind;
    el.textContent = text;
  }

  function send(frame) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      showResult("not connected", "error");
      return;
    }
    state.ws.send(JSON.stringify(frame));
  }

  // -- frames ----------------------------------------------------------------
  function handleFrame(frame) {
    switch (frame.type) {
      case "subscribed":
        state.refused = null;
        state.subscribing = false;
        state.connected = true;
        state.attempt = 0;
        setConn("connected", "connected");
        break;
      case "event":
        if (state.loading && frame.event !== "session_update") {
          if (state.pending.length < MAX_PENDING_FRAMES) state.pending.push(frame);
        }
        handleEvent(frame);
        break;
      case "gap":
        state.needsResync = true;
        loadTasks();
        if (detail) detail.resync();
        break;
      case "command_result":
        showResult(`${frame.action}: ${frame.status}`, "ok");
        break;
      case "error":
        if (state.subscribing && state.ws) {
          // The server would not replay from our `since` (e.g. it restarted): start afresh.
          state.needsResync = true;
          subscribe(state.ws, null);
          loadTasks();
        }
        showResult(String(frame.error), "error");
        break;
      default:
        break;
    }
  }

  function handleEvent(frame) {
    const data = frame.data || {};
    if (frame.event === "session_update") {
      applySession(frame.seq, data);
      if (trends) trends.onSession(data);
    } else {
      if (frame.event === "task_usage" && trends) trends.onUsage(data);
      noteSeq(frame.seq);
      if (frame.task_id && frame.task_id !== "*") {
        applyTask(frame, true);
        if (detail) detail.onFrame(frame);
      } else if (state.session) {
        applySessionEvent(frame.event, data);
      }
    }
    scheduleRender();
  }

  function noteSeq(seq) {
    if (typeof seq === "number") state.lastSeq = state.lastSeq === null ? seq : Math.max(state.lastSeq, seq);
  }

  function applySession(seq, data) {
    const restarted = state.session !== null && (
      data.session_id !== state.session.session_id ||
      (state.lastSeq !== null && typeof seq === "number" && seq < state.lastSeq));
    if (restarted) {
      // A new server process: its seqs start again and the old rows are not its tasks.
      state.tasks.clear();
      state.lastSeq = seq;
      state.needsResync = true;
      loadTasks();
    } else {
      noteSeq(seq);
    }
    state.session = data;
    state.sessionAt = performance.now();
    clearStale();
  }

  function applySessionEvent(name, data) {
    if (name === "executor_paused") {
      state.session.is_paused = true;
      if (typeof data.by === "string") state.session.paused_by = data.by;
      if (typeof data.reason === "string") state.session.pause_reason = data.reason;
    } else if (name === "executor_resumed") {
      state.session.is_paused = false;
      state.session.paused_by = null;
      state.session.pause_reason = null;
    }
    else if (name === "budget_changed") state.session.budget_usd = data.budget_usd;
  }

  function applyTask(frame, withUsage) {
    const data = frame.data || {};
    let row = state.tasks.get(frame.task_id);
    if (!row) {
      row = emptyRow(frame.task_id);
      state.tasks.set(frame.task_id, row);
    }
    if (frame.event === "task_usage") {
      if (!withUsage) return;
      for (const key of TOKEN_FIELDS) row[key] += num(data[key]);
      row.cost += num(data.cost_usd);
      if (data.cost_source === "unpriced") {
        for (const key of TOKEN_FIELDS) row.unpriced += num(data[key]);
      }
      return;
    }
    const next = STATE_OF_EVENT[frame.event];
    if (!next) return;
    row.state = next;
    if (typeof data.name === "string" && data.name) row.name = data.name;
    if (typeof data.attempt === "number") row.attempts = Math.max(row.attempts, data.attempt);
    if ("exit_code" in data) row.exitCode = data.exit_code;
    if (frame.event === "task_started") {
      row.startedAt = Date.parse(frame.time);
      row.endedAt = null;
      row.error = "";
      row.exitCode = null;
      row.stderrTail = null;
    } else if (FINISHED.has(next)) {
      row.endedAt = Date.parse(frame.time);
      row.error = data.error || data.reason || "";
    }
  }

  function emptyRow(taskId) {
    return {
      taskId, name: "", state: "queued", attempts: 0, startedAt: null, endedAt: null,
      input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0,
      cost: 0, unpriced: 0, error: "", exitCode: null,
      stderrTail: null, // a failed task's last stderr lines, once fetched
    };
  }

  function rowFromApi(api) {
    const row = emptyRow(String(api.task_id));
    row.name = api.name || "";
    row.state = api.state || "queued";
    row.attempts = num(api.attempts);
    row.startedAt = api.started_at ? Date.parse(api.started_at) : null;
    row.endedAt = api.ended_at ? Date.parse(api.ended_at) : null;
    for (const key of TOKEN_FIELDS) row[key] = num(api[key]);
    row.cost = num(api.estimated_cost_usd);
    row.unpriced = num(api.unpriced_tokens);
    row.error = api.error || "";
    row.exitCode = typeof api.exit_code === "number" ? api.exit_code : null;
    return row;
  }

  function forgetFinished() {
    let excess = -MAX_FINISHED_ROWS;
    for (const row of state.tasks.values()) if (FINISHED.has(row.state)) excess += 1;
    for (const [key, row] of state.tasks) {
      if (excess <= 0) break;
      if (FINISHED.has(row.state)) {
        state.tasks.delete(key);
        excess -= 1;
      }
    }
  }

  async function loadTasks() {
    if (state.loading) return;
    state.loading = true;
    state.pending = [];
    try {
      const rows = await fetchAllTasks();
      if (rows === null) return;
      const old = state.tasks;
      state.tasks = new Map();
      for (const api of rows) {
        const row = rowFromApi(api);
        const known = old.get(row.taskId);
        if (known && known.state === row.state) row.stderrTail = known.stderrTail;
        state.tasks.set(row.taskId, row);
      }
      // Transitions seen while loading may be newer than the answer; replaying them in
      // order leaves each task in its latest state. Usage is already in the answer.
      for (const frame of state.pending) applyTask(frame, false);
      forgetFinished();
      state.needsResync = false;
    } catch (err) {
      showResult(`could not load tasks: ${err}`, "error");
    } finally {
      state.loading = false;
      state.pending = [];
      scheduleRender();
    }
  }

  // Every row of /api/tasks, following each page's `next`; null if the token was refused.
  async function fetchAllTasks() {
    const headers = authHeaders();
    const rows = [];
    let after = null;
    let busy = 0;
    for (let page = 0; page < MAX_TASK_PAGES; ) {
      const url = new URL(withToken("api/tasks"));
      url.searchParams.set("limit", String(TASKS_PAGE));
      if (after !== null) url.searchParams.set("after", after);
      const response = await fetch(url.href, { headers, cache: "no-store" });
      if (response.status === 401 || response.status === 403) {
        setConn("disconnected", `refused (${response.status}): check the ?token= of this page`);
        return null;
      }
      if (response.status === 503 && busy < MAX_BUSY_RETRIES) {
        busy += 1;
        const wait = Number(response.headers.get("Retry-After")) || 1;
        await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 30) * 1000));
        continue;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      for (const api of body.tasks || []) rows.push(api);
      after = typeof body.next === "string" ? body.next : null;
      if (after === null) return rows;
      page += 1;
    }
    throw new Error(`more than ${MAX_TASK_PAGES} pages of tasks`);
  }

  function authHeaders() {
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  // GET a JSON endpoint; an error answer throws with the server's reason.
  async function fetchJson(path) {
    const response = await fetch(withToken(path), { headers: authHeaders(), cache: "no-store" });
    if (!response.ok) {
      const text = (await response.text()).trim();
      throw new Error(text || `HTTP ${response.status}`);
    }
    return response.json();
  }

  // Whether this page's token may send commands: a viewer's page says read-only.
  async function loadAccess() {
    try {
      state.access = await fetchJson("api/access");
    } catch (err) {
      return; // refused or unreachable: the connection status says so
    }
    scheduleRender();
  }

  function canCommand() {
    return Boolean(state.connected && state.access && state.access.commands);
  }

  // -- stale marking -----------------------------------------------------------
  function markStale() {
    state.stale = true;
    for (const id of ["session", "tasks"]) {
      $(id).classList.add("stale");
      $(id).dataset.stale = "true";
    }
  }

  function clearStale() {
    state.stale = false;
    for (const id of ["session", "tasks"]) {
      $(id).classList.remove("stale");
      $(id).dataset.stale = "false";
    }
  }

  // -- rendering ---------------------------------------------------------------
  function num(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : 0;
  }

  function fmtInt(value) {
    return num(value).toLocaleString("en-US");
  }

  function fmtUsd(value) {
    const amount = num(value);
    // Whole cents (budgets, mostly) read better as $0.50; small costs need four places.
    const cents = Math.abs(amount * 100 - Math.round(amount * 100)) < 1e-9;
    return amount >= 1 || cents ? `$${amount.toFixed(2)}` : `$${amount.toFixed(4)}`;
  }

  function fmtDuration(seconds) {
    const whole = Math.max(0, Math.floor(seconds));
    const h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    const s = whole % 60;
    const pad = (n) => String(n).padStart(2, "0");
    if (h) return `${h}h${pad(m)}m${pad(s)}s`;
    if (m) return `${m}m${pad(s)}s`;
    return `${s}s`;
  }

  function scheduleRender() {
    if (state.renderTimer === null) state.renderTimer = setTimeout(render, 50);
  }

  function render() {
    clearTimeout(state.renderTimer);
    state.renderTimer = null;
    renderSession();
    forgetFinished();
    if (table) table.render(state.tasks);
    if (trends) trends.render(state.session);
    if (detail) detail.render();
  }

  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  function sessionDuration() {
    const s = state.session;
    if (!s) return 0;
    // The server counts from the first task start: before one (a --start-paused run,
    // say) there is nothing to tick, whatever the time since the update.
    const started = typeof s.started_at === "string" && s.started_at !== "";
    const ticking = state.stale || !started ? 0 : (performance.now() - state.sessionAt) / 1000;
    return num(s.duration_seconds) + ticking;
  }

  function renderSession() {
    const s = state.session;
    const paused = Boolean(s && s.is_paused);
    const commands = canCommand();
    $("btn-pause").disabled = !commands || !s || paused;
    $("btn-resume").disabled = !commands || !s || !paused;
    for (const id of ["budget-input", "btn-budget-set", "btn-budget-remove", "concurrency-input", "btn-concurrency-set"]) {
      $(id).disabled = !commands;
    }
    const concurrency = s && typeof s.concurrency === "number" ? String(s.concurrency) : "";
    if ($("concurrency-input").placeholder !== concurrency) $("concurrency-input").placeholder = concurrency;
    $("read-only").hidden = !(state.access && !state.access.commands);
    $("paused-badge").hidden = !paused;
    setText("paused-badge", pausedText(s));
    const by = s && typeof s.paused_by === "string" ? s.paused_by : "";
    $("paused-badge").title = paused && by ? `paused by ${by}` : "";
    if (!s) return;
    setText("session-duration", fmtDuration(sessionDuration()));
    setText("tokens-total", fmtInt(s.total_tokens));
    setText("tokens-input", fmtInt(s.input_tokens));
    setText("tokens-output", fmtInt(s.output_tokens));
    setText("tokens-cache-read", fmtInt(s.cache_read_tokens));
    setText("tokens-cache-write", fmtInt(s.cache_write_tokens));
    setText("cost", fmtUsd(s.estimated_cost_usd));
    // A model with no known price is not $0: say how many tokens the cost leaves out.
    const unpriced = num(s.unpriced_tokens);
    $("cost-unpriced").hidden = unpriced === 0;
    setText("unpriced-tokens", fmtInt(unpriced));
    setText("tasks-running", fmtInt(s.tasks_running));
    setText("tasks-queued", fmtInt(s.tasks_queued));
    setText("tasks-completed", fmtInt(s.tasks_completed));
    setText("tasks-failed", fmtInt(s.tasks_failed));
    setText("tasks-cancelled", fmtInt(s.tasks_cancelled));
    renderBudget(s);
  }

  // "PAUSED", or with who paused and why when the update says so.
  function pausedText(s) {
    if (!s || !s.is_paused) return "PAUSED";
    const reason = typeof s.pause_reason === "string" && s.pause_reason ? s.pause_reason : "";
    const by = typeof s.paused_by === "string" && s.paused_by ? s.paused_by : "";
    if (reason) return `PAUSED — ${reason}`;
    return by ? `PAUSED — by ${by}` : "PAUSED";
  }

  function renderBudget(s) {
    const fill = $("budget-fill");
    const budget = s.budget_usd;
    if (typeof budget !== "number") {
      fill.style.width = "0%";
      fill.className = "fill";
      $("budget-bar").setAttribute("aria-valuenow", "0");
      setText("budget-text", "no budget");
      return;
    }
    const spent = num(s.estimated_cost_usd);
    const share = budget > 0 ? spent / budget : 1;
    const percent = Math.min(100, Math.round(share * 100));
    fill.style.width = `${percent}%`;
    fill.className = share >= 1 ? "fill over" : share >= 0.8 ? "fill warn" : "fill";
    $("budget-bar").setAttribute("aria-valuenow", String(percent));
    const left = typeof s.budget_remaining_usd === "number" ? ` · ${fmtUsd(s.budget_remaining_usd)} left` : "";
    setText("budget-text", `${fmtUsd(spent)} of ${fmtUsd(budget)} (${percent}%)${left}`);
  }

  // A failed row shows its last stderr lines under it: asked for one task at a time,
  // at most STDERR_QUEUE waiting (the rest are asked for on a later render).
  const STDERR_INLINE = 3;
  const STDERR_QUEUE = 20;
  const stderrWanted = new Set();
  let stderrBusy = false;

  function wantStderrTail(taskId) {
    if (stderrWanted.size >= STDERR_QUEUE || stderrWanted.has(taskId)) return;
    stderrWanted.add(taskId);
    if (!stderrBusy) fetchStderrTails();
  }

  async function fetchStderrTails() {
    stderrBusy = true;
    try {
      for (const taskId of stderrWanted) {
        let lines = [];
        try {
          const query = `stream=stderr&limit=${STDERR_INLINE}`;
          const page = await fetchJson(`api/tasks/${encodeURIComponent(taskId)}/output?${query}`);
          lines = page.lines.map((line) => line.text);
        } catch (err) {
          lines = []; // unknown to this server (restarted): nothing to show
        }
        stderrWanted.delete(taskId);
        const row = state.tasks.get(taskId);
        if (row && row.state === "failed") row.stderrTail = lines;
        scheduleRender();
      }
    } finally {
      stderrBusy = false;
    }
  }

  function showResult(text, status) {
    const el = $("command-result");
    el.textContent = text;
    el.dataset.status = status;
  }

  // -- operator controls ---------------------------------------------------------
  let selectedTask = null;

  function onRowClick(event) {
    const tr = event.target.closest("tr[data-task-id], tr[data-tail-of]");
    if (!tr) return;
    const taskId = tr.dataset.taskId || tr.dataset.tailOf;
    if (event.target.closest("button.cancel")) {
      send({ type: "command", action: "cancel", task_id: taskId });
      return;
    }
    if (event.target.closest("button.retry")) {
      send({ type: "command", action: "retry", task_id: taskId });
      return;
    }
    // A drag that selected text (an error to copy) is not a click on the row.
    if (!window.getSelection().isCollapsed) return;
    selectedTask = taskId;
    if (detail) detail.open(taskId);
    scheduleRender();
  }

  function setBudget(remove) {
    if (remove) {
      send({ type: "command", action: "set_budget", task_id: "*", data: { budget_usd: null } });
      return;
    }
    const text = $("budget-input").value.trim().replace(/^\$/, "");
    const amount = Number(text);
    if (!text || !Number.isFinite(amount) || amount < 0) {
      showResult(`budget: enter an amount in USD (a number >= 0), not ${JSON.stringify(text)}`, "error");
      return;
    }
    send({ type: "command", action: "set_budget", task_id: "*", data: { budget_usd: amount } });
  }

  // 1 to MAX_CONCURRENCY (the server's limit; it says so too if this one is stale).
  const MAX_CONCURRENCY = 10000;

  function setConcurrency() {
    const text = $("concurrency-input").value.trim();
    const value = Number(text);
    if (!/^[0-9]+$/.test(text) || value < 1 || value > MAX_CONCURRENCY) {
      showResult(`concurrency: enter a whole number from 1 to ${MAX_CONCURRENCY}, not ${JSON.stringify(text)}`, "error");
      return;
    }
    send({ type: "command", action: "set_concurrency", task_id: "*", data: { concurrency: value } });
  }

  // -- start -------------------------------------------------------------------
  function start() {
    if (window.RuncastTaskDetail) {
      detail = window.RuncastTaskDetail({
        $, fetchJson, send, fmtInt, fmtUsd, canCommand,
        rowOf: (taskId) => state.tasks.get(taskId),
      });
    }
    if (window.RuncastTrends) trends = window.RuncastTrends({ $, fmtInt, fmtUsd });
    table = window.RuncastTaskTable({
      $, fmtInt, fmtUsd, fmtDuration, canCommand, wantStderrTail,
      isSelected: (taskId) => taskId === selectedTask && !$("task-detail").hidden,
      onChange: render,
    });
    $("task-rows").addEventListener("click", onRowClick);
    $("btn-budget-set").addEventListener("click", () => setBudget(false));
    $("btn-budget-remove").addEventListener("click", () => setBudget(true));
    $("btn-concurrency-set").addEventListener("click", setConcurrency);
    $("concurrency-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter") setConcurrency();
    });
    $("budget-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter") setBudget(false);
    });
    $("btn-pause").addEventListener("click", () => {
      send({ type: "command", action: "pause", task_id: "*" });
    });
    $("btn-resume").addEventListener("click", () => {
      send({ type: "command", action: "resume", task_id: "*" });
    });
    // Duration and elapsed times tick between updates.
    setInterval(() => {
      checkAlive();
      render();
    }, 1000);
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
