"""The dashboard on a real job file at three widths, in headless Chromium (issue 22).

``runcast run --start-paused`` on a job file whose tasks are long multi-line shell
commands (named by their command): at 1400, 1024 and 400 px the page never scrolls
sideways, the estimated cost is in view, a name cell holds one line cut with an
ellipsis, and the whole command is in its tooltip and in the detail panel.
Screenshots of each width are saved under the test's tmp_path.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import trio
from _cdp import Page
from _runcast_process import start_runcast
from test_dashboard import by_id, row_cell, wait_text

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]

TIMEOUT = 90
WIDTHS = (1400, 1024, 400)
HEIGHT = 900


def _long_command(index: int) -> str:
    steps = [
        f"echo 'stage {index}: preparing the very long working directory name for this job'",
        f"export RUNCAST_EXAMPLE_VARIABLE_{index}=some-rather-long-value-that-goes-on-and-on",
        "for shard in 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15 16; do echo shard $shard; done",
        'python3 -c \'import json; print(json.dumps({"usage": {"input_tokens": 1}}))\'',
        "sleep 0",
        "echo done-with-a-suffix-that-has-no-spaces-at-all-so-it-cannot-wrap-anywhere-xxxxxxxx",
    ]
    return "\n".join(steps)


def _job_file(tmp_path: Path, count: int = 3) -> tuple[Path, dict[str, str]]:
    commands = {f"shell-{index}": _long_command(index) for index in range(count)}
    lines = []
    for task_id, command in commands.items():
        lines += ["[[task]]", f"id = {json.dumps(task_id)}", "shell = true"]
        lines += [f"command = {json.dumps(command)}", ""]
    path = tmp_path / "long.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, commands


async def _open(page: Page, port: int) -> None:
    await page.navigate(f"http://127.0.0.1:{port}/")
    await page.wait_for(f"{by_id('conn-status')}.dataset.state === 'connected'")
    await page.wait_for(f"{by_id('session')}.dataset.stale === 'false'")


async def _set_width(page: Page, width: int) -> None:
    await page.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=HEIGHT,
        deviceScaleFactor=1,
        mobile=False,
    )
    await page.wait_for(f"window.innerWidth === {width}")
    # Two frames: the layout of the new width is done.
    await page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


IN_VIEW = """((el) => {
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.left >= 0 && r.top >= 0
    && r.right <= window.innerWidth && r.bottom <= window.innerHeight;
})"""

LAYOUT = f"""(() => {{
  const inView = {IN_VIEW};
  const name = document.querySelector('tr[data-task-id="shell-0"] td.name');
  const row = name.closest('tr');
  const lineHeight = parseFloat(getComputedStyle(name).lineHeight);
  return {{
    pageWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
    costInView: inView(document.getElementById('cost')),
    metricsInView: Array.from(document.querySelectorAll('#session .metric'))
      .every(m => m.getBoundingClientRect().right <= window.innerWidth),
    tableBoxInView: document.getElementById('tasks').parentElement.getBoundingClientRect().right
      <= window.innerWidth,
    rowHeight: row.getBoundingClientRect().height,
    lineHeight,
    nameCut: name.scrollWidth > name.clientWidth,
    ellipsis: getComputedStyle(name).textOverflow,
    headersInView: Array.from(document.querySelectorAll('#tasks th'))
      .every(th => th.getBoundingClientRect().right <= window.innerWidth),
  }};
}})()"""


async def test_layout_at_three_widths_with_long_commands(page: Page, tmp_path: Path) -> None:
    job, commands = _job_file(tmp_path)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            runcast = await start_runcast(
                nursery, "run", str(job), "--start-paused", "--store", ":memory:", cwd=tmp_path
            )
            try:
                await _open(page, runcast.port)
                await page.wait_for("document.querySelectorAll('#task-rows tr').length === 3")
                for width in WIDTHS:
                    await _set_width(page, width)
                    shot = await page.call("Page.captureScreenshot", format="png")
                    (tmp_path / f"dashboard-{width}.png").write_bytes(
                        base64.b64decode(shot["data"])
                    )
                    layout = await page.evaluate(LAYOUT)
                    assert layout["pageWidth"] <= layout["innerWidth"], (width, layout)
                    assert layout["costInView"], (width, layout)
                    assert layout["metricsInView"], (width, layout)
                    assert layout["tableBoxInView"], (width, layout)
                    # One line a row, however many lines the command has.
                    assert layout["rowHeight"] < 2.5 * layout["lineHeight"], (width, layout)
                    assert layout["nameCut"], (width, layout)
                    assert layout["ellipsis"] == "ellipsis"
                    if width == 1400:
                        # Wide enough: every column, COST and ERROR too, is on screen.
                        assert layout["headersInView"], layout
                cell = row_cell("shell-0", "name")
                title = await page.evaluate(f"document.querySelector({json.dumps(cell)}).title")
                assert title == commands["shell-0"]
                # The whole command, every line of it, in the detail panel.
                await page.click(row_cell("shell-0", "state"))
                await page.wait_for(f"!{by_id('task-detail')}.hidden")
                assert await page.text("#detail-name") == commands["shell-0"]
                assert await page.text("#detail-task-id") == "shell-0"
                detail_in_page = await page.evaluate(
                    "document.scrollingElement.scrollWidth <= window.innerWidth"
                )
                assert detail_in_page
            finally:
                runcast.process.kill()
                await runcast.wait()
    for width in WIDTHS:
        assert (tmp_path / f"dashboard-{width}.png").stat().st_size > 1000


async def test_duration_does_not_tick_before_a_task_starts(page: Page, tmp_path: Path) -> None:
    job, _ = _job_file(tmp_path, count=1)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            runcast = await start_runcast(
                nursery, "run", str(job), "--start-paused", "--store", ":memory:", cwd=tmp_path
            )
            try:
                await _open(page, runcast.port)
                await page.wait_for("!document.getElementById('paused-badge').hidden")
                # Who paused and why, from the session update.
                await wait_text(page, "#paused-badge", "PAUSED \N{EM DASH} started paused")
                assert await page.evaluate(f"{by_id('paused-badge')}.title") == "paused by startup"
                session = await page.evaluate("fetch('api/session').then(r => r.json())")
                assert session["started_at"] is None
                assert session["duration_seconds"] == 0
                # Long enough for the old page to have ticked to 2s and more.
                await trio.sleep(2.5)
                assert await page.text("#session-duration") == "0s"
            finally:
                runcast.process.kill()
                await runcast.wait()
