"""Which ``runcast serve`` records: by default the one that can take the store's hold on
the session; ``--record`` insists (and fails while another process records there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.cli._serve_cluster import ServeOptions, close_recording, open_recording
from api.cluster import SessionKeys, parse_redis_url
from api.server import ServerConfig
from api.store import LeaseOwner, SessionLeasedError

OTHER = LeaseOwner(pid=1, host="elsewhere", pid_scope="", token="another-process")


def _options(store: Path, record: bool | None, name: str = "s1") -> ServeOptions:
    return ServeOptions(
        target=parse_redis_url("redis://127.0.0.1:6379/0"),
        keys=SessionKeys(name),
        server=ServerConfig(),
        store=str(store),
        record=record,
    )


def test_the_first_node_records_and_the_next_serves_without(tmp_path: Path) -> None:
    store = tmp_path / "runcast.db"
    first = open_recording(_options(store, None))
    assert first is not None
    try:
        assert open_recording(_options(store, None), owner=OTHER) is None
        with pytest.raises(SessionLeasedError, match=f"session {first.session_id}"):
            open_recording(_options(store, True), owner=OTHER)
        assert open_recording(_options(store, False), owner=OTHER) is None
        # Another cluster session is another store session.
        other = open_recording(_options(store, None, name="s2"), owner=OTHER)
        assert other is not None
        assert other.session_id != first.session_id
        close_recording(other)
    finally:
        close_recording(first)
    # Stopped, the node lets go: the next one carries the same store session on.
    again = open_recording(_options(store, None), owner=OTHER)
    assert again is not None
    assert again.session_id == first.session_id
    close_recording(again)
