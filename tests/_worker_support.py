"""A fake ``ClusterLink`` for the worker's unit tests: appends as the append script does.

It keeps ``appended[src]`` and drops a request whose ``src_seq`` is not above it
(``dup``), so a test sees what a retried append would do to the real stream. Its
failures are scripted: ``fail_next`` calls raise ``RedisUnavailable`` before doing
anything, ``lose_reply_next`` calls append and then raise (the reply was lost).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from api.cluster import (
    AppendRequest,
    AppendResult,
    Claim,
    ClusterState,
    ControlCommand,
    ControlEntry,
    ControlResult,
    RedisUnavailable,
    SessionKeys,
)
from executor import CommandSpec


@attrs.define(eq=False)
class FakeLink:
    stream: list[AppendRequest] = attrs.field(factory=list)
    appended: dict[str, int] = attrs.field(factory=dict)
    calls: list[list[AppendRequest]] = attrs.field(factory=list)
    call_times: list[float] = attrs.field(factory=list)
    fail_next: int = 0
    lose_reply_next: int = 0
    #: While set and not yet set again, appends wait (Redis is slow).
    gate: trio.Event | None = None
    #: Statuses to return by src_seq instead of "ok" (e.g. "fenced").
    status_of: dict[int, str] = attrs.field(factory=dict)
    crossed_of: dict[int, tuple[str, ...]] = attrs.field(factory=dict)
    budget_usd: float | None = None
    spent_usd: float = 0.0
    on_budget: str = "pause"
    controls: list[ControlCommand] = attrs.field(factory=list)
    claims: list[list[Claim]] = attrs.field(factory=list)
    specs: dict[str, CommandSpec] = attrs.field(factory=dict)
    lost: list[str] = attrs.field(factory=list)
    renewed: list[list[str]] = attrs.field(factory=list)
    released: list[str] = attrs.field(factory=list)
    control_entries: list[ControlEntry] = attrs.field(factory=list)
    open_tasks: int = 0
    paused: bool = False
    forgotten: list[str] = attrs.field(factory=list)
    keys: SessionKeys = attrs.field(factory=lambda: SessionKeys("fake"))
    errors: Counter[str] = attrs.field(factory=Counter)

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        self.calls.append(list(requests))
        self.call_times.append(trio.current_time())
        if self.gate is not None:
            await self.gate.wait()
        await trio.lowlevel.checkpoint()
        if self.fail_next:
            self.fail_next -= 1
            raise RedisUnavailable("Redis append: unavailable (connection refused)")
        results = [self._append(request) for request in requests]
        if self.lose_reply_next:
            self.lose_reply_next -= 1
            raise RedisUnavailable("Redis append: unavailable (connection reset)")
        return results

    def _append(self, request: AppendRequest) -> AppendResult:
        if request.src_seq <= self.appended.get(request.src, 0):
            return AppendResult("dup", 0, self.spent_usd)
        self.appended[request.src] = request.src_seq
        status = self.status_of.get(request.src_seq, "ok")
        if status == "ok":
            self.stream.append(request)
            self.spent_usd += request.cost_usd or 0.0
        crossed = self.crossed_of.get(request.src_seq, ())
        return AppendResult(status, len(self.stream), self.spent_usd, crossed, self.budget_usd)

    async def state(self) -> ClusterState:
        await trio.lowlevel.checkpoint()
        return ClusterState(
            paused=self.paused,
            paused_by="operator" if self.paused else "",
            pause_reason="",
            budget_usd=self.budget_usd,
            spent_usd=self.spent_usd,
            on_budget=self.on_budget,
            prices="",
            last_seq=len(self.stream),
            workers_live=1,
            open_tasks=self.open_tasks,
        )

    async def control(self, command: ControlCommand) -> ControlResult:
        await trio.lowlevel.checkpoint()
        self.controls.append(command)
        return ControlResult(True)

    async def claim(self, instance: str, max_n: int, lease_ms: int) -> list[Claim]:
        await trio.lowlevel.checkpoint()
        return self.claims.pop(0)[:max_n] if self.claims else []

    async def spec(self, task_id: str) -> CommandSpec:
        await trio.lowlevel.checkpoint()
        return self.specs[task_id]

    async def renew(self, instance: str, task_ids: Sequence[str], lease_ms: int) -> list[str]:
        await trio.lowlevel.checkpoint()
        self.renewed.append(list(task_ids))
        lost, self.lost = [t for t in self.lost if t in task_ids], []
        return lost

    async def release(self, instance: str, task_ids: Sequence[str]) -> None:
        await trio.lowlevel.checkpoint()
        self.released += task_ids

    async def read_control(self, after: str, *, block_ms: int) -> list[ControlEntry]:
        await trio.sleep(block_ms / 1000)
        entries, self.control_entries = self.control_entries, []
        return entries

    async def control_tail(self) -> str:
        await trio.lowlevel.checkpoint()
        return "0-0"

    async def forget_worker(self, instance: str) -> None:
        await trio.lowlevel.checkpoint()
        self.forgotten.append(instance)

    def kinds(self) -> list[str]:
        return [request.kind for request in self.stream]

    def frames(self) -> list[dict[str, Any]]:
        return [json.loads(request.event_json) for request in self.stream]
