"""Small fixed answers for browsers: the token page of a 401, and the favicon."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Final

import structlog

from ._exceptions import HttpError
from ._http import HttpConnection, RequestHead

log = structlog.get_logger("runcast.api")

HTML_TYPE: Final = "text/html; charset=utf-8"
FAVICON_TYPE: Final = "image/svg+xml"
#: Served at /favicon.ico, which browsers ask for on their own (SVG: every current
#: Chromium and Firefox shows it, whatever the name ends with).
FAVICON: Final = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect width="16" height="16" rx="3" fill="#2c5fb3"/>'
    b'<path d="M3 12h2V7H3zm4 0h2V4H7zm4 0h2V9h-2z" fill="#fff"/></svg>'
)

_TOKEN_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>runcast: a token is needed</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}
code{{background:#eee;padding:0 .2rem;border-radius:3px}}</style></head>
<body><h1>runcast: a token is needed</h1>
<p>The server refused this request: <strong>{reason}</strong>.</p>
<p>Open the dashboard with the token in its address: <code>/?token=TOKEN</code>,
for example <code>http://{host}/?token=TOKEN</code>. The page passes it on to its
API requests and its WebSocket.</p>
<p>The token is the one the server was started with: an operator token
(<code>--auth-token</code> or <code>$RUNCAST_AUTH_TOKEN</code>) may watch and control,
a viewer token (<code>--viewer-token</code> or <code>$RUNCAST_VIEWER_TOKEN</code>)
may only watch. Scripts send it as <code>Authorization: Bearer TOKEN</code>.</p>
</body></html>
"""


def wants_html(headers: Mapping[str, str]) -> bool:
    """Whether the request is a browser's page load (its ``Accept`` lists text/html)."""
    for item in headers.get("accept", "").split(","):
        media, _, params = item.partition(";")
        if media.strip().lower() in ("text/html", "application/xhtml+xml"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def token_page(reason: str, host: str) -> bytes:
    """The HTML a browser gets with a 401: what a token is and where it goes."""
    shown_host = host if host and len(host) <= 255 else "HOST:PORT"
    return _TOKEN_PAGE.format(reason=html.escape(reason), host=html.escape(shown_host)).encode()


async def answer_error(
    http: HttpConnection, error: HttpError, peer: str, head: RequestHead | None = None
) -> None:
    """Send ``error``'s answer; failing to (peer gone, an answer h11 will not frame)
    ends this connection only: an exception here would end the whole server.

    A browser loading a page without its token gets a page saying where the token
    goes; everything else gets the plain text line."""
    try:
        if error.status == 401 and head is not None and wants_html(head.headers):
            page = token_page(error.message, head.headers.get("host", ""))
            await http.respond(error.status, page, HTML_TYPE, headers=error.headers)
            return
        await http.respond_error(error)
    except Exception:
        log.warning("error answer not sent", peer=peer, status=error.status, exc_info=True)
