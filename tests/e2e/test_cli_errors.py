"""Every ``patchworks`` command given broken input, as its users would break it.

Each case runs the command in a subprocess and checks the promise the command line makes:
the documented exit status, exactly one ``error: ...`` line on stderr (for a mistake
argparse catches, its usage lines and then its own ``error:`` line), never a traceback, and
never a secret, even one that was given.

Exit statuses: 1 failed, 2 usage or configuration, 3 unknown, 4 authentication, 5 timeout.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from patchworks_async.testing import fake_patchworks_process

from .test_cli import COMMAND, clean_env, cli, fake_env, refusing_url, server_env

SECRET = "s3cr3t-7f3a9c"
"""Given as a key or a password in the cases that give one; never to be printed."""


class Case(NamedTuple):
    """One broken command line.

    ``{name}`` in ``argv`` is filled from the ``places`` fixture; ``env`` names the
    environment: ``none`` (no PATCHWORKS_* variable), ``server`` (a working fake),
    ``bad-key`` (the fake with a wrong key), ``bad-password`` (the fake, a wrong login).
    ``argparse`` marks a mistake argparse itself reports.
    """

    argv: tuple[str, ...]
    status: int
    says: str
    env: str = "server"
    stdin: str | None = None
    argparse: bool = False


def usage(*argv: str, says: str) -> Case:
    """A mistake argparse reports: exit 2, after its usage lines."""
    return Case(argv, 2, says, env="none", argparse=True)


CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ demo
    "demo-no-starts": usage("demo", "--starts", "0", says="must be positive"),
    "demo-nan-window": usage("demo", "--window", "nan", says="not a finite number"),
    "demo-word-requests": usage("demo", "--requests", "many", says="not a whole number"),
    # ------------------------------------------------------------------ fake-server
    "fake-server-port-too-big": usage("fake-server", "--port", "70000", says="0 to 65535"),
    "fake-server-port-word": usage("fake-server", "--port", "http", says="not a port"),
    "fake-server-busy-port": Case(
        ("fake-server", "--port", "{busy_port}"), 2, "cannot listen on 127.0.0.1:", env="none"
    ),
    "fake-server-bad-latency": usage("fake-server", "--latency", "2,1", says="LO must not"),
    "fake-server-bad-outcome": usage("fake-server", "--run-outcome", "7", says="invalid choice"),
    # ------------------------------------------------------------------ flows list
    "list-no-credentials": Case(("flows", "list"), 2, "no credentials", env="none"),
    "list-both-credentials": Case(
        ("flows", "list", "--api-key", SECRET, "--email", "user@example.com"),
        2,
        "give an API key or an email and password, not both",
        env="none",
    ),
    "list-email-without-password": Case(
        ("flows", "list", "--email", "user@example.com"), 2, "give both", env="none"
    ),
    "list-bad-url": Case(("flows", "list", "--core-url", "not a url"), 2, "core_url must be"),
    "list-not-http": Case(("flows", "list", "--core-url", "ftp://x/y"), 2, "core_url must be"),
    "list-unreachable": Case(
        ("flows", "list", "--core-url", "{refusing_url}"), 1, "cannot reach the server"
    ),
    "list-bad-key": Case(("flows", "list"), 4, "401", env="bad-key"),
    "list-bad-password": Case(("flows", "list"), 4, "login", env="bad-password"),
    "list-filter-syntax": usage("flows", "list", "--filter", "enabled", says="KEY=VALUE"),
    "list-unknown-filter": Case(("flows", "list", "--filter", "colour=red"), 1, "400"),
    "list-unknown-sort": Case(("flows", "list", "--sort", "colour"), 1, "400"),
    "list-no-max": usage("flows", "list", "--max", "0", says="must be positive"),
    "list-negative-timeout": usage("flows", "list", "--timeout", "-1", says="must be positive"),
    "list-no-rate": usage("flows", "list", "--requests", "0", says="must be positive"),
    # ------------------------------------------------------------------ flows start
    "start-word-flow": usage("flows", "start", "one", "9001", says="not a whole number"),
    "start-word-version": usage("flows", "start", "101", "latest", says="or 'deployed'"),
    "start-no-concurrency": usage(
        "flows", "start", "101", "9001", "--concurrency", "0", says="must be positive"
    ),
    "start-missing-file": Case(("flows", "start", "101", "9001", "{missing}"), 2, "cannot read"),
    "start-directory": Case(("flows", "start", "101", "9001", "{directory}"), 2, "cannot read"),
    "start-directory-jsonl": Case(
        ("flows", "start", "101", "9001", "{directory}", "--jsonl"), 2, "cannot read"
    ),
    "start-not-utf8": Case(("flows", "start", "101", "9001", "{latin1}"), 2, "not UTF-8"),
    "start-no-credentials": Case(
        ("flows", "start", "101", "9001"), 2, "no credentials", env="none", stdin="x"
    ),
    "start-resend-unknown-alone": Case(
        ("flows", "start", "101", "9001", "--resend-unknown"), 2, "--journal", stdin="x"
    ),
    "start-journal-nowhere": Case(
        ("flows", "start", "101", "9001", "--journal", "{missing}/run.sqlite"),
        2,
        "journal",
        stdin="x",
    ),
    "start-unknown-flow": Case(("flows", "start", "999999", "9001"), 1, "404", stdin="x"),
    "start-unreachable": Case(
        ("flows", "start", "101", "9001", "--start-url", "{refusing_url}"),
        1,
        "cannot reach the server",
        stdin="x",
    ),
    "start-bad-key": Case(("flows", "start", "101", "9001"), 4, "401", env="bad-key", stdin="x"),
    # ------------------------------------------------------------------ runs get
    "get-word-run": usage("runs", "get", "latest", says="not a whole number"),
    "get-zero-run": usage("runs", "get", "0", says="must be positive"),
    "get-no-credentials": Case(("runs", "get", "1"), 2, "no credentials", env="none"),
    "get-unknown-run": Case(("runs", "get", "424242"), 1, "404"),
    "get-unreachable": Case(
        ("runs", "get", "1", "--core-url", "{refusing_url}"), 1, "cannot reach the server"
    ),
    "get-bad-key": Case(("runs", "get", "1"), 4, "401", env="bad-key"),
    # ------------------------------------------------------------------ runs wait
    "wait-no-time": usage("runs", "wait", "1", "--timeout", "0", says="must be positive"),
    "wait-word-poll": usage("runs", "wait", "1", "--poll", "soon", says="not a number"),
    "wait-gives-up": Case(
        ("runs", "wait", "424242", "--timeout", "0.2", "--poll", "0.05"), 5, "still queued"
    ),
    "wait-bad-key": Case(("runs", "wait", "1"), 4, "401", env="bad-key"),
    "wait-unreachable": Case(
        ("runs", "wait", "1", "--core-url", "{refusing_url}"), 1, "cannot reach the server"
    ),
}

UNREADABLE = Path("/proc/self/mem")  # opens, and fails to read at offset 0 (EIO)
if UNREADABLE.exists():
    CASES["start-unreadable"] = Case(
        ("flows", "start", "101", "9001", str(UNREADABLE)), 2, "cannot read"
    )
    CASES["start-unreadable-jsonl"] = Case(
        ("flows", "start", "101", "9001", str(UNREADABLE), "--jsonl"), 2, "cannot read"
    )


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    """``patchworks fake-server`` in its own process, for the cases that need one."""
    with subprocess.Popen(
        [*COMMAND, "fake-server", "--port", "0", "--requests", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    ) as process:
        try:
            assert process.stdout is not None
            yield json.loads(process.stdout.readline())
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """What the cases' ``{name}`` placeholders stand for."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "latin1.xml").write_bytes("<café/>".encode("latin-1"))
    with refusing_url() as url, socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield {
            "missing": str(root / "missing"),
            "directory": str(root),
            "latin1": str(root / "latin1.xml"),
            "refusing_url": url,
            "busy_port": str(busy.getsockname()[1]),
        }


