"""A fake link that follows the scripts' budget rules, for the announcement unit tests.

Like the append and control scripts: a usage that crosses the 80 % line or the budget
marks the crossing unannounced (every append reply then says ``announce``); a
``budget_warning`` session event, or a ``pause`` by ``budget``, goes in only while its
crossing is unannounced, once. ``timeline`` holds the kinds that went into the stream,
whichever call appended them, in order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import attrs
import trio
from _worker_support import FakeLink

from api.cluster import AppendRequest, AppendResult, ClusterState, ControlCommand, ControlResult
from events import EventCodec, TaskUsage
from executor import BUDGET_WARNING_THRESHOLD


def usage_request(src: str, cost: float, *, src_seq: int = 1) -> AppendRequest:
    """A worker's ``task_usage`` append of ``cost`` for task ``a``."""
    event = TaskUsage(task_id="a", cost_usd=cost, cost_source="reported")
    wire = EventCodec().encode(0, datetime(2026, 1, 2, tzinfo=UTC), event)
    return AppendRequest(src, src_seq, "a", "", event.event_name, cost, wire)


@attrs.define(eq=False)
class BudgetLink(FakeLink):
    warned: bool = False
    exhausted: bool = False
    warn_announced: bool = False
    exhausted_announced: bool = False
    warned_usd: float = 0.0
    exhausted_usd: float = 0.0
    timeline: list[str] = attrs.field(factory=list)
    #: Pause entries that reached the control stream.
    pause_entries: int = 0
    state_reads: int = 0

    @property
    def pending(self) -> bool:
        return (self.warned and not self.warn_announced) or (
            self.exhausted and not self.exhausted_announced
        )

    def _append(self, request: AppendRequest) -> AppendResult:
        if request.src_seq <= self.appended.get(request.src, 0):
            return self._result("dup", 0)
        self.appended[request.src] = request.src_seq
        if request.task_id == "*" and not self._admit(request.kind):
            return self._result("dup", 0)
        self.stream.append(request)
        self.timeline.append(request.kind)
        crossed = self._spend(request.cost_usd or 0.0)
        return self._result("ok", len(self.timeline), crossed)

    def _result(self, status: str, seq: int, crossed: tuple[str, ...] = ()) -> AppendResult:
        return AppendResult(
            status, seq, self.spent_usd, crossed, self.budget_usd, announce=self.pending
        )

    def _spend(self, cost: float) -> tuple[str, ...]:
        self.spent_usd += cost
        crossed: list[str] = []
        if self.budget_usd is None:
            return ()
        if not self.warned and self.spent_usd >= BUDGET_WARNING_THRESHOLD * self.budget_usd:
            self.warned, self.warn_announced, self.warned_usd = True, False, self.spent_usd
            crossed.append("warning")
        if not self.exhausted and self.spent_usd >= self.budget_usd:
            self.exhausted, self.exhausted_announced = True, False
            self.exhausted_usd = self.spent_usd
            self.paused = True
            crossed.append("exhausted")
        return tuple(crossed)

    def _admit(self, kind: str) -> bool:
        if kind == "budget_warning":
            if not self.warned or self.warn_announced:
                return False
            self.warn_announced = True
        elif kind == "budget_exhausted":
            if not self.exhausted or self.exhausted_announced:
                return False
            self.exhausted_announced = self.warn_announced = True
        return True

    async def control(self, command: ControlCommand) -> ControlResult:
        await trio.lowlevel.checkpoint()
        self.controls.append(command)
        if command.op != "pause" or command.by != "budget":
            return ControlResult(True)
        if not self.exhausted or self.exhausted_announced:
            return ControlResult(True)
        kinds = [json.loads(text)["event"] for text in command.events]
        admitted = [kind for kind in kinds if self._admit(kind)]
        self.exhausted_announced = self.warn_announced = True
        self.pause_entries += 1
        self.timeline += admitted
        return ControlResult(True, seq=len(self.timeline))

    async def state(self) -> ClusterState:
        self.state_reads += 1
        state = await super().state()
        return attrs.evolve(
            state,
            paused_by="budget" if self.exhausted else state.paused_by,
            warning_unannounced=self.warned and not self.warn_announced,
            exhaustion_unannounced=self.exhausted and not self.exhausted_announced,
            warned_usd=self.warned_usd,
            exhausted_usd=self.exhausted_usd,
        )
