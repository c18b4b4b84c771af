"""Operator commands received over a WebSocket, carried out on the executor."""

from __future__ import annotations

from typing import Final

import structlog

from events import RuncastError

from ._access import Role
from ._exceptions import MessageError
from ._interfaces import ExecutorControls
from ._messages import Command

log = structlog.get_logger("runcast.api")

COMMAND_STATUS: Final = {
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
    "retry": "queued",
    "set_budget": "budget_set",
    "set_concurrency": "concurrency_set",
}


def perform_command(
    command: Command, *, role: Role, executor: ExecutorControls | None, peer: str
) -> str:
    """Carry out ``command`` from ``peer``; its status word, or ``MessageError`` saying why not."""
    if role is not Role.OPERATOR:
        log.warning("command refused", peer=peer, action=command.action, role="viewer")
        raise MessageError("forbidden: a viewer token may not send commands")
    if executor is None:
        raise MessageError("no executor is attached to this server")
    log.info("command", peer=peer, action=command.action, task_id=command.task_id)
    reason = f"websocket command from {peer}"
    try:
        if command.action == "pause":
            executor.pause(by="operator", reason=reason, suspend=command.suspend)
        elif command.action == "resume":
            executor.resume(by="operator", reason=reason)
        elif command.action == "cancel":
            if not executor.cancel(command.task_id, reason="cancelled by operator"):
                return "already_ended"
        elif command.action == "retry":
            executor.retry(command.task_id)
        elif command.action == "set_concurrency":
            assert command.concurrency is not None
            executor.set_concurrency(command.concurrency, by="operator", reason=reason)
        else:
            executor.set_budget(command.budget_usd, by="operator")
    except RuncastError as exc:
        raise MessageError(str(exc)) from exc
    return COMMAND_STATUS[command.action]
