"""Subscription.set_direct: items go to the hook while nothing is queued, order kept."""

from __future__ import annotations

import attrs
import trio
import trio.testing

from events import Event, Gap, Published, Publisher, SessionUpdate, Subscription, TaskOutput


@attrs.define
class Hook:
    """A direct-delivery hook that takes items until told to decline."""

    accept: bool = True
    taken: list[Published] = attrs.field(factory=list)
    offered: int = 0

    def __call__(self, item: Published) -> bool:
        self.offered += 1
        if self.accept:
            self.taken.append(item)
        return self.accept


def _publish(publisher: Publisher, event: Event) -> Published:
    item = publisher.publish(event)
    assert item is not None
    return item


def _line(n: int) -> TaskOutput:
    return TaskOutput(task_id="t", line=f"line {n}")


def _seqs(items: list[Published | Gap]) -> list[int]:
    return [item.seq for item in items if isinstance(item, Published)]


def _drain(sub: Subscription) -> list[Published | Gap]:
    return list(sub.drain())


def test_hook_takes_items_while_the_queue_is_empty() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    hook = Hook()
    sub.set_direct(hook)
    published = [_publish(publisher, _line(n)) for n in range(3)]
    assert hook.taken == published
    assert sub.delivered_direct == 3
    assert len(sub) == 0
    assert sub.direct is hook


def test_declined_item_is_queued_and_the_hook_stays_off_until_set_again() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    hook = Hook()
    sub.set_direct(hook)
    first = _publish(publisher, _line(0))
    hook.accept = False
    second = _publish(publisher, _line(1))
    hook.accept = True
    third = _publish(publisher, _line(2))  # must queue behind the declined one
    assert hook.taken == [first]
    assert hook.offered == 2
    assert sub.direct is None
    assert _drain(sub) == [second, third]
    assert sub.delivered_direct == 1
    sub.set_direct(hook)  # the reader drained the queue: it may lend the hook again
    fourth = _publish(publisher, _line(3))
    assert hook.taken == [first, fourth]


def test_hook_is_not_called_while_items_are_queued() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    queued = _publish(publisher, _line(0))
    hook = Hook()
    sub.set_direct(hook)
    later = _publish(publisher, _line(1))
    assert hook.offered == 0
    assert sub.direct is None
    assert _drain(sub) == [queued, later]


def test_session_updates_conflate_and_overflow_is_counted_after_a_decline() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*", buffer_size=2)
    hook = Hook(accept=False)
    sub.set_direct(hook)
    lines = [_publish(publisher, _line(n)) for n in range(5)]
    updates = [_publish(publisher, SessionUpdate(tasks_running=n)) for n in range(3)]
    assert hook.offered == 1
    items = _drain(sub)
    assert items[:2] == lines[:2]
    gap = items[2]
    assert isinstance(gap, Gap)
    assert (gap.first_seq, gap.last_seq, gap.missed) == (lines[2].seq, lines[4].seq, 3)
    assert items[3:] == [updates[-1]]
    assert (sub.dropped, sub.conflated, publisher.dropped_total) == (3, 2, 3)
    assert sub.delivered_direct == 0


def test_direct_and_queued_items_together_are_every_item_in_order() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    hook = Hook()
    received: list[Published | Gap] = []
    published: list[Published] = []
    for n in range(20):
        if n % 7 == 3:
            hook.accept = False
        elif n % 7 == 5:
            received += _drain(sub)
            hook.accept = True
            sub.set_direct(hook)
        published.append(_publish(publisher, _line(n)))
        received += hook.taken
        hook.taken.clear()
    received += _drain(sub)
    assert _seqs(received) == [item.seq for item in published]


def test_closing_removes_the_hook_and_a_closed_subscription_takes_none() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    hook = Hook()
    sub.set_direct(hook)
    sub.close()
    assert sub.direct is None
    sub.set_direct(hook)
    assert sub.direct is None
    _publish(publisher, _line(0))
    assert hook.offered == 0


def test_publisher_close_removes_hooks() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    sub.set_direct(Hook())
    publisher.close()
    assert sub.direct is None


async def test_deliver_to_uses_the_hook_and_a_waiting_reader_is_not_woken() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    hook = Hook()
    woken: list[Published | Gap] = []

    async def reader() -> None:
        woken.append(await sub.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        sub.set_direct(hook)
        snapshot = publisher.deliver_to(sub, SessionUpdate())
        await trio.testing.wait_all_tasks_blocked()
        assert hook.taken == [snapshot]
        assert woken == []
        hook.accept = False
        queued = _publish(publisher, _line(0))
    assert woken == [queued]
