"""The ids of tasks the executor no longer keeps, packed so a long run stays flat.

Every id ever submitted stays reserved (an old id is refused as a duplicate),
so this set only ever grows. As a ``set[str]`` each id costs a string object
and a slot; here it costs its UTF-8 bytes plus a separator, a fraction of that
(bench/README.md, section 4, and bench/HISTORY.md, "Retired ids packed into
byte arrays").

Ids go into ``BUCKETS`` growable byte arrays chosen by the id's hash, framed by
NUL bytes; membership is a substring search for ``NUL id NUL`` in one bucket,
exact because no packed id contains a NUL (the rare id that does is kept in a
plain set). The bucket count is fixed, so no step ever rehashes everything:
a lookup scans one bucket, about ``1 / BUCKETS`` of the packed bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import attrs

BUCKETS: Final = 1024
_SEPARATOR: Final = b"\x00"


def _encode(task_id: str) -> bytes:
    # surrogatepass: an id decoded from JSON may hold a lone surrogate.
    return task_id.encode("utf-8", "surrogatepass")


def _new_buckets() -> list[bytearray]:
    return [bytearray(_SEPARATOR) for _ in range(BUCKETS)]


@attrs.define(eq=False)
class RetiredIds:
    """A grow-only set of task ids, about ``len(id) + 1`` bytes each."""

    # Made on the first add: most executors (tests, short runs) never retire an id.
    _buckets: list[bytearray] | None = attrs.field(default=None, repr=False)
    # Ids holding the separator itself: kept as they are.
    _with_separator: set[str] = attrs.field(factory=set, repr=False)
    _count: int = 0

    def add(self, task_id: str) -> None:
        """Add ``task_id`` (the caller knows it is not in yet: ids are unique)."""
        if "\x00" in task_id:
            self._with_separator.add(task_id)
        else:
            if self._buckets is None:
                self._buckets = _new_buckets()
            bucket = self._buckets[hash(task_id) & (BUCKETS - 1)]
            bucket += _encode(task_id)
            bucket += _SEPARATOR
        self._count += 1

    def __contains__(self, task_id: object) -> bool:
        if not isinstance(task_id, str):
            return False
        if "\x00" in task_id:
            return task_id in self._with_separator
        if self._buckets is None:
            return False
        needle = _SEPARATOR + _encode(task_id) + _SEPARATOR
        # ``find``, not ``in``: bytearray's ``__contains__`` first tries the needle
        # as an int and raises and clears a TypeError (bench/HISTORY.md, "Membership
        # with .find() instead of in").
        return self._buckets[hash(task_id) & (BUCKETS - 1)].find(needle) >= 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        for bucket in self._buckets or ():
            for packed in bytes(bucket).split(_SEPARATOR):
                if packed:
                    yield packed.decode("utf-8", "surrogatepass")
        yield from self._with_separator

    @property
    def packed_bytes(self) -> int:
        """Bytes the packed ids take (without the buckets' spare capacity)."""
        return sum(len(bucket) for bucket in self._buckets or ())
