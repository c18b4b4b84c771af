"""A ``since`` past the newest event this server has published: refused, or waited for.

A single process numbers its events itself, so a ``since`` beyond its newest
seq was not sent by this server run: the subscribe is refused at once (issue
17, item 9). A serve node of a cluster session publishes the seqs of the
session's stream and may be a little behind the node a client comes from: its
publisher offers :class:`CatchesUp`, and when the stream holds that seq the
subscribe is answered once the node has read it (up to :data:`SINCE_WAIT`),
with exactly the events the client missed. The server knows no more of
cluster mode than this shape.
"""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

import trio

from events import SeqWait

#: How long a subscribe waits for a node that is behind to read up to its since.
SINCE_WAIT: Final = 5.0

_FRESH = "subscribe without since to start afresh"


@runtime_checkable
class CatchesUp(Protocol):
    """A publisher that can wait to publish a seq it has not yet (``events.RelayPublisher``)."""

    @property
    def last_seq(self) -> int: ...

    async def wait_for_seq(self, seq: int) -> SeqWait: ...


def _shown(since: int) -> str:
    digits = str(since)
    return digits if len(digits) <= 40 else f"{digits[:20]}... ({len(digits)} digits)"


def beyond_newest(since: int, newest: int) -> str:
    """Why a single process refuses ``since``: it never sent that seq."""
    # Most likely a seq from another server run. Subscribing would replay nothing
    # and hide that the client's view is wrong.
    return (
        f"since: {_shown(since)} is beyond the newest event (seq {newest}), so it is not "
        f"from this server run; {_FRESH}"
    )


async def wait_for_since(publisher: CatchesUp, since: int) -> str | None:
    """Wait up to :data:`SINCE_WAIT` for ``publisher`` to publish through ``since``:
    None once it has, else why the subscribe is refused."""
    with trio.move_on_after(SINCE_WAIT):
        wait = await publisher.wait_for_seq(since)
        return None if wait.reached else not_reached(since, wait)
    return not_caught_up(since, publisher.last_seq)


def not_reached(since: int, wait: SeqWait) -> str:
    """Why a node that follows a stream refuses ``since``: it is not in the stream (yet)."""
    shown = _shown(since)
    if wait.stream_seq is None:
        return (
            f"since: {shown} is past this node's newest event (seq {wait.last_seq}) and the "
            f"session's stream could not be read to tell whether it holds it; retry, or {_FRESH}"
        )
    return (
        f"since: {shown} is beyond the newest event of the session's stream "
        f"(seq {wait.stream_seq}), so it is not from this session; {_FRESH}"
    )


def not_caught_up(since: int, last_seq: int, *, waited: float = SINCE_WAIT) -> str:
    """Why a node that follows a stream refuses ``since`` it did not read in time."""
    return (
        f"since: {_shown(since)} is ahead of this node: it is behind by {since - last_seq} "
        f"events (read up to seq {last_seq}) and did not catch up within {waited:g} s; "
        f"retry, or {_FRESH}"
    )
