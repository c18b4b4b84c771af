"""The trio task executor: bounded concurrency, pause/resume, usage, cost and budgets."""

from ._budget import BUDGET_WARNING_THRESHOLD, Budget
from ._command import CommandFailedError, CommandSpec, CommandStartError, terminate_group
from ._context import TaskContext
from ._cost import (
    Cost,
    CostCalculator,
    ModelPrice,
    PriceTable,
    TokenCounts,
    load_price_table,
    parse_price_table,
)
from ._exceptions import (
    BudgetExceededError,
    DuplicateTaskError,
    ExecutorClosedError,
    ExecutorError,
    InvalidArgumentError,
    InvalidTransitionError,
    JobFileError,
    PriceTableError,
    TaskCancelledError,
    TaskFailedError,
    UnknownTaskError,
)
from ._executor import Executor
from ._jobfile import JobFile, load_job_file
from ._lines import LineSplitter
from ._open import open_executor
from ._registry import DEFAULT_KEEP_FINISHED, TaskPage
from ._states import TERMINAL_STATES, TRANSITIONS, TaskInfo, TaskState, check_transition
from ._task import TaskHandle
from ._usage import UsageParser, UsageRecord

__all__ = [
    "BUDGET_WARNING_THRESHOLD",
    "DEFAULT_KEEP_FINISHED",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Budget",
    "BudgetExceededError",
    "CommandFailedError",
    "CommandSpec",
    "CommandStartError",
    "Cost",
    "CostCalculator",
    "DuplicateTaskError",
    "Executor",
    "ExecutorClosedError",
    "ExecutorError",
    "InvalidArgumentError",
    "InvalidTransitionError",
    "JobFile",
    "JobFileError",
    "LineSplitter",
    "ModelPrice",
    "PriceTable",
    "PriceTableError",
    "TaskCancelledError",
    "TaskContext",
    "TaskFailedError",
    "TaskHandle",
    "TaskInfo",
    "TaskPage",
    "TaskState",
    "TokenCounts",
    "UnknownTaskError",
    "UsageParser",
    "UsageRecord",
    "check_transition",
    "load_job_file",
    "load_price_table",
    "open_executor",
    "parse_price_table",
    "terminate_group",
]
