"""What running a command needs of its task: the executor's ``TaskContext`` is one.

A protocol, so that this package depends on nothing of the executor's task
machinery: ``run_command`` and ``StdoutReader`` can be driven by a test double
or a benchmark's null context as well as by a real task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from events import OutputStream

from ..usage import TokenCounts
from ._output import OutputLine


class CommandTask(Protocol):
    """The task a command runs for: where its output, usage and processes are reported."""

    @property
    def task_id(self) -> str: ...

    def add_process_group(self, pgid: int) -> None:
        """A process group to stop and continue when the executor pauses and resumes."""

    def remove_process_group(self, pgid: int) -> None:
        """The group is gone: nothing of it to signal any more."""

    def set_exit_code(self, code: int | None) -> None:
        """The command's exit status, shown in the task's end event."""

    def output_lines(self, lines: Iterable[OutputLine], *, stream: OutputStream = ...) -> None:
        """Publish lines of output (text, whether it was cut) as ``task_output``."""

    def record_usage(
        self,
        *,
        model: str,
        provider: str | None = ...,
        input_tokens: int = ...,
        output_tokens: int = ...,
        cache_read_tokens: int = ...,
        cache_write_tokens: int = ...,
        cost_usd: float | None = ...,
        source: str = ...,
    ) -> object:
        """Count one usage record with a cost the provider reported."""

    def record_usage_batch(
        self,
        *,
        model: str,
        provider: str | None = ...,
        records: Sequence[TokenCounts],
        source: str = ...,
    ) -> object:
        """Count the records of one read, of one model, as one increment."""

    def replace_provisional_usage(
        self,
        *,
        model: str,
        provider: str | None = ...,
        totals: TokenCounts,
        cost_usd: float | None = ...,
        source: str = ...,
    ) -> object:
        """A provider's totals, replacing what was counted since its last totals."""

    def replace_provisional_by_model(
        self, totals: Mapping[str, tuple[TokenCounts, float | None]], *, source: str = ...
    ) -> object:
        """A provider's totals per model (tokens, reported cost), replacing, model by
        model, what was counted since its last totals."""

    def refuse_usage(self, reason: str) -> None:
        """A usage record was refused (a number out of range); its line stays output."""

    def unrecognised_usage(self, what: str) -> None:
        """JSON that looked like usage matched no known format (said once a reader)."""
