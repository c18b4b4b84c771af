"""/healthz says whether the session's numbers may be behind (a cluster serve node's ``stale``)."""

from __future__ import annotations

import json
from pathlib import Path

from api.server._http import RequestHead
from api.server._routes import Endpoints
from broadcaster import SessionBroadcaster
from events import Publisher

HEAD = RequestHead("GET", "/healthz", "/healthz", {}, {})


async def test_healthz_is_ok_then_stale_then_ok_again() -> None:
    publisher = Publisher()
    broadcaster = SessionBroadcaster(publisher)
    endpoints = Endpoints(publisher, broadcaster, None, None, Path("/nonexistent"))
    fresh = await endpoints.healthz(HEAD)
    assert (fresh.status, json.loads(fresh.body)) == (200, {"status": "ok", "stale": False})
    broadcaster.set_stale(True)
    stale = await endpoints.healthz(HEAD)
    # Still 200: every node is stale while Redis is away, and it still serves what it has.
    assert (stale.status, json.loads(stale.body)) == (200, {"status": "stale", "stale": True})
    broadcaster.set_stale(False)
    assert json.loads((await endpoints.healthz(HEAD)).body)["stale"] is False
