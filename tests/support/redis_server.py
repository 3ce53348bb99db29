"""A real ``redis-server`` for tests: started in a temporary directory, stopped afterwards.

Tests of the shared rate limiter never mock Redis. The fixtures here start Debian's (or any)
``redis-server`` binary on a free loopback port, without persistence, and wait until it
answers ``PING``. When the binary is missing the tests fail, with the command that installs
it: CI installs it, so a skip would only hide a broken setup.

* ``redis_server`` (module scope): one server shared by a module's tests; use a fresh
  ``account`` per test so that tests do not share budgets.
* ``own_redis_server`` (function scope): a server of the test's own, which the test may
  ``stop()`` and ``start()`` again on the same port (Redis unavailable, then back).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "own_redis_server", "redis_server", "require_redis_server"]

INSTALL_HINT = (
    "redis-server is not on PATH; the shared rate limiter's tests need a real one: "
    "apt-get install redis-server"
)


def require_redis_server() -> str:
    """The path of ``redis-server``; fails the test with the install command if missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, stoppable and restartable on its port."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again) and wait until it answers PING."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not _answers_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.directory / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}:\n{tail}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server (SIGTERM; it saves nothing) and wait for it to exit."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a wedged server
            process.kill()
            process.wait()

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[RedisServer]:
        binary = require_redis_server()
        with tempfile.TemporaryDirectory(prefix="redis-test-") as directory:
            server = cls(binary, Path(directory))
            server.start()
            try:
                yield server
            finally:
                server.stop()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server shared by the module's tests."""
    with RedisServer.running() as server:
        yield server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop and start again."""
    with RedisServer.running() as server:
        yield server
