"""The HTTP and WebSocket server: ``/ws``, the dashboard, ``/metrics`` and ``/api/*``."""

from .._defaults import DEFAULT_HOST, DEFAULT_PORT
from ._access import AccessPolicy, Role
from ._config import ServerConfig, is_loopback
from ._exceptions import ConfigError, HttpError, ListenError, MessageError, ServerError
from ._interfaces import ExecutorControls, ListedTask, SessionSource, TaskPageRows
from ._server import RuncastServer, serve_runcast

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "AccessPolicy",
    "ConfigError",
    "ExecutorControls",
    "HttpError",
    "ListedTask",
    "ListenError",
    "MessageError",
    "Role",
    "RuncastServer",
    "ServerConfig",
    "ServerError",
    "SessionSource",
    "TaskPageRows",
    "is_loopback",
    "serve_runcast",
]
