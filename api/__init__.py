"""runcast's server (one port: WebSocket ``/ws`` and HTTP) and command line."""

from ._access import AccessPolicy, Role
from ._cli import main
from ._config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, is_loopback
from ._exceptions import ApiError, ConfigError, HttpError, ListenError, MessageError
from ._interfaces import ExecutorControls, SessionSource, TaskRow
from ._server import RuncastServer, serve_runcast

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "AccessPolicy",
    "ApiError",
    "ConfigError",
    "ExecutorControls",
    "HttpError",
    "ListenError",
    "MessageError",
    "Role",
    "RuncastServer",
    "ServerConfig",
    "SessionSource",
    "TaskRow",
    "is_loopback",
    "main",
    "serve_runcast",
]
