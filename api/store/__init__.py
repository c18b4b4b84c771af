"""The SQLite session store: schema, rows, writes, the recorder, leases, history."""

from ._commands import command_hashes, record_command_hashes
from ._discard import discard_unserved
from ._exceptions import (
    LeaseLostError,
    SessionLeasedError,
    StoreError,
    StoreOverloadedError,
    UnknownSessionError,
)
from ._lease import (
    Clock,
    LeaseOwner,
    SessionLease,
    claim_session,
    newest_session,
    release_lease,
    serve_session_lease,
)
from ._offload import Offload, SerialOffload
from ._recorder import StoreRecorder, serve_store_recorder
from ._store import SessionRecord, SessionStore, StoredTask, UsageTotals

__all__ = [
    "Clock",
    "LeaseLostError",
    "LeaseOwner",
    "Offload",
    "SerialOffload",
    "SessionLease",
    "SessionLeasedError",
    "SessionRecord",
    "SessionStore",
    "StoreError",
    "StoreOverloadedError",
    "StoreRecorder",
    "StoredTask",
    "UnknownSessionError",
    "UsageTotals",
    "claim_session",
    "command_hashes",
    "discard_unserved",
    "newest_session",
    "record_command_hashes",
    "release_lease",
    "serve_session_lease",
    "serve_store_recorder",
]
