"""What a command task is: its command, environment and options, checked when built.

A job file's ``[[task]]`` table becomes one ``CommandSpec``; each field is
checked by its own validator, whose error names the field, so a job file's
error can say which line is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from events import MAX_TASK_ID

from .._exceptions import InvalidArgumentError


def _check_command(spec: CommandSpec, _attribute: object, value: Any) -> None:
    if isinstance(value, str):
        if not spec.shell:
            raise InvalidArgumentError(
                "command: a string is run by the shell only with shell = true; "
                "otherwise give a list of arguments"
            )
        if not value.strip():
            raise InvalidArgumentError("command: must not be empty")
        return
    if not isinstance(value, tuple) or not value:
        raise InvalidArgumentError("command: expected a non-empty list of strings")
    if not all(isinstance(arg, str) for arg in value) or not value[0]:
        raise InvalidArgumentError("command: every argument must be a string, the first non-empty")


def _to_command(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _check_optional_text(_spec: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgumentError(f"{attribute.name}: expected a non-empty string, got {value!r}")


def _check_id(_spec: object, _attribute: object, value: Any) -> None:
    if value == "*":
        raise InvalidArgumentError("id: '*' is reserved for session events")
    if value is not None and len(value) > MAX_TASK_ID:
        raise InvalidArgumentError(f"id: must be at most {MAX_TASK_ID} characters")


def _check_env(_spec: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and key and "=" not in key and isinstance(item, str)
        for key, item in value.items()
    ):
        raise InvalidArgumentError('env: expected a table of NAME = "string" values')


def _check_timeout(_spec: object, _attribute: object, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"timeout: expected seconds as a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"timeout: must be > 0 seconds, got {value}")


def _check_int(minimum: int | None) -> Any:
    def check(_spec: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgumentError(f"{attribute.name}: expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise InvalidArgumentError(f"{attribute.name}: must be >= {minimum}, got {value}")

    return check


def _check_bool(_spec: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{attribute.name}: expected true or false, got {value!r}")


@attrs.frozen(kw_only=True)
class CommandSpec:
    """One job-file task: a command, and how to run and account for it."""

    shell: bool = attrs.field(default=False, validator=_check_bool)
    command: tuple[str, ...] | str = attrs.field(converter=_to_command, validator=_check_command)
    id: str | None = attrs.field(default=None, validator=[_check_optional_text, _check_id])
    name: str | None = attrs.field(default=None, validator=_check_optional_text)
    cwd: str | None = attrs.field(default=None, validator=_check_optional_text)
    env: Mapping[str, str] = attrs.field(factory=dict, validator=_check_env)
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    retries: int = attrs.field(default=0, validator=_check_int(0))
    priority: int = attrs.field(default=0, validator=_check_int(None))
    model: str | None = attrs.field(default=None, validator=_check_optional_text)
    provider: str | None = attrs.field(default=None, validator=_check_optional_text)

    @property
    def display_name(self) -> str:
        if self.name is not None:
            return self.name
        if isinstance(self.command, str):
            return self.command
        return " ".join(self.command)
