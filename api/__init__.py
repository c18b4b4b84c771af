"""runcast's server (one port: WebSocket ``/ws`` and HTTP) and command line."""

from ._access import AccessPolicy, Role
from ._cli import build_parser, main
from ._clients import DEFAULT_URL, Backoff, RuncastClient, open_client
from ._config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, is_loopback
from ._demo import DemoOptions, run_demo
from ._exceptions import (
    ApiError,
    AuthRefusedError,
    ClientError,
    ConfigError,
    ErrorReplyError,
    HttpError,
    LeaseLostError,
    ListenError,
    MessageError,
    ProtocolError,
    ServerUnreachableError,
    SessionLeasedError,
    StoreError,
    StoreOverloadedError,
    UnknownSessionError,
)
from ._heap import settle_heap
from ._interfaces import ExecutorControls, SessionSource, TaskPageRows, TaskRow
from ._resume import SessionPlan, job_key, plan_session
from ._run import RunOptions, run_job
from ._server import RuncastServer, serve_runcast
from ._stack import Stack, StackSettings, StopSignals, open_stack, watch_stop_signals
from ._store import SessionRecord, SessionStore, TaskRecord, UsageTotals
from ._store_recorder import StoreRecorder, serve_store_recorder

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_URL",
    "AccessPolicy",
    "ApiError",
    "AuthRefusedError",
    "Backoff",
    "ClientError",
    "ConfigError",
    "DemoOptions",
    "ErrorReplyError",
    "ExecutorControls",
    "HttpError",
    "LeaseLostError",
    "ListenError",
    "MessageError",
    "ProtocolError",
    "Role",
    "RunOptions",
    "RuncastClient",
    "RuncastServer",
    "ServerConfig",
    "ServerUnreachableError",
    "SessionLeasedError",
    "SessionPlan",
    "SessionRecord",
    "SessionSource",
    "SessionStore",
    "Stack",
    "StackSettings",
    "StopSignals",
    "StoreError",
    "StoreOverloadedError",
    "StoreRecorder",
    "TaskPageRows",
    "TaskRecord",
    "TaskRow",
    "UnknownSessionError",
    "UsageTotals",
    "build_parser",
    "is_loopback",
    "job_key",
    "main",
    "open_client",
    "open_stack",
    "plan_session",
    "run_demo",
    "run_job",
    "serve_runcast",
    "serve_store_recorder",
    "settle_heap",
    "watch_stop_signals",
]
