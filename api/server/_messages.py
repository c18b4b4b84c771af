"""The WebSocket protocol's client messages (parsed and checked) and server replies."""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import attrs

from events import MAX_TASK_ID, SESSION_TOPIC

from ._exceptions import MessageError

MESSAGE_TYPES = ("subscribe", "unsubscribe", "command", "ping")
ACTIONS = ("pause", "resume", "cancel", "retry", "set_budget", "set_concurrency")

Action = Literal["pause", "resume", "cancel", "retry", "set_budget", "set_concurrency"]
#: The most ``set_concurrency`` accepts: ``executor.MAX_CONCURRENCY`` (a test holds them equal;
#: the server does not import the executor).
MAX_CONCURRENCY = 10_000


@attrs.frozen
class Subscribe:
    task_id: str
    since: int | None = None


@attrs.frozen
class Unsubscribe:
    pass


@attrs.frozen
class Ping:
    pass


@attrs.frozen
class Command:
    """An operator command; ``task_id`` is ``"*"`` for executor-wide actions."""

    action: Action
    task_id: str = SESSION_TOPIC
    budget_usd: float | None = None
    #: A pause's ``data.suspend``: stop running commands too (None: not given).
    suspend: bool | None = None
    #: A ``set_concurrency``'s ``data.concurrency``.
    concurrency: int | None = None


ClientMessage = Subscribe | Unsubscribe | Ping | Command


def parse_message(text: str | bytes) -> ClientMessage:
    """One client frame as a typed message; ``MessageError`` says what is wrong."""
    if isinstance(text, bytes):
        raise MessageError("binary frames are not accepted: send JSON as a text frame")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"message is not valid JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise MessageError(f"message must be a JSON object, got {type(frame).__name__}")
    kind = frame.get("type")
    if kind is None:
        raise MessageError("type: missing (expected one of " + ", ".join(MESSAGE_TYPES) + ")")
    if kind == "subscribe":
        return Subscribe(_task_id(frame, required=True), _since(frame))
    if kind == "unsubscribe":
        return Unsubscribe()
    if kind == "ping":
        return Ping()
    if kind == "command":
        return _command(frame)
    raise MessageError(
        f"type: unknown message type {_show(kind)} (expected one of {', '.join(MESSAGE_TYPES)})"
    )


def _show(value: object) -> str:
    try:
        text = json.dumps(value)
    except RecursionError:
        # json.loads accepted the value a few frames shallower than dumps can echo it.
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= 60 else text[:57] + "..."


def _task_id(frame: dict[str, Any], *, required: bool) -> str:
    if "task_id" not in frame:
        if required:
            raise MessageError("task_id: missing (a task id, or '*' for everything)")
        return SESSION_TOPIC
    task_id = frame["task_id"]
    if not isinstance(task_id, str) or not task_id:
        raise MessageError(f"task_id: expected a non-empty string, got {_show(task_id)}")
    if len(task_id) > MAX_TASK_ID:
        raise MessageError(f"task_id: longer than {MAX_TASK_ID} characters")
    return task_id


def _since(frame: dict[str, Any]) -> int | None:
    since = frame.get("since")
    if since is None:
        return None
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise MessageError(f"since: expected a sequence number >= 0, got {_show(since)}")
    return since


def _command(frame: dict[str, Any]) -> Command:
    action = frame.get("action")
    if action not in ACTIONS:
        what = "missing" if action is None else f"unknown action {_show(action)}"
        raise MessageError(f"action: {what} (expected one of {', '.join(ACTIONS)})")
    if action in ("pause", "resume"):
        task_id = _task_id(frame, required=False)
        if task_id != SESSION_TOPIC:
            raise MessageError(f"task_id: {action} applies to the whole executor; use '*'")
        return Command(action, suspend=_suspend(frame) if action == "pause" else None)
    if action in ("cancel", "retry"):
        task_id = _task_id(frame, required=True)
        if task_id == SESSION_TOPIC:
            raise MessageError(f"task_id: {action} needs one task's id, not '*'")
        return Command(action, task_id)
    if action == "set_concurrency":
        return Command("set_concurrency", concurrency=_concurrency(frame))
    return Command("set_budget", budget_usd=_budget(frame))


def _concurrency(frame: dict[str, Any]) -> int:
    data = frame.get("data")
    if not isinstance(data, dict) or "concurrency" not in data:
        raise MessageError('data: expected an object like {"concurrency": 4}')
    value = data["concurrency"]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise MessageError(
            f"data.concurrency: expected a whole number from 1 to {MAX_CONCURRENCY}, "
            f"got {_show(value)}"
        )
    return value


def _suspend(frame: dict[str, Any]) -> bool | None:
    """A pause's optional ``data`` (``{"suspend": true}``): whether to stop running commands."""
    if "data" not in frame:
        return None
    data = frame["data"]
    if not isinstance(data, dict):
        raise MessageError('data: expected an object like {"suspend": true}')
    unknown = sorted(set(data) - {"suspend"})
    if unknown:
        raise MessageError(f"data: unknown key {_show(unknown[0])} for pause (expected suspend)")
    suspend = data.get("suspend")
    if suspend is not None and not isinstance(suspend, bool):
        raise MessageError(f"data.suspend: expected true or false, got {_show(suspend)}")
    return suspend


def _budget(frame: dict[str, Any]) -> float | None:
    data = frame.get("data")
    if not isinstance(data, dict):
        raise MessageError('data: expected an object like {"budget_usd": 5.0}')
    if "budget_usd" not in data:
        raise MessageError("data.budget_usd: missing (a number of USD, or null for no budget)")
    budget = data["budget_usd"]
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int | float):
        raise MessageError(f"data.budget_usd: expected a number or null, got {_show(budget)}")
    try:
        value = float(budget)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or value < 0:
        raise MessageError(f"data.budget_usd: expected a finite number >= 0, got {_show(budget)}")
    return value


def _encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


def subscribed_frame(task_id: str, since: int | None) -> str:
    return _encode({"type": "subscribed", "task_id": task_id, "since": since})


def unsubscribed_frame(task_id: str | None) -> str:
    return _encode({"type": "unsubscribed", "task_id": task_id})


def pong_frame() -> str:
    return _encode({"type": "pong"})


def command_result_frame(command: Command, status: str) -> str:
    frame: dict[str, Any] = {
        "type": "command_result",
        "action": command.action,
        "status": status,
        "task_id": command.task_id,
    }
    if command.action == "set_budget":
        frame["data"] = {"budget_usd": command.budget_usd}
    elif command.action == "set_concurrency":
        frame["data"] = {"concurrency": command.concurrency}
    elif command.suspend is not None:
        frame["data"] = {"suspend": command.suspend}
    return _encode(frame)


def error_frame(error: str, **context: object) -> str:
    return _encode({"type": "error", "error": error, **context})
