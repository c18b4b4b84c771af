"""Cluster mode: one session's tasks, events and operators' commands on Redis Streams.

Where things are: ``_url`` (the Redis URL and its password), ``_keys`` (the session's
keys under one hash tag, and task specs as JSON), ``_values`` (what the link takes and
returns), ``_link`` (``ClusterLink``: redis-py in trio threads, errors translated; the
only module that imports ``redis``), ``_scripts`` + ``lua/`` (the atomic scripts),
``_replies`` (their replies parsed).

A worker (``runcast worker``): ``_worker`` runs claimed tasks on a local executor;
``_claims`` claims, renews and hands back leases; ``_forwarder`` appends the tasks'
events through a bounded buffer; ``_control_follower`` obeys the control stream;
``_retrying`` is their capped back-off; ``_ledger`` records the process groups its
commands run in and ``_orphans`` kills those of dead workers on the same host (``_proc``
reads ``/proc``). ``_submit`` enqueues a job file.

A serve node (``runcast serve``): ``_front`` wires the stack; ``_follower`` folds the
event stream into a ``RelayPublisher``; ``_controls`` sends operators' commands;
``_tasks`` is ``/api/tasks`` folded from events; ``_store_start`` resumes from the
store; ``_cluster_metrics`` the cluster's Prometheus metrics.
"""

from ._controls import ClusterControls, serve_cluster_controls
from ._exceptions import ClusterError, ControlRefused, RedisAuthError, RedisUnavailable
from ._follower import StreamFollower, serve_follower
from ._front import Front, FrontSettings, open_front
from ._keys import (
    SessionKeys,
    check_session_name,
    make_spec_converter,
    spec_from_json,
    spec_to_json,
)
from ._link import APPEND_CHUNK, MAX_BLOCK_MS, ClusterLink, check_instance, open_link
from ._submit import SubmitOptions, prepare_submission, submit_tasks
from ._tasks import TaskTable
from ._url import CA_CERTS_ENV, PASSWORD_ENV, RedisTarget, parse_redis_url
from ._values import (
    APPEND_DUP,
    APPEND_FENCED,
    APPEND_OK,
    CONTROL_ENTRY_OPS,
    CONTROL_OPS,
    DEFAULT_EVENTS_MAXLEN,
    ON_BUDGET,
    AppendRequest,
    AppendResult,
    Claim,
    ClusterState,
    ControlCommand,
    ControlEntry,
    ControlResult,
    QueuedTask,
    StreamEvent,
    SubmitSettings,
)
from ._worker import Worker, serve_worker

__all__ = [
    "APPEND_CHUNK",
    "APPEND_DUP",
    "APPEND_FENCED",
    "APPEND_OK",
    "CA_CERTS_ENV",
    "CONTROL_ENTRY_OPS",
    "CONTROL_OPS",
    "DEFAULT_EVENTS_MAXLEN",
    "MAX_BLOCK_MS",
    "ON_BUDGET",
    "PASSWORD_ENV",
    "AppendRequest",
    "AppendResult",
    "Claim",
    "ClusterControls",
    "ClusterError",
    "ClusterLink",
    "ClusterState",
    "ControlCommand",
    "ControlEntry",
    "ControlRefused",
    "ControlResult",
    "Front",
    "FrontSettings",
    "QueuedTask",
    "RedisAuthError",
    "RedisTarget",
    "RedisUnavailable",
    "SessionKeys",
    "StreamEvent",
    "StreamFollower",
    "SubmitOptions",
    "SubmitSettings",
    "TaskTable",
    "Worker",
    "check_instance",
    "check_session_name",
    "make_spec_converter",
    "open_front",
    "open_link",
    "parse_redis_url",
    "prepare_submission",
    "serve_cluster_controls",
    "serve_follower",
    "serve_worker",
    "spec_from_json",
    "spec_to_json",
    "submit_tasks",
]
