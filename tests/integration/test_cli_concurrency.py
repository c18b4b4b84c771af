"""``runcast concurrency set N [URL]`` against a live runcast server on loopback."""

from __future__ import annotations

import pytest
import trio
from _client_support import parse, run_handler
from _live_stack import OPERATOR_TOKEN, VIEWER_TOKEN, eventually, live_stack

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]


async def test_concurrency_set_round_trip_and_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(30):
        async with live_stack(tokens=True) as stack:
            url = stack.ws_url
            before = stack.executor.concurrency
            code, text = await run_handler(
                ["concurrency", "set", "7", url, "--token", VIEWER_TOKEN], capsys
            )
            assert code == 1
            assert "forbidden" in text
            assert stack.executor.concurrency == before

            argv = ["concurrency", "set", "7", url, "--token", OPERATOR_TOKEN]
            code, text = await run_handler(argv, capsys)
            assert (code, text.strip()) == (0, "set_concurrency: concurrency_set (concurrency 7)")
            assert stack.executor.concurrency == 7
            await eventually(lambda: stack.broadcaster.snapshot().concurrency == 7)


@pytest.mark.parametrize("bad", ["0", "10001", "two", "-3"])
def test_bad_values_are_usage_errors(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["concurrency", "set", bad])
    assert exit_info.value.code == 2
    assert f"N must be a whole number from 1 to 10000, got {bad!r}" in capsys.readouterr().err
