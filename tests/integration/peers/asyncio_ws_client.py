"""A scripted runcast WebSocket peer on the ``websockets`` library (asyncio).

Run as a subprocess by ``tests/integration/test_peer_clients.py`` (so asyncio
never meets trio), it does the same as ``tests/integration/node/client.mjs``.
It reads a plan as JSON on stdin, ``{"url", "token", "timeout", "steps"}``; a step
is one of

- ``{"send": TEXT}``; ``{"send_fragments": [TEXT, ...]}``, one text message in
  several frames; ``{"send_binary": TEXT}``, its UTF-8 in a binary frame;
- ``{"expect": [PATTERN, ...]}``: read until each pattern matched a distinct
  frame, in any order; a pattern maps dotted paths (``"data.is_paused"``) to the
  value wanted;
- ``{"close": {"code", "reason"}}``.

It prints one JSON object per line: ``{"opened": ...}``, ``{"sent": TEXT}`` (or
``sent_binary``), ``{"recv": FRAME}`` for every frame, ``{"matched": STEP}``,
``{"closed": {"code", "reason"}}`` (the server's close frame), or ``{"fail": WHY}``
and exit status 1.  The test judges the transcript; this only drives.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException


def emit(**record: Any) -> None:
    print(json.dumps(record), flush=True)


def matches(frame: Any, pattern: dict[str, Any]) -> bool:
    for path, wanted in pattern.items():
        value = frame
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                return False
            value = value[key]
        if value != wanted or type(value) is not type(wanted):
            return False
    return True


async def expect(ws: ClientConnection, patterns: list[dict[str, Any]]) -> None:
    """Read frames until every pattern matched one of them."""
    waiting = list(patterns)
    while waiting:
        frame = json.loads(await ws.recv(decode=True))
        emit(recv=frame)
        for pattern in waiting:
            if matches(frame, pattern):
                waiting.remove(pattern)
                break


async def converse(plan: dict[str, Any]) -> None:
    token = plan.get("token")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    timeout = float(plan["timeout"])
    async with connect(plan["url"], additional_headers=headers, open_timeout=timeout) as ws:
        response = ws.response
        emit(
            opened={
                "status": response.status_code if response is not None else None,
                "extensions": response.headers.get("Sec-WebSocket-Extensions")
                if response is not None
                else None,
            }
        )
        for number, step in enumerate(plan["steps"]):
            if "send" in step:
                await ws.send(step["send"])
                emit(sent=step["send"])
            elif "send_fragments" in step:
                await ws.send(iter(step["send_fragments"]))
                emit(sent="".join(step["send_fragments"]))
            elif "send_binary" in step:
                await ws.send(step["send_binary"].encode())
                emit(sent_binary=step["send_binary"])
            elif "expect" in step:
                async with asyncio.timeout(timeout):
                    await expect(ws, step["expect"])
                emit(matched=number)
            else:
                async with asyncio.timeout(timeout):
                    await ws.close(step["close"]["code"], step["close"]["reason"])
                emit(closed={"code": ws.close_code, "reason": ws.close_reason})
                return


def main() -> int:
    plan = json.load(sys.stdin)
    try:
        asyncio.run(converse(plan))
    except TimeoutError:
        emit(fail="timed out waiting for the server")
        return 1
    except ConnectionClosed as exc:
        emit(fail=f"connection closed: {exc}")
        return 1
    except WebSocketException as exc:  # the handshake was refused or broken
        emit(fail=f"{type(exc).__name__}: {exc}")
        return 1
    except OSError as exc:
        emit(fail=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
