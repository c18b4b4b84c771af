"""runcast's server (one port: WebSocket ``/ws`` and HTTP) and command line."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._exceptions import (
        ApiError,
    )
    from ._stack import (
        Stack,
        StackSettings,
        open_stack,
    )
    from .cli import (
        DemoOptions,
        RunOptions,
        SessionPlan,
        StopSignals,
        build_parser,
        job_key,
        main,
        plan_session,
        run_demo,
        run_job,
        settle_heap,
        watch_stop_signals,
    )
    from .clients import (
        DEFAULT_URL,
        AuthRefusedError,
        Backoff,
        ClientError,
        ErrorReplyError,
        ProtocolError,
        RuncastClient,
        ServerUnreachableError,
        open_client,
    )
    from .server import (
        DEFAULT_HOST,
        DEFAULT_PORT,
        AccessPolicy,
        ConfigError,
        ExecutorControls,
        HttpError,
        ListedTask,
        ListenError,
        MessageError,
        Role,
        RuncastServer,
        ServerConfig,
        SessionSource,
        TaskPageRows,
        is_loopback,
        serve_runcast,
    )
    from .store import (
        LeaseLostError,
        SessionLeasedError,
        SessionRecord,
        SessionStore,
        StoredTask,
        StoreError,
        StoreOverloadedError,
        StoreRecorder,
        UnknownSessionError,
        UsageTotals,
        serve_store_recorder,
    )

#: Where each public name lives. Imported on first use, so that `runcast status` (which
#: needs the clients only) does not load the server, the store and the executor.
_WHERE: dict[str, str] = {
    "ApiError": "._exceptions",
    "Stack": "._stack",
    "StackSettings": "._stack",
    "open_stack": "._stack",
    "DemoOptions": ".cli",
    "RunOptions": ".cli",
    "SessionPlan": ".cli",
    "StopSignals": ".cli",
    "build_parser": ".cli",
    "job_key": ".cli",
    "main": ".cli",
    "plan_session": ".cli",
    "run_demo": ".cli",
    "run_job": ".cli",
    "settle_heap": ".cli",
    "watch_stop_signals": ".cli",
    "DEFAULT_URL": ".clients",
    "AuthRefusedError": ".clients",
    "Backoff": ".clients",
    "ClientError": ".clients",
    "ErrorReplyError": ".clients",
    "ProtocolError": ".clients",
    "RuncastClient": ".clients",
    "ServerUnreachableError": ".clients",
    "open_client": ".clients",
    "DEFAULT_HOST": ".server",
    "DEFAULT_PORT": ".server",
    "AccessPolicy": ".server",
    "ConfigError": ".server",
    "ExecutorControls": ".server",
    "HttpError": ".server",
    "ListedTask": ".server",
    "ListenError": ".server",
    "MessageError": ".server",
    "Role": ".server",
    "RuncastServer": ".server",
    "ServerConfig": ".server",
    "SessionSource": ".server",
    "TaskPageRows": ".server",
    "is_loopback": ".server",
    "serve_runcast": ".server",
    "LeaseLostError": ".store",
    "SessionLeasedError": ".store",
    "SessionRecord": ".store",
    "SessionStore": ".store",
    "StoredTask": ".store",
    "StoreError": ".store",
    "StoreOverloadedError": ".store",
    "StoreRecorder": ".store",
    "UnknownSessionError": ".store",
    "UsageTotals": ".store",
    "serve_store_recorder": ".store",
}

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
    "ListedTask",
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
    "StoredTask",
    "TaskPageRows",
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


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562)."""
    try:
        where = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
