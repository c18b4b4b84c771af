"""The serve node's reader: the session's event stream, published locally with its seqs.

``serve_follower`` reads the ``events`` stream from where the local publisher
is (the start, or the store's last seq) and publishes each entry with the
stream's ``seq`` and the event's own time (:class:`events.RelayPublisher`), so
the broadcaster, the metrics, the store recorder, the task table and the
server see the session exactly as every other serve node does.

It catches up in batches without blocking, then waits on the stream (XREAD
BLOCK, at most a second, so the session's ``state`` is looked at about once a
second for the live workers and the lag). While Redis cannot be reached it
retries with capped backoff (0.1 s doubling to 5 s) and says the node is
*stale*; it stays stale after reconnecting until it has read up to the seq
counter it finds then. An entry that does not decode is logged and counted,
never folded, and the jump it leaves in the seqs is announced to replaying
clients as a history gap.

It also tells the publisher how far the stream goes (``stream_counter``), so a
client that comes from a node further ahead with ``since`` waits for this node
to read up to it instead of being refused (see ``events.RelayPublisher``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import attrs
import structlog
import trio

from events import EventCodec, EventDecodeError, RelayPublisher

from ..store import StoreRecorder
from ._exceptions import ClusterError, RedisUnavailable
from ._link import ClusterLink
from ._retrying import BACKOFF_FIRST, next_delay
from ._values import ClusterState, StreamEvent

log = structlog.get_logger("runcast.cluster")

#: Entries read per call: a batch is published in one loop step.
READ_BATCH: Final = 500
#: How long one read waits for new entries once caught up (and how often the
#: session state is looked at while nothing happens).
BLOCK_MS: Final = 1000
#: How often the session state (live workers, the seq counter) is read.
STATE_EVERY: Final = 1.0


def _ignore(value: object) -> None:
    return None


@attrs.define(eq=False)
class StreamFollower:
    """Follows one session's event stream into ``publisher``; see the module docstring."""

    link: ClusterLink
    publisher: RelayPublisher
    #: Told True when the node's numbers may be behind, False once caught up.
    on_stale: Callable[[bool], None] = _ignore
    #: Told each session state read (about once a second).
    on_state: Callable[[ClusterState], None] = _ignore
    codec: EventCodec = attrs.field(factory=EventCodec)
    read_batch: int = READ_BATCH
    block_ms: int = BLOCK_MS
    #: The last stream entry read ("0": none yet).
    position: str = "0"
    stale: bool = True
    #: The stream's seq counter when last read (``ClusterState.last_seq``).
    stream_seq: int = 0
    #: The highest seq read from the stream, published or not (undecodable, seen).
    read_seq: int = 0
    workers_live: int = 0
    #: Entries this node had already published (read again from the start).
    skipped: int = 0
    #: Entries that did not decode (logged; never folded).
    undecodable: int = 0
    #: The store recorder, if the node records: reading waits while it is behind
    #: (a catch-up of a long stream would otherwise outrun it past its hard limit).
    recorder: StoreRecorder | None = None
    #: Times the session's seq counter was found below what this node had read.
    counter_went_back: int = 0
    _state_read_at: float = -1e9
    _caught_up: trio.Event = attrs.field(factory=trio.Event)
    #: Counter reads for clients' since: one at a time, shared by those waiting for it.
    _counter_lock: trio.Lock = attrs.field(factory=trio.Lock)
    _counter_reads: int = 0
    #: The last of those reads: its number, and the counter it found (None: failed).
    _counter_read: tuple[int, int | None] = (0, None)
    #: The last read while behind found nothing: the next one waits for new entries.
    _found_nothing: bool = False

    def __attrs_post_init__(self) -> None:
        self.publisher.stream_counter = self.counter_reaching

    @property
    def lag(self) -> int:
        """How many events this node is behind the stream's counter (when last read)."""
        return max(0, self.stream_seq - self.read_through)

    @property
    def read_through(self) -> int:
        """The seq this node has read the stream through (or started from, with a store)."""
        return max(self.publisher.last_seq, self.read_seq)

    async def wait_caught_up(self) -> None:
        """Until the node has read up to the counter it found first."""
        await self._caught_up.wait()

    async def counter_reaching(self, seq: int) -> int | None:
        """The stream's seq counter, read afresh unless already known to reach ``seq``.

        A client's ``since`` taken from a node further ahead is usually past
        the counter last read here (about a second ago). Callers that arrive
        while a read is under way take the next one: one started after they
        asked, so it sees what they saw. None when Redis cannot be read.
        """
        if seq <= self.stream_seq:
            return self.stream_seq
        asked_after = self._counter_reads
        async with self._counter_lock:
            number, counter = self._counter_read
            if number > asked_after:
                return counter
            self._counter_reads = number = self._counter_reads + 1
            try:
                await self._read_state()
            except ClusterError as exc:
                log.warning("seq counter unreadable for a client's since", error=str(exc))
                self._counter_read = (number, None)
            else:
                self._counter_read = (number, self.stream_seq)
            return self._counter_read[1]

    async def run(self) -> None:
        """Follow until cancelled."""
        delay = BACKOFF_FIRST
        while True:
            try:
                await self._step()
            except RedisUnavailable as exc:
                self._set_stale(True)
                log.warning("event stream unreachable: retrying", error=str(exc), retry_in=delay)
                await trio.sleep(delay)
                delay = next_delay(delay)
                # Back: read the counter again before saying the node is current.
                self._state_read_at = -1e9
            else:
                delay = BACKOFF_FIRST

    async def _step(self) -> None:
        if trio.current_time() - self._state_read_at >= STATE_EVERY:
            await self._read_state()
        behind = self.read_through < self.stream_seq
        if not behind:
            self._now_current()
        # Behind, a read returns at once; but a counter ahead of every entry (an
        # append script that failed after its INCR) would make that a busy loop.
        wait = not behind or self._found_nothing
        entries = await self.link.read_events(
            self.position, count=self.read_batch, block_ms=self.block_ms if wait else None
        )
        self._found_nothing = behind and not entries
        self._publish(entries)
        if self.read_through >= self.stream_seq or (behind and not entries):
            self._now_current()
        recorder = self.recorder
        if recorder is not None and recorder.backpressure:
            await recorder.wait_caught_up()
        elif behind:
            await trio.lowlevel.checkpoint()  # a long catch-up lets the loop breathe

    async def _read_state(self) -> None:
        state = await self.link.state()
        if state.last_seq < self.publisher.last_seq:
            self._counter_went_back(state.last_seq)
        self.stream_seq = state.last_seq
        self.workers_live = state.workers_live
        self._state_read_at = trio.current_time()
        self.on_state(state)

    def _publish(self, entries: list[StreamEvent]) -> None:
        publisher = self.publisher
        for entry in entries:
            self.position = entry.entry_id
            self.read_seq = max(self.read_seq, entry.seq)
            self.stream_seq = max(self.stream_seq, entry.seq)
            if entry.seq <= publisher.last_seq:
                self.skipped += 1
                continue
            try:
                decoded = self.codec.decode(entry.event_json)
            except EventDecodeError as exc:
                self.undecodable += 1
                log.error("event stream entry not decodable", seq=entry.seq, error=str(exc))
                continue
            publisher.publish_at(entry.seq, decoded.time, decoded.event)

    def _counter_went_back(self, counter: int) -> None:
        # Redis lost its last writes (killed between two AOF fsyncs, or restored from an
        # older file): new events take seqs this node has published already. They are
        # skipped here (a seq is never published twice), so say it loudly.
        self.counter_went_back += 1
        log.error(
            "the session's seq counter is behind what this node read: Redis lost writes; "
            "events numbered again are skipped here",
            counter=counter,
            read=self.publisher.last_seq,
        )

    def _now_current(self) -> None:
        self._set_stale(False)
        self._caught_up.set()

    def _set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            log.info("event stream " + ("stale" if stale else "caught up"))
            self.on_stale(stale)


async def serve_follower(
    link: ClusterLink,
    publisher: RelayPublisher,
    *,
    on_stale: Callable[[bool], None] = _ignore,
    on_state: Callable[[ClusterState], None] = _ignore,
    recorder: StoreRecorder | None = None,
    task_status: trio.TaskStatus[StreamFollower] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a :class:`StreamFollower` until cancelled; ``started`` hands it over at once."""
    follower = StreamFollower(
        link, publisher, on_stale=on_stale, on_state=on_state, recorder=recorder
    )
    task_status.started(follower)
    await follower.run()
