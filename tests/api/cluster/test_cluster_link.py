"""ClusterLink against a real redis-server: credentials, Redis down or restarted, blocking
reads that are cancelled, and errors counted by operation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from _cluster_link_support import Producer, link_to, submit
from _redis_support import RedisServer, free_port, running_redis

from api.cluster import (
    ClusterError,
    RedisAuthError,
    RedisUnavailable,
    SessionKeys,
    open_link,
    parse_redis_url,
)
from events import ExecutorPaused, TaskStarted

pytestmark = pytest.mark.integration

PASSWORD = "correct-horse-battery"
WRONG = "wrong-staple-1234"


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(Path(tmp_path_factory.mktemp("redis")), password=PASSWORD) as server:
        yield server


async def test_the_right_password_opens_the_link(locked_redis: RedisServer) -> None:
    async with link_to(locked_redis, "right-password") as link:
        assert await submit(link, "t1") == 1


async def test_the_environment_password_opens_the_link(locked_redis: RedisServer) -> None:
    target = parse_redis_url(
        locked_redis.url_without_password, {"RUNCAST_REDIS_PASSWORD": PASSWORD}
    )
    async with open_link(target, SessionKeys("env-password")) as link:
        assert (await link.state()).last_seq == 0


async def test_a_wrong_password_fails_at_open_without_showing_it(
    locked_redis: RedisServer,
) -> None:
    target = parse_redis_url(f"redis://:{WRONG}@127.0.0.1:{locked_redis.port}/0")
    started = trio.current_time()
    with pytest.raises(RedisAuthError) as raised:
        async with open_link(target, SessionKeys("wrong-password")):
            pytest.fail("opened with a wrong password")
    # At once: a worker started with a wrong password exits 2, it does not sit in retries.
    assert trio.current_time() - started < 1.0
    text = str(raised.value)
    assert "authentication refused" in text
    assert f"127.0.0.1:{locked_redis.port}" in text
    assert WRONG not in text
    assert WRONG not in repr(raised.value)


async def test_no_password_where_one_is_required_is_an_auth_error(
    locked_redis: RedisServer,
) -> None:
    target = parse_redis_url(locked_redis.url_without_password)
    with pytest.raises(RedisAuthError):
        async with open_link(target, SessionKeys("no-password")):
            pytest.fail("opened without a password")


async def test_redis_down_is_unavailable_at_once() -> None:
    target = parse_redis_url(f"redis://127.0.0.1:{free_port()}/0")
    started = trio.current_time()
    with pytest.raises(RedisUnavailable, match="unavailable"):
        async with open_link(target, SessionKeys("down")):
            pytest.fail("opened a link to nothing")
    # The callers back off (capped) and buffer; the link itself does not sleep.
    assert trio.current_time() - started < 1.0


async def test_a_restarted_redis_is_unavailable_meanwhile_then_works_again(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path / "redis") as server:
        async with link_to(server, "restarted") as link:
            await submit(link, "t1")
            producer = Producer("w:a:1")
            await link.append_many([producer.request(ExecutorPaused())])
            server.stop()
            request = producer.request(ExecutorPaused(reason="while down"))
            with pytest.raises(RedisUnavailable):
                await link.append_many([request])
            assert link.errors["append"] == 1
            server.start()
            # Same request again (the forwarder's retry): the scripts are loaded anew
            # (Redis forgot them), the AOF kept the session, the seq goes on.
            (result,) = await link.append_many([request])
            assert (result.status, result.seq) == ("ok", 3)
            assert (await link.claim("w:a:1", 1, 30_000))[0].task_id == "t1"


async def test_a_blocking_read_is_abandoned_at_once_when_cancelled(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        async with link_to(server, "blocking") as link:
            started = trio.current_time()
            with trio.move_on_after(0.05):
                await link.read_events("$", count=10, block_ms=1000)
            assert trio.current_time() - started < 0.5
            # The abandoned read used its own client: the link goes on meanwhile.
            assert await submit(link, "t1") == 1


async def test_a_blocking_read_returns_what_arrives(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        async with link_to(server, "arrives") as link:
            tail = await link.control_tail()
            async with trio.open_nursery() as nursery:

                async def resubmit() -> None:
                    await trio.sleep(0.05)
                    await submit(link, "t1")

                nursery.start_soon(resubmit)
                entries = await link.read_control(tail, block_ms=1000)
            assert [(e.op, e.by) for e in entries] == [("tasks", "submitter")]


async def test_a_script_error_is_a_cluster_error_counted_by_operation(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        async with link_to(server, "wrongtype") as link:
            # Someone else's value under the session's key: Redis says WRONGTYPE.
            server.client().set(link.keys.appended, "not a hash")
            request = Producer("w:a:1").request(TaskStarted(task_id="t1"))
            with pytest.raises(ClusterError, match="WRONGTYPE") as raised:
                await link.append_many([request])
            assert not isinstance(raised.value, RedisUnavailable | RedisAuthError)
            assert link.errors == {"append": 1}


async def test_a_task_without_a_spec_is_a_clear_error(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        async with link_to(server, "nospec") as link:
            with pytest.raises(ClusterError, match="task 'ghost': no spec in session 'nospec'"):
                await link.spec("ghost")


async def test_an_instance_id_with_a_bar_is_refused(tmp_path: Path) -> None:
    # Leases are "<instance>|<token>": a '|' in an id would let one worker pass for another.
    with running_redis(tmp_path / "redis") as server:
        async with link_to(server, "bars") as link:
            with pytest.raises(ClusterError, match=re.escape("instance id 'w:a|b'")):
                await link.claim("w:a|b", 1, 30_000)
            with pytest.raises(ClusterError, match="instance id"):
                await link.append_many([Producer("x|y").request(TaskStarted(task_id="t"))])


def test_a_bad_session_name_is_refused() -> None:
    with pytest.raises(ClusterError, match="session name 'a b'"):
        SessionKeys("a b")
    with pytest.raises(ClusterError, match="1-64 characters"):
        SessionKeys("x" * 65)
    assert SessionKeys("run-1.a_b").events == "runcast:{run-1.a_b}:events"
