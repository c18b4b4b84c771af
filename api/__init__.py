"""runcast's server (one port: WebSocket ``/ws`` and HTTP) and command line."""

from ._access import AccessPolicy, Role
from ._cli import build_parser, main
from ._config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, is_loopback
from ._demo import DemoOptions, run_demo
from ._exceptions import ApiError, ConfigError, HttpError, ListenError, MessageError
from ._interfaces import ExecutorControls, SessionSource, TaskRow
from ._run import RunOptions, run_job
from ._server import RuncastServer, serve_runcast
from ._stack import Stack, StackSettings, StopSignals, open_stack, watch_stop_signals

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "AccessPolicy",
    "ApiError",
    "ConfigError",
    "DemoOptions",
    "ExecutorControls",
    "HttpError",
    "ListenError",
    "MessageError",
    "Role",
    "RunOptions",
    "RuncastServer",
    "ServerConfig",
    "SessionSource",
    "Stack",
    "StackSettings",
    "StopSignals",
    "TaskRow",
    "build_parser",
    "is_loopback",
    "main",
    "open_stack",
    "run_demo",
    "run_job",
    "serve_runcast",
    "watch_stop_signals",
]
