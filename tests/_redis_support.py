"""A real ``redis-server`` for the cluster tests: own port, own directory, AOF on.

``running_redis(directory)`` starts one bound to 127.0.0.1 on a free port (redis
cannot pick one itself: ``--port 0`` turns TCP off, so a port is found by binding a
socket, and another is tried if someone takes it first), with ``appendonly yes``,
``appendfsync everysec`` and no RDB snapshots, as the docs tell operators to run it.
``restart()`` keeps the port and the directory, so the AOF is replayed. Never the
Debian service on 6379. Starting blocks the caller for the few milliseconds redis
takes to answer PING.

Security options (additive): ``tls=TestPki`` serves TLS only (``--port 0`` turns
plain TCP off, ``--tls-port`` takes the free port), ``tls_auth_clients`` makes it ask
for a client certificate; ``users=`` adds ACL users (``AclUser``). ``url`` is then
``rediss://...?ssl_ca_certs=<the test CA>``.
"""

from __future__ import annotations

import functools
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
from _tls_support import TestPki

REDIS_SERVER = shutil.which("redis-server")
START_TIMEOUT = 10.0
_PORT_ATTEMPTS = 5


#: What a runcast ACL user needs: the commands of the link and of its scripts
#: (``api/cluster/_link.py``, ``api/cluster/lua``); no pub/sub channels.
RUNCAST_ACL_COMMANDS = (
    "-@all", "+ping", "+client|setname", "+select",
    "+evalsha", "+script|load", "+script|exists",
    "+xread", "+xrange", "+xrevrange", "+hget", "+zrem", "+hdel",
    # called inside the scripts
    "+get", "+incr", "+time", "+hexists", "+hgetall", "+hincrby", "+hlen", "+hset",
    "+hsetnx", "+xack", "+xadd", "+xclaim", "+xdel", "+xautoclaim", "+xgroup|create",
    "+xreadgroup", "+zadd", "+zcount", "+zremrangebyscore", "+zscore",
)  # fmt: skip


@attrs.frozen
class AclUser:
    """An ACL user: ``keys`` is a key pattern (``~`` rule); ``commands``: ACL rules."""

    name: str
    password: str
    keys: str = "runcast:*"
    commands: tuple[str, ...] = RUNCAST_ACL_COMMANDS

    def rules(self) -> list[str]:
        login = [self.name, "on", f">{self.password}"]
        return [*login, "resetchannels", f"~{self.keys}", *self.commands]


@functools.cache
def tls_unsupported() -> str | None:
    """Why this redis-server cannot serve TLS (None: it can; built with BUILD_TLS=yes)."""
    if REDIS_SERVER is None:
        return "redis-server is not installed"
    # With TLS built in, a TLS port without a certificate is refused for that reason.
    probe = subprocess.run(
        [REDIS_SERVER, "--port", "0", "--tls-port", str(free_port()), "--save", ""],
        capture_output=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if b"tls-cert-file" in probe.stdout + probe.stderr:
        return None
    return f"{REDIS_SERVER} was built without TLS (BUILD_TLS=yes): it cannot serve rediss://"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define(eq=False)
class RedisServer:
    """One ``redis-server`` process; ``url`` carries the password when there is one."""

    directory: Path
    password: str | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    tls: TestPki | None = None
    tls_auth_clients: bool = False
    users: tuple[AclUser, ...] = ()

    @property
    def url(self) -> str:
        login = f":{self.password}@" if self.password else ""
        return self.url_for(login)

    @property
    def url_without_password(self) -> str:
        return self.url_for("")

    def url_for(self, login: str = "", *, query: str | None = None) -> str:
        """The URL with ``login`` (``user:password@``); a TLS server's carries its CA
        unless ``query`` (the part after ``?``, "" for none) says otherwise."""
        if self.tls is None:
            return f"redis://{login}127.0.0.1:{self.port}/0"
        if query is None:
            query = f"ssl_ca_certs={self.tls.ca_cert}"
            if self.tls_auth_clients:
                query += f"&ssl_certfile={self.tls.client_cert}&ssl_keyfile={self.tls.client_key}"
        return f"rediss://{login}127.0.0.1:{self.port}/0" + (f"?{query}" if query else "")

    @property
    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, *, decode_responses: bool = True, **options: Any) -> redis.Redis:
        """A client logged in as the default user (with ``password``), over TLS if served."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            decode_responses=decode_responses,
            **self._tls_client_options(),
            **options,
        )

    def _tls_client_options(self) -> dict[str, Any]:
        if self.tls is None:
            return {}
        options: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(self.tls.ca_cert)}
        if self.tls_auth_clients:
            options["ssl_certfile"] = str(self.tls.client_cert)
            options["ssl_keyfile"] = str(self.tls.client_key)
        return options

    def start(self) -> None:
        """Start on ``port`` (a free one when 0), retrying another if it is taken."""
        if REDIS_SERVER is None:
            pytest.fail("redis-server is not installed; scripts/ensure-system-deps installs it")
        keep_port = self.port != 0
        for _ in range(_PORT_ATTEMPTS):
            if not keep_port:
                self.port = free_port()
            if self._start_once(REDIS_SERVER):
                return
            if keep_port:
                break
        raise AssertionError(f"redis-server did not start on port {self.port}:\n{self.log}")

    def _start_once(self, executable: str) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            executable,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", "redis.log",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        args += self._security_args()
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client(decode_responses=False, socket_timeout=1.0)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False  # most likely the port was taken meanwhile
                try:
                    if client.ping():
                        return True
                except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                    time.sleep(0.005)
        finally:
            client.close()
        self.stop()
        return False

    def _security_args(self) -> list[str]:
        args: list[str] = []
        if self.tls is not None:
            # The port moves from plain TCP (the later --port 0 turns it off) to TLS.
            args += [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca_cert),
                "--tls-auth-clients", "yes" if self.tls_auth_clients else "no",
            ]  # fmt: skip
        for user in self.users:
            args += ["--user", *user.rules()]
        return args

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (redis flushes the AOF and exits) or, with ``kill``, SIGKILL (a crash)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, *, kill: bool = False) -> None:
        """Stop and start again on the same port and directory: the AOF is replayed."""
        self.stop(kill=kill)
        self.start()


@contextmanager
def running_redis(
    directory: Path,
    *,
    password: str | None = None,
    tls: TestPki | None = None,
    tls_auth_clients: bool = False,
    users: tuple[AclUser, ...] = (),
) -> Iterator[RedisServer]:
    """A started ``RedisServer`` in ``directory``, stopped on leaving."""
    server = RedisServer(
        directory, password=password, tls=tls, tls_auth_clients=tls_auth_clients, users=users
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
