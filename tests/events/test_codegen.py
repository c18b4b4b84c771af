"""Generated code (checks, fast constructors, frame writers) shows its source in tracebacks."""

from __future__ import annotations

import inspect
import traceback

import pytest

from events import EventValidationError, TaskCompleted, TaskUsage
from events._writers import writer_for
from events.lowlevel import fast_constructor


def _formatted(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def test_a_failing_check_shows_the_generated_line_that_raised() -> None:
    with pytest.raises(EventValidationError) as caught:
        TaskUsage(task_id="t", input_tokens=-1)
    text = _formatted(caught.value)
    assert "<runcast checks of TaskUsage #" in text
    assert "_check_slowly(self)" in text


def test_a_fast_constructor_s_frame_shows_its_source() -> None:
    make = fast_constructor(TaskCompleted)
    with pytest.raises(EventValidationError) as caught:
        make(task_id="", attempt=1, duration_seconds=0.0, exit_code=0)
    text = _formatted(caught.value)
    assert "<runcast constructor of TaskCompleted #" in text
    assert "return _cls(" in text


def test_a_writer_s_source_can_be_read_back() -> None:
    source = inspect.getsource(writer_for(TaskUsage))
    assert source.startswith("def write(event, seq, second, micro):")
    assert "input_tokens = event.input_tokens" in source
