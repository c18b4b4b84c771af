// runcast dashboard: the task table (sort, filter, search, pages; rows kept by key).
//
// dashboard.js owns the task rows (a Map by task id) and calls render() when they may
// have changed. Each task keeps its <tr> while it is on the page: a render only writes
// the cells whose text changed and moves the fewest rows it can (the ones outside the
// longest run already in order), so a selection in a cell that did not change (an
// error being copied, say) survives the updates around it.
"use strict";

window.RuncastTaskTable = function createTaskTable(shared) {
  const { $, fmtInt, fmtUsd, fmtDuration, canCommand, isSelected, wantStderrTail } = shared;
  // Rows on one page: enough for a whole ordinary run at once, few enough that a
  // render at 10,000 tasks stays cheap.
  const PAGE_ROWS = 2000;
  const COLUMNS = 11;
  const STATE_ORDER = { running: 0, retrying: 1, queued: 2, failed: 3, cancelled: 4, completed: 5 };
  const ACTIVE = new Set(["queued", "running", "retrying"]);
  const RETRIABLE = new Set(["failed", "cancelled"]);
  const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

  const view = { sort: "state", descending: false, filter: "", search: "", page: 0, pages: 1 };
  let entries = new Map(); // task id -> {tr, cells, action, tail}: the rows on the page

  function elapsedSeconds(row, now) {
    if (row.startedAt === null || Number.isNaN(row.startedAt)) return null;
    return ((row.endedAt || now) - row.startedAt) / 1000;
  }

  const SORT_KEYS = {
    task: (row) => row.taskId,
    name: (row) => row.name,
    state: (row) => STATE_ORDER[row.state] ?? 9,
    attempts: (row) => row.attempts,
    elapsed: (row, now) => elapsedSeconds(row, now) ?? -1,
    in: (row) => row.input_tokens,
    out: (row) => row.output_tokens,
    cache: (row) => row.cache_read_tokens + row.cache_write_tokens,
    cost: (row) => row.cost,
    error: (row) => row.error,
  };

  function compareValues(a, b) {
    if (typeof a === "string") return collator.compare(a, b);
    return a - b;
  }

  function matches(row, search) {
    if (view.filter === "active" ? !ACTIVE.has(row.state) : view.filter && row.state !== view.filter) {
      return false;
    }
    return !search || row.taskId.toLowerCase().includes(search);
  }

  // The rows to show, in order; ties keep the order the tasks were first seen in.
  function ordered(tasks, now) {
    const search = view.search.trim().toLowerCase();
    const key = SORT_KEYS[view.sort] || SORT_KEYS.state;
    const keyed = [];
    let seen = 0;
    for (const row of tasks.values()) {
      seen += 1;
      if (matches(row, search)) keyed.push({ row, value: key(row, now), seen });
    }
    const sign = view.descending ? -1 : 1;
    keyed.sort((a, b) => sign * compareValues(a.value, b.value) || a.seen - b.seen);
    return keyed.map((item) => item.row);
  }

  function setCell(td, text, title) {
    if (td.textContent !== text) td.textContent = text;
    const tip = title || "";
    if (td.title !== tip) td.title = tip;
  }

  function createEntry(taskId) {
    const tr = document.createElement("tr");
    tr.dataset.taskId = taskId;
    const cells = {};
    for (const cls of ["task-id", "name", "state", "attempts", "elapsed", "in", "out", "cache", "cost", "error", "actions"]) {
      const td = document.createElement("td");
      td.className = cls;
      tr.appendChild(td);
      cells[cls] = td;
    }
    return { tr, cells, action: null, tail: null };
  }

  function updateEntry(entry, row, now) {
    const { tr, cells } = entry;
    if (tr.dataset.state !== row.state) tr.dataset.state = row.state;
    const elapsed = elapsedSeconds(row, now);
    setCell(cells["task-id"], row.taskId);
    setCell(cells.name, row.name, row.name);
    setCell(cells.state, row.state);
    setCell(cells.attempts, String(row.attempts));
    setCell(cells.elapsed, elapsed === null ? "–" : fmtDuration(elapsed));
    setCell(cells.in, fmtInt(row.input_tokens));
    setCell(cells.out, fmtInt(row.output_tokens));
    setCell(cells.cache, `${fmtInt(row.cache_read_tokens)} / ${fmtInt(row.cache_write_tokens)}`);
    setCell(
      cells.cost,
      row.unpriced ? `${fmtUsd(row.cost)} + unpriced` : fmtUsd(row.cost),
      row.unpriced ? `${fmtInt(row.unpriced)} tokens of a model with no known price` : "",
    );
    setCell(cells.error, row.error, row.error);
    updateAction(entry, row);
    tr.classList.toggle("selected", isSelected(row.taskId));
  }

  // An active row offers Cancel, a failed or cancelled one Retry (operator only: a
  // viewer's page shows them disabled); a completed row offers nothing.
  function updateAction(entry, row) {
    const kind = ACTIVE.has(row.state) ? "cancel" : RETRIABLE.has(row.state) ? "retry" : null;
    if (entry.action && entry.action.className !== kind) {
      entry.action.remove();
      entry.action = null;
    }
    if (!kind) return;
    if (!entry.action) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = kind;
      button.textContent = kind === "cancel" ? "Cancel" : "Retry";
      entry.cells.actions.appendChild(button);
      entry.action = button;
    }
    const disabled = !canCommand();
    if (entry.action.disabled !== disabled) entry.action.disabled = disabled;
  }

  // A failed row shows its last stderr lines in a row under it.
  function tailOf(entry, row) {
    if (row.state !== "failed") return null;
    if (row.stderrTail === null) {
      wantStderrTail(row.taskId);
      return null;
    }
    if (!row.stderrTail.length) return null;
    if (!entry.tail) {
      const tr = document.createElement("tr");
      tr.className = "stderr-tail";
      tr.dataset.tailOf = row.taskId;
      const td = document.createElement("td");
      td.colSpan = COLUMNS;
      td.appendChild(document.createElement("pre"));
      tr.appendChild(td);
      entry.tail = tr;
    }
    const pre = entry.tail.querySelector("pre");
    const text = row.stderrTail.join("\n");
    if (pre.textContent !== text) pre.textContent = text;
    return entry.tail;
  }

  function render(tasks) {
    const now = Date.now();
    const rows = ordered(tasks, now);
    view.pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
    view.page = Math.min(view.page, view.pages - 1);
    const first = view.page * PAGE_ROWS;
    const shown = rows.slice(first, first + PAGE_ROWS);
    const kept = new Map();
    const desired = [];
    for (const row of shown) {
      const entry = entries.get(row.taskId) || createEntry(row.taskId);
      kept.set(row.taskId, entry);
      updateEntry(entry, row, now);
      desired.push(entry.tr);
      const tail = tailOf(entry, row);
      if (tail) desired.push(tail);
    }
    entries = kept;
    reconcile($("task-rows"), desired);
    renderTools(rows.length, tasks.size, first, shown.length);
  }

  function renderTools(matching, total, first, count) {
    $("tasks-empty").hidden = total > 0;
    let info = count ? `${fmtInt(first + 1)}–${fmtInt(first + count)} of ${fmtInt(matching)}` : "none shown";
    if (matching !== total) info += ` (${fmtInt(total)} in all)`;
    if ($("page-info").textContent !== info) $("page-info").textContent = info;
    $("page-prev").disabled = view.page === 0;
    $("page-next").disabled = view.page >= view.pages - 1;
    for (const th of document.querySelectorAll("#tasks th[data-sort]")) {
      const sorted = th.dataset.sort === view.sort ? (view.descending ? "descending" : "ascending") : null;
      if (sorted) th.setAttribute("aria-sort", sorted);
      else th.removeAttribute("aria-sort");
    }
  }

  // Put `desired` into `body` in order, moving only the nodes outside the longest
  // run that is already in order (each move of a row would drop a selection in it).
  function reconcile(body, desired) {
    const wanted = new Set(desired);
    for (const child of Array.from(body.children)) if (!wanted.has(child)) child.remove();
    const position = new Map();
    let index = 0;
    for (const child of body.children) position.set(child, index++);
    const stay = longestIncreasing(desired.map((node) => position.get(node) ?? -1));
    let next = null;
    for (let k = desired.length - 1; k >= 0; k--) {
      if (!stay.has(k)) body.insertBefore(desired[k], next);
      next = desired[k];
    }
  }

  // The indexes of a longest strictly increasing run of `values` (-1s left out).
  function longestIncreasing(values) {
    const tails = [];
    const previous = new Array(values.length).fill(-1);
    for (let k = 0; k < values.length; k++) {
      const value = values[k];
      if (value < 0) continue;
      let lo = 0;
      let hi = tails.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (values[tails[mid]] < value) lo = mid + 1;
        else hi = mid;
      }
      if (lo > 0) previous[k] = tails[lo - 1];
      tails[lo] = k;
    }
    const stay = new Set();
    for (let k = tails.length ? tails[tails.length - 1] : -1; k >= 0; k = previous[k]) stay.add(k);
    return stay;
  }

  function changed() {
    shared.onChange();
  }

  $("task-search").addEventListener("input", (event) => {
    view.search = event.target.value;
    view.page = 0;
    changed();
  });
  $("task-filter").addEventListener("change", (event) => {
    view.filter = event.target.value;
    view.page = 0;
    changed();
  });
  $("page-prev").addEventListener("click", () => {
    view.page = Math.max(0, view.page - 1);
    changed();
  });
  $("page-next").addEventListener("click", () => {
    view.page = Math.min(view.pages - 1, view.page + 1);
    changed();
  });
  document.querySelector("#tasks thead").addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (!th) return;
    if (view.sort === th.dataset.sort) view.descending = !view.descending;
    else {
      view.sort = th.dataset.sort;
      view.descending = false;
    }
    changed();
  });

  return { render, view };
};
