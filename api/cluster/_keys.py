"""A session's Redis keys, and a task's ``CommandSpec`` as the JSON the ``specs`` hash holds.

Every key of a session carries the hash tag ``{NAME}`` so the whole session lives on
one Redis Cluster slot (its scripts touch several keys atomically) while sessions
spread across slots.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
import cattrs

from executor import CommandSpec, ExecutorError

from ._exceptions import ClusterError

MAX_SESSION_NAME = 64
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_session_name(name: str) -> str:
    """``name`` if it is 1-64 characters of ``[A-Za-z0-9._-]``, else a ``ClusterError``."""
    if not _NAME.fullmatch(name):
        raise ClusterError(
            f"session name {name[:80]!r}: expected 1-{MAX_SESSION_NAME} characters "
            "of letters, digits, '.', '_' or '-'"
        )
    return name


@attrs.frozen
class SessionKeys:
    """The keys of one session, all under ``runcast:{NAME}:``."""

    name: str = attrs.field(validator=lambda _s, _a, value: check_session_name(value))

    @property
    def prefix(self) -> str:
        return f"runcast:{{{self.name}}}:"

    def _key(self, suffix: str) -> str:
        return self.prefix + suffix

    @property
    def events(self) -> str:
        return self._key("events")

    @property
    def seq(self) -> str:
        return self._key("seq")

    @property
    def tasks(self) -> str:
        return self._key("tasks")

    @property
    def specs(self) -> str:
        return self._key("specs")

    @property
    def entries(self) -> str:
        return self._key("entries")

    @property
    def leases(self) -> str:
        return self._key("leases")

    @property
    def attempts(self) -> str:
        return self._key("attempts")

    @property
    def ended(self) -> str:
        return self._key("ended")

    @property
    def state(self) -> str:
        return self._key("state")

    @property
    def appended(self) -> str:
        return self._key("appended")

    @property
    def control(self) -> str:
        return self._key("control")

    @property
    def workers(self) -> str:
        return self._key("workers")

    def all(self) -> tuple[str, ...]:
        """Every key of the session (to delete it, or to list it)."""
        return (
            self.events,
            self.seq,
            self.tasks,
            self.specs,
            self.entries,
            self.leases,
            self.attempts,
            self.ended,
            self.state,
            self.appended,
            self.control,
            self.workers,
        )


def _structure_command(value: object, _type: object) -> tuple[str, ...] | str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(arg, str) for arg in value):
        return tuple(value)
    raise TypeError("expected a string or a list of strings")


def make_spec_converter() -> cattrs.Converter:
    """The converter between ``CommandSpec`` and plain JSON data; strict about extra keys."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(tuple[str, ...] | str, _structure_command)
    return converter


_CONVERTER = make_spec_converter()


def spec_to_json(spec: CommandSpec) -> str:
    """The spec as compact JSON (what ``specs`` holds)."""
    data: dict[str, Any] = _CONVERTER.unstructure(spec)
    data["env"] = dict(spec.env)
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def spec_from_json(text: str) -> CommandSpec:
    """The spec ``spec_to_json`` wrote; ``ClusterError`` saying what is wrong otherwise."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ClusterError(f"task spec: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ClusterError("task spec: expected a JSON object")
    try:
        return _CONVERTER.structure(data, CommandSpec)
    except ExecutorError as exc:
        raise ClusterError(f"task spec: {exc}") from exc
    except cattrs.BaseValidationError as exc:
        detail = "; ".join(cattrs.transform_error(exc, format_exception=_describe))
        raise ClusterError(f"task spec: {detail}") from exc


def _describe(exc: BaseException, type_: object) -> str:
    # The spec's own validators say which field is wrong and why: keep their words.
    if isinstance(exc, ExecutorError):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)  # type: ignore[arg-type]
