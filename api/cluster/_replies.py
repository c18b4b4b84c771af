"""The scripts' and stream reads' replies (lists of strings) as our values.

A reply that does not have the expected shape is a ``ClusterError`` naming the
reply: the session's keys were written by something that is not runcast.
"""

from __future__ import annotations

from typing import Any

from ._exceptions import ClusterError
from ._values import (
    DEFAULT_EVENTS_MAXLEN,
    AppendResult,
    Claim,
    ClusterState,
    ControlEntry,
    ControlResult,
    StreamEvent,
)


def _float(text: object) -> float:
    return float(str(text)) if text not in (None, "") else 0.0


def _optional_float(text: object) -> float | None:
    return float(str(text)) if text not in (None, "") else None


def _crossed(text: object) -> tuple[str, ...]:
    return tuple(str(text).split(",")) if text else ()


def _shape_error(what: str, reply: object, exc: Exception) -> ClusterError:
    return ClusterError(f"unexpected {what} reply from Redis: {str(reply)[:200]} ({exc})")


#: Values per request in the append script's reply.
APPEND_REPLY_FIELDS = 7


def parse_appends(reply: Any) -> list[AppendResult]:
    """The append script's flat reply: 7 values per request."""
    try:
        return [
            AppendResult(
                str(status),
                int(seq),
                _float(spent),
                _crossed(crossed),
                _optional_float(budget),
                bool(int(paused)),
                bool(int(announce)),
            )
            for status, seq, spent, crossed, budget, paused, announce in _groups(reply)
        ]
    except (TypeError, ValueError) as exc:
        raise _shape_error("append", reply, exc) from exc


def _groups(flat: list[Any]) -> list[tuple[Any, ...]]:
    size = APPEND_REPLY_FIELDS
    if len(flat) % size:
        raise ValueError(f"{len(flat)} values, not {size} per request")
    return list(zip(*[iter(flat)] * size, strict=True))


def parse_control(reply: Any) -> ControlResult:
    try:
        status, seq, crossed, spent, budget, paused = reply
        status = str(status)
        ok = status == "ok"
        return ControlResult(
            ok,
            "" if ok else status.removeprefix("refused:"),
            int(seq),
            _crossed(crossed),
            _float(spent),
            _optional_float(budget),
            bool(int(paused)),
        )
    except (TypeError, ValueError) as exc:
        raise _shape_error("control", reply, exc) from exc


def parse_claims(reply: Any) -> list[Claim]:
    try:
        return [
            Claim(str(task_id), str(entry_id), str(token), int(attempts), str(reclaimed_from))
            for task_id, entry_id, token, attempts, reclaimed_from in reply
        ]
    except (TypeError, ValueError) as exc:
        raise _shape_error("claim", reply, exc) from exc


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """XREAD's reply for one stream: ``[[name, [[id, {field: value}], ...]]]`` (or empty)."""
    if not reply:
        return []
    ((_name, entries),) = reply
    return [(str(entry_id), fields) for entry_id, fields in entries]


def parse_stream_events(reply: Any) -> list[StreamEvent]:
    try:
        return [
            StreamEvent(entry_id, int(fields["seq"]), str(fields["event"]))
            for entry_id, fields in _entries(reply)
        ]
    except (TypeError, ValueError, KeyError) as exc:
        raise _shape_error("events stream", reply, exc) from exc


def _suspend(text: str) -> bool | None:
    return None if text == "" else text == "1"


def parse_control_entries(reply: Any) -> list[ControlEntry]:
    try:
        return [
            ControlEntry(
                entry_id,
                fields["op"],
                fields.get("task_id", "*"),
                fields.get("by", ""),
                fields.get("reason", ""),
                _suspend(fields.get("suspend", "")),
                fields.get("on_budget", ""),
            )
            for entry_id, fields in _entries(reply)
        ]
    except (TypeError, ValueError, KeyError) as exc:
        raise _shape_error("control stream", reply, exc) from exc


def parse_first_seq(reply: Any) -> int | None:
    """XRANGE COUNT 1's reply: the seq of the oldest event, None when the stream is empty."""
    try:
        return int(reply[0][1]["seq"]) if reply else None
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise _shape_error("events stream", reply, exc) from exc


def _unannounced(state: dict[str, str], crossed: str, announced: str) -> bool:
    """Crossed, and its announcement not in the stream (the append script's rule)."""
    return state.get(crossed) == "1" and state.get(announced) == "0"


def parse_state(reply: Any) -> ClusterState:
    try:
        flat, seq, workers, open_tasks = reply
        state = dict(zip(flat[::2], flat[1::2], strict=True))
        return ClusterState(
            paused=state.get("paused") == "1",
            paused_by=state.get("paused_by", ""),
            pause_reason=state.get("pause_reason", ""),
            budget_usd=_optional_float(state.get("budget_usd")),
            spent_usd=_float(state.get("spent_usd")),
            on_budget=state.get("on_budget", "pause"),
            prices=state.get("prices", ""),
            last_seq=int(seq),
            workers_live=int(workers),
            exists="created_at" in state,
            events_maxlen=int(state.get("events_maxlen") or DEFAULT_EVENTS_MAXLEN),
            open_tasks=int(open_tasks),
            warning_unannounced=_unannounced(state, "warned", "warn_announced"),
            exhaustion_unannounced=_unannounced(state, "exhausted", "exhausted_announced"),
            warned_usd=_float(state.get("warned_usd")),
            exhausted_usd=_float(state.get("exhausted_usd")),
        )
    except (TypeError, ValueError) as exc:
        raise _shape_error("state", reply, exc) from exc
