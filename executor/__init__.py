"""The trio task executor: bounded concurrency, pause/resume, usage, cost and budgets.

Where things are: ``_executor`` (the ``Executor`` and ``open_executor``: the
public face), ``_lifecycle`` (every task's life: queue, start, retries, end,
with its invariants), ``_workers`` (the workers that run the attempts),
``_context``/``_handle`` (what a task and a caller see, through the ``_host``
protocol), ``_record``/``_registry``/
``_queue`` (task records, finished rows, the start queue), ``_suspension``
(commands stopped by a pause, and ``on_budget``); subpackages
``process`` (commands, pipes, process groups), ``usage`` (token counts and the
usage lines parser) and ``pricing`` (costs, price tables, the budget).
"""

from events import END_STATES as TERMINAL_STATES
from events import TaskState

from ._checks import MAX_CONCURRENCY
from ._context import TaskContext
from ._exceptions import (
    BudgetExceededError,
    DuplicateTaskError,
    ExecutorClosedError,
    ExecutorError,
    InvalidArgumentError,
    InvalidTransitionError,
    JobFileError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotRetriableError,
    UnknownTaskError,
)
from ._executor import Executor, open_executor
from ._handle import TaskHandle
from ._host import ProcessGroupHook
from ._jobfile import JobFile, load_job_file
from ._registry import DEFAULT_KEEP_FINISHED, TaskPage
from ._states import RETRIABLE_STATES, TRANSITIONS, TaskInfo, check_transition
from ._suspension import ON_BUDGET, OnBudget
from .pricing import (
    BUDGET_WARNING_THRESHOLD,
    Budget,
    Cost,
    CostCalculator,
    ModelPrice,
    PriceTable,
    PriceTableError,
    load_price_table,
    parse_price_table,
)
from .process import (
    CommandFailedError,
    CommandSpec,
    CommandStartError,
    LineSplitter,
    terminate_group,
)
from .usage import TokenCounts, UsageParser, UsageRecord

__all__ = [
    "BUDGET_WARNING_THRESHOLD",
    "DEFAULT_KEEP_FINISHED",
    "MAX_CONCURRENCY",
    "ON_BUDGET",
    "RETRIABLE_STATES",
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
    "OnBudget",
    "PriceTable",
    "PriceTableError",
    "ProcessGroupHook",
    "TaskCancelledError",
    "TaskContext",
    "TaskFailedError",
    "TaskHandle",
    "TaskInfo",
    "TaskNotRetriableError",
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
