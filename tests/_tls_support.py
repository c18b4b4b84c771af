"""A throwaway certificate authority for the TLS tests, made with the ``openssl`` command.

``make_test_pki(directory)`` writes a CA, a server certificate it signed for 127.0.0.1
only (the name the client checks: "localhost" is another name), a client certificate
(mutual TLS) and a second, unrelated CA (the "wrong CA"). EC P-256 keys: the whole set
takes about 0.3 s. No Python dependency: ``cryptography`` is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import attrs
import pytest

OPENSSL = shutil.which("openssl")
_DAYS = "2"
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@attrs.frozen
class TestPki:
    """Paths of the PEM files ``make_test_pki`` wrote."""

    __test__ = False  # not a pytest test class

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path


def _openssl(*args: str, cwd: Path) -> None:
    if OPENSSL is None:
        pytest.fail("the openssl command is not installed (Debian package openssl)")
    result = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"openssl {args[0]} failed:\n{result.stderr.decode(errors='replace')}")


def _make_ca(directory: Path, name: str) -> None:
    _openssl(
        "req", "-x509", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.pem",
        "-days", _DAYS, "-subj", f"/CN=runcast test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip


def _make_leaf(directory: Path, name: str, extensions: str) -> None:
    """``name``.pem/.key signed by ``ca``; ``extensions``: lines of an openssl ext file."""
    (directory / f"{name}.ext").write_text(extensions, encoding="ascii")
    _openssl(
        "req", "-new", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
        "-subj", f"/CN=runcast test {name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", _DAYS, "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def make_test_pki(directory: Path) -> TestPki:
    directory.mkdir(parents=True, exist_ok=True)
    _make_ca(directory, "ca")
    _make_ca(directory, "other-ca")
    _make_leaf(
        directory,
        "server",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    _make_leaf(directory, "client", "extendedKeyUsage=clientAuth\n")
    return TestPki(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca_cert=directory / "other-ca.pem",
    )
