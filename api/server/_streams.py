"""Closing a client's stream whatever state it is in."""

from __future__ import annotations

import contextlib

import trio


async def close_quietly(stream: trio.abc.AsyncResource) -> None:
    """Close ``stream`` even while cancelled; a peer that already left is no error."""
    with (
        trio.CancelScope(shield=True),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await stream.aclose()
