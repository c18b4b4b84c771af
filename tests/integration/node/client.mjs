// A scripted runcast WebSocket peer on Node's `ws` package.
//
// Run by tests/integration/test_peer_clients.py; does the same as
// tests/integration/peers/asyncio_ws_client.py (see its docstring): reads the plan
// {url, token, timeout, steps} as JSON on stdin, where a step is {send: TEXT},
// {send_fragments: [TEXT, ...]} (one text message in several frames), {send_binary:
// TEXT} (its UTF-8 in a binary frame), {expect: [PATTERN, ...]} (each pattern matched by a distinct frame, in any
// order; a pattern maps dotted paths to the value wanted) or {close: {code, reason}},
// and prints one JSON object per line: {opened}, {sent} (or {sent_binary}), {recv}, {matched},
// {closed: {code, reason}} (the server's close frame), or {fail} with exit status 1.
import { readFileSync } from "node:fs";
import WebSocket from "ws";

const emit = (record) => process.stdout.write(`${JSON.stringify(record)}\n`);

function matches(frame, pattern) {
  return Object.entries(pattern).every(([path, wanted]) => {
    let value = frame;
    for (const key of path.split(".")) {
      if (value === null || typeof value !== "object" || !(key in value)) return false;
      value = value[key];
    }
    return JSON.stringify(value) === JSON.stringify(wanted);
  });
}

// Frames as they arrive, and whoever waits for the next one.
class Inbox {
  constructor(ws) {
    this.frames = [];
    this.waiter = null;
    this.ended = null;
    ws.on("message", (data, isBinary) => {
      const frame = isBinary ? { binary: data.length } : JSON.parse(data.toString("utf8"));
      emit({ recv: frame });
      this.frames.push(frame);
      this.wake();
    });
    ws.on("close", (code, reason) => {
      this.ended = { code, reason: reason.toString("utf8") };
      this.wake();
    });
    ws.on("error", (error) => {
      this.ended = this.ended ?? { error: String(error) };
      this.wake();
    });
  }

  wake() {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  async next(deadline) {
    while (this.frames.length === 0) {
      if (this.ended) throw new Error(`connection ended: ${JSON.stringify(this.ended)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for the server");
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.frames.shift();
  }

  async closed(deadline) {
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for the close frame");
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.ended.error) throw new Error(this.ended.error);
    return this.ended;
  }
}

async function opened(ws, deadline) {
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out opening")), deadline - Date.now());
    ws.once("upgrade", (response) => {
      emit({
        opened: {
          status: response.statusCode,
          extensions: response.headers["sec-websocket-extensions"] ?? null,
        },
      });
    });
    ws.once("open", () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once("unexpected-response", (_request, response) => {
      clearTimeout(timer);
      reject(new Error(`handshake refused: HTTP ${response.statusCode}`));
    });
    ws.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function converse(plan) {
  const timeoutMs = plan.timeout * 1000;
  const headers = plan.token ? { Authorization: `Bearer ${plan.token}` } : {};
  const ws = new WebSocket(plan.url, { headers });
  const inbox = new Inbox(ws);
  try {
    await talk(ws, inbox, plan.steps, timeoutMs);
  } finally {
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate(); // failed: let node exit
  }
}

async function talk(ws, inbox, steps, timeoutMs) {
  await opened(ws, Date.now() + timeoutMs);
  for (const [number, step] of steps.entries()) {
    const deadline = Date.now() + timeoutMs;
    if ("send" in step) {
      ws.send(step.send);
      emit({ sent: step.send });
    } else if ("send_fragments" in step) {
      const parts = step.send_fragments;
      parts.forEach((part, index) => ws.send(part, { fin: index === parts.length - 1 }));
      emit({ sent: parts.join("") });
    } else if ("send_binary" in step) {
      ws.send(Buffer.from(step.send_binary, "utf8"), { binary: true });
      emit({ sent_binary: step.send_binary });
    } else if ("expect" in step) {
      const waiting = [...step.expect];
      while (waiting.length > 0) {
        const frame = await inbox.next(deadline);
        const index = waiting.findIndex((pattern) => matches(frame, pattern));
        if (index >= 0) waiting.splice(index, 1);
      }
      emit({ matched: number });
    } else {
      ws.close(step.close.code, step.close.reason);
      emit({ closed: await inbox.closed(deadline) });
      return;
    }
  }
}

const plan = JSON.parse(readFileSync(0, "utf8"));
try {
  await converse(plan);
} catch (error) {
  emit({ fail: String(error?.message ?? error) });
  process.exitCode = 1;
}
