"""ClusterLink over TLS and ACL users, against a real redis-server with a throwaway CA:
the right CA opens the link, a wrong one (or a missing client certificate) fails at once
and for good, and an ACL that forbids the session's keys or a script's command is a
clear NOPERM error, never a worker that idles silently."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from _cluster_link_support import Producer, submit, wire
from _redis_support import (
    RUNCAST_ACL_COMMANDS,
    AclUser,
    RedisServer,
    running_redis,
    tls_unsupported,
)
from _tls_support import TestPki, make_test_pki

from api.cluster import (
    APPEND_CHUNK,
    ControlCommand,
    RedisAuthError,
    RedisTarget,
    RedisUnavailable,
    SessionKeys,
    open_link,
    parse_redis_url,
)
from events import ExecutorPaused, TaskOutput, TaskStarted

pytestmark = pytest.mark.integration

PASSWORD = "acl-pa55-word"
RUNCAST_USER = AclUser("runcast", PASSWORD)
OUTSIDER = AclUser("outsider", PASSWORD, keys="other:*")
NO_XAUTOCLAIM = AclUser(
    "noautoclaim", PASSWORD, commands=tuple(c for c in RUNCAST_ACL_COMMANDS if c != "+xautoclaim")
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    reason = tls_unsupported()
    if reason is not None:
        pytest.skip(reason)
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[RedisServer]:
    users = (RUNCAST_USER, OUTSIDER, NO_XAUTOCLAIM)
    with running_redis(tmp_path_factory.mktemp("redis"), tls=pki, users=users) as server:
        yield server


def _target(
    server: RedisServer, *, user: AclUser | None = None, query: str | None = None
) -> RedisTarget:
    login = f"{user.name}:{user.password}@" if user else ""
    return parse_redis_url(server.url_for(login, query=query))


async def test_the_right_ca_opens_the_link_over_tls(tls_redis: RedisServer) -> None:
    async with open_link(_target(tls_redis, user=RUNCAST_USER), SessionKeys("tls-ok")) as link:
        assert await submit(link, "t1") == 1
        assert (await link.state()).last_seq == 1


@pytest.mark.parametrize("ca", ["other", "system"])
async def test_an_untrusted_server_certificate_fails_at_once_and_for_good(
    tls_redis: RedisServer, pki: TestPki, ca: str
) -> None:
    query = f"ssl_ca_certs={pki.other_ca_cert}" if ca == "other" else ""
    target = _target(tls_redis, user=RUNCAST_USER, query=query)
    started = trio.current_time()
    with pytest.raises(RedisAuthError) as raised:  # not RedisUnavailable: no retry helps
        async with open_link(target, SessionKeys("tls-wrong-ca")):
            pytest.fail("opened a link to a server whose certificate is not trusted")
    assert trio.current_time() - started < 1.0
    text = str(raised.value)
    assert "TLS: the server's certificate is not trusted" in text
    assert "self-signed certificate in certificate chain" in text
    assert (str(pki.other_ca_cert) if ca == "other" else "the system's CAs") in text
    assert PASSWORD not in text


async def test_a_certificate_for_another_host_name_is_refused(tls_redis: RedisServer) -> None:
    # The certificate is for 127.0.0.1 only; "localhost" reaches the same server.
    url = tls_redis.url_for().replace("127.0.0.1", "localhost")
    with pytest.raises(RedisAuthError, match=r"not trusted \(Hostname mismatch"):
        async with open_link(parse_redis_url(url), SessionKeys("tls-host")):
            pytest.fail("opened a link to a certificate issued for another name")


async def test_a_client_key_that_is_not_the_certificates_is_refused(
    tls_redis: RedisServer, pki: TestPki
) -> None:
    query = (
        f"ssl_ca_certs={pki.ca_cert}&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.server_key}"
    )
    with pytest.raises(RedisAuthError, match=r"TLS failed .*KEY_VALUES_MISMATCH"):
        async with open_link(_target(tls_redis, query=query), SessionKeys("tls-key")):
            pytest.fail("opened with a key that does not match the certificate")


async def test_plain_redis_to_a_tls_port_is_unavailable(tls_redis: RedisServer) -> None:
    # The server just closes the connection: indistinguishable from an outage.
    url = f"redis://127.0.0.1:{tls_redis.port}/0"
    with pytest.raises(RedisUnavailable):
        async with open_link(parse_redis_url(url), SessionKeys("tls-plain-client")):
            pytest.fail("a plain connection to a TLS port worked")


async def test_mutual_tls_needs_the_client_certificate(tmp_path: Path, pki: TestPki) -> None:
    with running_redis(tmp_path / "redis", tls=pki, tls_auth_clients=True) as server:
        async with open_link(parse_redis_url(server.url), SessionKeys("mtls")) as link:
            assert "ssl_certfile=" in str(link.target)
            assert await submit(link, "t1") == 1
        without = parse_redis_url(server.url_for(query=f"ssl_ca_certs={pki.ca_cert}"))
        with pytest.raises((RedisAuthError, RedisUnavailable)) as raised:
            async with open_link(without, SessionKeys("mtls")):
                pytest.fail("opened without the client certificate the server asks for")
    # TLS 1.3: the server's refusal comes after the handshake, either read by us (refused
    # for good) or as the EOF of a server that already hung up (retried, with a hint).
    if isinstance(raised.value, RedisAuthError):
        assert "TLS: the server refused this client's certificate" in str(raised.value)
        assert "certificate: none given" in str(raised.value)
    else:
        assert "EOF occurred" in str(raised.value)
        assert "if the server asks for client certificates" in str(raised.value)


async def test_a_wrong_acl_password_is_refused(tls_redis: RedisServer) -> None:
    target = _target(tls_redis, user=AclUser("runcast", "not-" + PASSWORD))
    with pytest.raises(RedisAuthError, match="authentication refused") as raised:
        async with open_link(target, SessionKeys("acl-wrong")):
            pytest.fail("opened with a wrong ACL password")
    assert PASSWORD not in str(raised.value)


async def test_an_acl_without_the_sessions_keys_is_a_noperm_error(tls_redis: RedisServer) -> None:
    async with open_link(_target(tls_redis, user=OUTSIDER), SessionKeys("acl-keys")) as link:
        with pytest.raises(RedisAuthError) as raised:
            await submit(link, "t1")
        assert link.errors["submit"] == 1
    text = str(raised.value)
    assert "the ACL of user 'outsider' forbids it (NOPERM: " in text
    assert "no permissions to access one of the keys" in text
    assert PASSWORD not in text


async def test_a_claim_the_acl_forbids_is_an_error_not_an_empty_claim(
    tls_redis: RedisServer,
) -> None:
    keys = SessionKeys("acl-claim")
    async with open_link(_target(tls_redis, user=RUNCAST_USER), keys) as link:
        assert await link.claim("w:a:1", 1, 30_000) == []  # no group yet: nothing to claim
        assert await submit(link, "t1") == 1
    async with open_link(_target(tls_redis, user=NO_XAUTOCLAIM), keys) as link:
        # Without XAUTOCLAIM a worker would claim nothing, forever, and say nothing.
        with pytest.raises(RedisAuthError, match="ACL of user 'noautoclaim' forbids it"):
            await link.claim("w:a:1", 1, 30_000)


async def test_the_documented_acl_is_enough_for_every_link_call(tls_redis: RedisServer) -> None:
    # RUNCAST_ACL_COMMANDS is what docs/cluster.md tells operators to grant: every call
    # of the link (and each command of its scripts) must pass, and none be refused.
    keys = SessionKeys("acl-enough")
    tls_redis.client().acl_log_reset()
    async with open_link(_target(tls_redis, user=RUNCAST_USER), keys) as link:
        assert await submit(link, "t1", "t2") == 2
        (claim, _) = await link.claim("w:a:1", 2, 30_000)
        producer = Producer("w:a:1")
        started = producer.request(TaskStarted(task_id=claim.task_id), token=claim.token)
        lines = [
            producer.request(TaskOutput(task_id=claim.task_id, line=f"{i}"), token=claim.token)
            for i in range(APPEND_CHUNK + 50)  # more than one chunk: a pipeline
        ]
        results = await link.append_many([started, *lines])
        assert {result.status for result in results} == {"ok"}
        assert await link.renew("w:a:1", [claim.task_id], 30_000) == []
        await link.release("w:a:1", [claim.task_id])
        pause_event = wire(ExecutorPaused(by="operator", reason="acl"))
        paused = ControlCommand(op="pause", by="operator", reason="acl", events=(pause_event,))
        assert (await link.control(paused)).ok
        assert (await link.state()).paused
        assert (await link.spec("t1")).id == "t1"
        assert await link.first_seq() == 1
        assert len(await link.read_events("0", count=500, block_ms=10)) == len(results) + 3
        tail = await link.control_tail()
        assert await link.read_control(tail, block_ms=10) == []
        await link.forget_worker("w:a:1")
        assert not link.errors
    assert tls_redis.client().acl_log() == []
