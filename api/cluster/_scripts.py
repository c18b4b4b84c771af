"""The Lua scripts (package data ``lua/*.lua``) and the arguments each one takes.

Each script is ``lua/common.lua`` followed by its own file, registered with redis-py's
``register_script`` (EVALSHA, loaded again on NOSCRIPT after a Redis restart). Every
script gets all of the session's keys as KEYS, so Redis Cluster routes it to the
session's slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from executor import BUDGET_WARNING_THRESHOLD

from ._keys import SessionKeys, spec_to_json
from ._values import AppendRequest, ControlCommand, QueuedTask, SubmitSettings

if TYPE_CHECKING:
    # Only _link talks to Redis; the types are all this module needs of redis-py.
    import redis
    from redis.commands.core import Script

    _Client: TypeAlias = redis.Redis | redis.client.Pipeline

SCRIPT_NAMES = ("append", "claim", "renew", "release", "control", "submit", "state")


def script_source(name: str) -> str:
    """The full text of script ``name``: the shared functions, then its own body."""
    lua = files(__package__).joinpath("lua")
    return lua.joinpath("common.lua").read_text() + "\n" + lua.joinpath(f"{name}.lua").read_text()


def _usd(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _flag(value: bool | None) -> str:
    return "" if value is None else str(int(value))


@attrs.frozen
class Scripts:
    """The scripts registered with one client; ``call`` runs one with a session's keys."""

    _client: redis.Redis = attrs.field(repr=False)
    _scripts: dict[str, Script] = attrs.field(repr=False)

    def call(
        self, name: str, keys: SessionKeys, args: Sequence[Any], *, client: _Client | None = None
    ) -> Any:
        """Run script ``name``; ``client``: a pipeline to queue it on (default: the client)."""
        return self._scripts[name](keys=keys.all(), args=list(args), client=client or self._client)


def append_args(requests: Sequence[AppendRequest]) -> list[Any]:
    """The append script's arguments: the warning threshold, then 7 per request."""
    args: list[Any] = [BUDGET_WARNING_THRESHOLD]
    for request in requests:
        args += (
            request.src,
            request.src_seq,
            request.task_id,
            request.token,
            request.kind,
            _usd(request.cost_usd),
            request.event_json,
        )
    return args


def control_args(command: ControlCommand) -> list[Any]:
    return [
        command.op,
        command.task_id,
        command.by,
        command.reason,
        _flag(command.suspend),
        _usd(command.budget_usd),
        BUDGET_WARNING_THRESHOLD,
        *command.events,
    ]


def load_scripts(client: redis.Redis) -> Scripts:
    """Register every script with ``client`` (nothing is sent until the first call)."""
    scripts = {name: client.register_script(script_source(name)) for name in SCRIPT_NAMES}
    return Scripts(client, scripts)


def submit_args(
    instance: str, tasks: Sequence[QueuedTask], settings: SubmitSettings
) -> list[str | int]:
    """The submit script's arguments: settings, counts, task triples, start-up events."""
    args: list[str | int] = [
        instance,
        _usd(settings.budget_usd),
        settings.prices,
        _flag(settings.start_paused),
        settings.on_budget,
        settings.events_maxlen,
        len(tasks),
        len(settings.startup_events),
    ]
    for task in tasks:
        args += [task.task_id, spec_to_json(task.spec), task.event_json]
    args += settings.startup_events
    return args
