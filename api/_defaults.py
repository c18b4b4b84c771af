"""Where a server listens unless told otherwise, and so where a client looks for it.

A module of its own, importing nothing, so the command line can build its
parser and the clients can connect without loading the server.
"""

from __future__ import annotations

from typing import Final

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8765
DEFAULT_URL: Final = f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}/ws"