def environment(kind: str, server: dict[str, str]) -> dict[str, str]:
    """The environment a case runs in (see ``Case``)."""
    if kind == "none":
        return clean_env()
    env = server_env(server)
    if kind == "bad-key":
        env["PATCHWORKS_API_KEY"] = SECRET
    elif kind == "bad-password":
        del env["PATCHWORKS_API_KEY"]
        env |= {"PATCHWORKS_EMAIL": "user@example.com", "PATCHWORKS_PASSWORD": SECRET}
    return env


def assert_one_error(result: subprocess.CompletedProcess[str], *, argparse: bool) -> str:
    """The promise: one ``error:`` line (after argparse's usage lines), no traceback, no
    secret. Returns the error line."""
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything
    assert SECRET not in everything
    *before, last = result.stderr.splitlines() or [""]
    if argparse:
        assert re.match(r"patchworks( [a-z-]+)*: error: ", last), result.stderr
        assert before[0].startswith("usage: patchworks")
        assert all(line.startswith(" ") for line in before[1:]), result.stderr
    else:
        assert before == [], result.stderr
        assert last.startswith("error: "), result.stderr
    return last


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_broken_input_is_one_error_line(
    case: Case, server: dict[str, str], places: dict[str, str]
) -> None:
    argv = [arg.format_map(places) for arg in case.argv]
    result = cli(*argv, env=environment(case.env, server), stdin=case.stdin)
    line = assert_one_error(result, argparse=case.argparse)
    assert result.returncode == case.status, result.stderr
    assert case.says in line


async def test_a_request_timeout_exits_5() -> None:
    """A server that never answers: the request times out, retries included: exit 5."""
    async with fake_patchworks_process() as fake:
        hold = await fake.hold(route="core", when="before")
        result = await asyncio.to_thread(
            cli, "runs", "get", "1", "--request-timeout", "0.1", env=fake_env(fake)
        )
        await fake.release(hold)
    line = assert_one_error(result, argparse=False)
    assert result.returncode == 5, result.stderr
    assert "timed out" in line
