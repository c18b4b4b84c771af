"""``runcast submit`` and ``runcast worker`` through ``rediss://`` and ACL users, against a
real redis-server serving TLS with a throwaway CA (issue 21, point 9).

The happy path runs end to end (submit, then one worker that finishes the job); each
refusal (wrong CA, wrong ACL password, an ACL without the session's keys) is exit 2
with one line on stderr, no traceback and no password.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from _redis_support import AclUser, RedisServer, running_redis, tls_unsupported
from _tls_support import TestPki, make_test_pki
from _worker_processes import kinds, runcast, stream_frames, write_job

from api.cluster import CA_CERTS_ENV

pytestmark = pytest.mark.integration

TIMEOUT = 60
PASSWORD = "tls-acl-secret-77"
RUNCAST_USER = AclUser("runcast", PASSWORD)
OUTSIDER = AclUser("outsider", PASSWORD, keys="other:*")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    reason = tls_unsupported()
    if reason is not None:
        pytest.skip(reason)
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[RedisServer]:
    users = (RUNCAST_USER, OUTSIDER)
    with running_redis(tmp_path_factory.mktemp("redis"), tls=pki, users=users) as server:
        yield server


def _login(user: AclUser, password: str | None = None) -> str:
    return f"{user.name}:{password or user.password}@"


def _assert_one_clean_line(err: str, command: str, *expected: str) -> None:
    assert err.startswith(f"runcast {command}: Redis "), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert "secret" not in err
    for text in expected:
        assert text in err, err


async def test_submit_and_a_worker_run_a_job_through_tls_as_an_acl_user(
    tmp_path: Path, tls_redis: RedisServer, pki: TestPki
) -> None:
    job = write_job(tmp_path / "job.toml", [{"id": "small", "code": "print('hello')"}])
    # submit names the CA through the environment, the worker in the URL.
    plain_url = tls_redis.url_for(_login(RUNCAST_USER), query="")
    with trio.fail_after(TIMEOUT):
        code, out, err = await runcast(
            "submit", str(job), "--redis", plain_url, "--session", "tls-e2e",
            cwd=tmp_path, env={CA_CERTS_ENV: str(pki.ca_cert)},
        )  # fmt: skip
        assert code == 0, err
        assert "1 of 1 task(s) submitted" in out
        code, out, err = await runcast(
            "worker", "--redis", tls_redis.url_for(_login(RUNCAST_USER)), "--session", "tls-e2e",
            "--exit-when-idle", cwd=tmp_path,
        )  # fmt: skip
    assert code == 0, err
    # The worker says where it works: the CA shows, the password does not.
    assert f"at rediss://runcast:***@127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={pki.ca_cert}" in out
    assert PASSWORD not in out + err
    frames = stream_frames(tls_redis.client(), "tls-e2e")
    assert kinds(frames, "small") == [
        "task_queued", "task_started", "task_output", "task_completed",
    ]  # fmt: skip


@pytest.mark.parametrize("ca", ["other", "system"])
async def test_an_untrusted_server_certificate_is_exit_2_and_one_line(
    tmp_path: Path, tls_redis: RedisServer, pki: TestPki, ca: str
) -> None:
    query = f"ssl_ca_certs={pki.other_ca_cert}" if ca == "other" else ""
    url = tls_redis.url_for(_login(RUNCAST_USER), query=query)
    with trio.fail_after(TIMEOUT):
        code, out, err = await runcast(
            "worker", "--redis", url, "--session", "tls-wrong-ca", "--exit-when-idle", cwd=tmp_path
        )
    assert code == 2
    assert out == ""
    _assert_one_clean_line(
        err, "worker", "TLS: the server's certificate is not trusted", "ssl_ca_certs=PATH"
    )


async def test_a_wrong_acl_password_is_exit_2_and_one_line(
    tmp_path: Path, tls_redis: RedisServer
) -> None:
    url = tls_redis.url_for(_login(RUNCAST_USER, "wrong-secret"))
    with trio.fail_after(TIMEOUT):
        code, out, err = await runcast(
            "worker", "--redis", url, "--session", "acl-wrong", "--exit-when-idle", cwd=tmp_path
        )
    assert code == 2
    assert out == ""
    _assert_one_clean_line(err, "worker", "authentication refused")


async def test_an_acl_without_the_sessions_keys_is_exit_2_with_noperm(
    tmp_path: Path, tls_redis: RedisServer
) -> None:
    job = write_job(tmp_path / "job.toml", [{"id": "a", "code": "print(1)"}])
    url = tls_redis.url_for(_login(OUTSIDER))
    with trio.fail_after(TIMEOUT):
        submit_code, _, submit_err = await runcast(
            "submit", str(job), "--redis", url, "--session", "acl-keys", cwd=tmp_path
        )
        worker_code, _, worker_err = await runcast(
            "worker", "--redis", url, "--session", "acl-keys", "--exit-when-idle", cwd=tmp_path
        )
    assert (submit_code, worker_code) == (2, 2)
    for command, err in (("submit", submit_err), ("worker", worker_err)):
        # The worker logs its start (structlog) before its first keyed call: the last line.
        last = err.strip().splitlines()[-1]
        _assert_one_clean_line(
            last, command, "the ACL of user 'outsider' forbids it (NOPERM: ", "keys"
        )
    assert "Traceback" not in worker_err


async def test_a_missing_ca_file_is_exit_2_naming_the_option_and_path(
    tmp_path: Path, tls_redis: RedisServer
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    url = tls_redis.url_for(_login(RUNCAST_USER), query=f"ssl_ca_certs={missing}")
    with trio.fail_after(TIMEOUT):
        code, out, err = await runcast(
            "worker", "--redis", url, "--session", "tls-no-file", "--exit-when-idle", cwd=tmp_path
        )
    assert code == 2
    assert out == ""
    assert err.strip() == (
        f"runcast worker: Redis URL: option ssl_ca_certs: no such file: {str(missing)!r}"
    )
