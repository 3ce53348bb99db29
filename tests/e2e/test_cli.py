"""The ``patchworks`` command line, run as its users run it.

Most tests run ``python -m patchworks_async`` in a subprocess (no terminal: plain output)
against ``patchworks fake-server`` in another process, and read what the server saw from
``GET /_fake/state``. A few give the command a pseudo-terminal, to see what a person at a
terminal sees. A few call ``main()`` in a worker thread against an in-process fake, where
a setting of the fake (a run that never ends, a run that fails) is needed.

Broken input of every kind, command by command, is in ``test_cli_errors.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import pytest

from patchworks_async import FlowRunStatus, PatchworksClient, __version__
from patchworks_async.cli import main
from patchworks_async.cli._input import PayloadSource, json_lines
from patchworks_async.testing import FakePatchworks, RemoteFake, fake_patchworks_process

SUMMARY = re.compile(
    r"^accepted (\d+)/(\d+) \| 429s (\d+) \| rate \d+\.\d\d/s against a limit of "
    r"(\d+\.\d\d)/s \((\d+\.\d)%\) \| \d+\.\d s$",
    re.MULTILINE,
)
COMMAND = [sys.executable, "-m", "patchworks_async"]


def clean_env() -> dict[str, str]:
    """The environment without any PATCHWORKS_* variable, and a wide fake terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHWORKS_")}
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    """``patchworks fake-server`` in its own process; runs finish after 0.2 s."""
    with subprocess.Popen(
        [*COMMAND, "fake-server", "--port", "0", "--requests", "100000", "--run-duration", "0.2"],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    ) as process:
        try:
            assert process.stdout is not None
            yield json.loads(process.stdout.readline())
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0


def server_env(server: dict[str, str]) -> dict[str, str]:
    env = clean_env()
    env["PATCHWORKS_API_KEY"] = server["api_key"]
    for name in ("core_url", "start_url", "login_url"):
        env[f"PATCHWORKS_{name.upper()}"] = server[name]
    return env


def cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env() if env is None else env,
        timeout=60,
        check=False,
    )


def started_payloads(server: dict[str, str]) -> list[dict[str, Any]]:
    root = server["core_url"].split("/core/")[0]
    with urllib.request.urlopen(f"{root}/_fake/state", timeout=10) as reply:
        starts: list[dict[str, Any]] = json.load(reply)["starts"]
    return starts


def starts_of(server: dict[str, str], marker: str) -> list[dict[str, Any]]:
    return [start for start in started_payloads(server) if marker in start["payload"]]


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    return lines[0]


@contextlib.contextmanager
def refusing_url() -> Iterator[str]:
    """A URL on loopback where nothing listens: a port held (bound, never listening) for
    the duration, so no other test can take it and every connection is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}/api/v1"


def read_terminal(master: int, *, lines: int | None = None) -> str:
    """What a command wrote to a pseudo-terminal: ``lines`` lines, or all until it closes.

    The terminal turns each newline into CRLF; the text comes back with plain newlines.
    """
    data = b""
    while lines is None or data.count(b"\n") < lines:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        data += chunk
    return data.decode().replace("\r\n", "\n")


# ---------------------------------------------------------------------------- every command


def test_version_is_the_packages() -> None:
    result = cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"patchworks {__version__}\n"


def test_help_lists_every_exit_status() -> None:
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    epilog = result.stdout.split("exit status:\n")[1]
    assert re.findall(r"^  (\d+) +(\w+)", epilog, re.MULTILINE) == [
        ("0", "success"),
        ("1", "failed"),
        ("2", "usage"),
        ("3", "unknown"),
        ("4", "authentication"),
        ("5", "timeout"),
        ("130", "interrupted"),
    ]


@pytest.mark.parametrize(
    "command", [("flows", "list"), ("flows", "start"), ("runs", "get"), ("runs", "wait")]
)
def test_every_api_command_takes_the_rate_limit_and_verbose(command: tuple[str, ...]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--requests N", "--per S", "--verbose"):
        assert option in result.stdout


def test_retries_are_shown_with_verbose_one_line_each(server: dict[str, str]) -> None:
    """Quiet by default (one error line); with -v each retry is a ``warning:`` line."""
    with refusing_url() as url:
        result = cli("flows", "list", "-v", "--core-url", url, env=server_env(server))
    assert result.returncode == 1
    *warnings, error = result.stderr.splitlines()
    assert warnings
    assert all(re.match(r"warning: GET \S+ failed \(.*\); retry \d in ", w) for w in warnings)
    assert error.startswith("error: cannot reach the server: ")
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- demo, fake-server


def test_the_demo_keeps_the_limit_and_says_so() -> None:
    result = cli("demo", "--starts", "40", "--requests", "20", "--window", "1")
    assert result.returncode == 0, result.stderr
    found = SUMMARY.search(result.stdout)
    assert found is not None, result.stdout
    assert found.group(1, 2, 3, 4) == ("40", "40", "0", "20.00")
    # No terminal: no progress bar, no escape codes, just the header and the summary.
    assert "\x1b" not in result.stdout
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 2


def test_fake_server_says_how_to_point_the_cli_at_it(tmp_path: Path) -> None:
    """stdout is one JSON line for tools; the export lines, on stderr, work when pasted,
    even with a login left in the environment."""
    with subprocess.Popen(
        [*COMMAND, "fake-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            ready = json.loads(process.stdout.readline())
            pasted = [process.stderr.readline() for _ in range(6)]
            (tmp_path / "env.sh").write_text("".join(pasted))
            env = clean_env() | {"PATCHWORKS_EMAIL": "left@over", "PATCHWORKS_PASSWORD": "x"}
            command = " ".join(shlex.quote(part) for part in COMMAND)
            listed = subprocess.run(
                ["sh", "-c", f". ./env.sh && exec {command} flows list --json"],
                cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60, check=False,
            )  # fmt: skip
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        assert process.stdout.read() == ""  # nothing but the JSON line
        assert process.stderr.read() == ""
    assert pasted[0].startswith("#")
    assert f"export PATCHWORKS_API_KEY={ready['api_key']}\n" in pasted
    assert f"export PATCHWORKS_CORE_URL={ready['core_url']}\n" in pasted
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout.splitlines()[0])["id"] == 101


def test_fake_server_on_a_terminal_prints_the_export_lines_after_the_json() -> None:
    master, terminal = pty.openpty()
    with subprocess.Popen(
        [*COMMAND, "fake-server", "--port", "0"],
        stdout=terminal,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    ) as process:
        os.close(terminal)
        try:
            first, *exports = read_terminal(master, lines=7).splitlines()
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
            os.close(master)
        assert process.stderr is not None
        assert process.stderr.read() == ""
    ready = json.loads(first)
    names = ("api_key", "core_url", "start_url", "login_url")
    assert exports[2:] == [f"export PATCHWORKS_{name.upper()}={ready[name]}" for name in names]


async def test_fake_server_serves_until_interrupted() -> None:
    """``patchworks fake-server`` prints its URLs, answers the API, and stops on Ctrl-C."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "fake-server",
        "--port",
        "0",
        "--run-duration",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        api_key = ready.pop("api_key")
        # /start queues (PATCHWORKS_API.md): no queue delay, so the run can be read at once.
        await RemoteFake(urls=ready, api_key=api_key).configure(queue_delay=0)
        async with PatchworksClient(api_key=api_key, **ready) as pw:
            started = await pw.flows.start(101, 9001, "from another process")
            run = await pw.flow_runs.get(started.id)
        assert run.status == FlowRunStatus.SUCCESS  # --run-duration 0: finished at once
    finally:
        process.send_signal(signal.SIGINT)
        status = await asyncio.wait_for(process.wait(), 30)
    assert status == 0


# ---------------------------------------------------------------------------- flows list


def test_flows_list_json_is_json_lines(server: dict[str, str]) -> None:
    result = cli("flows", "list", "--json", env=server_env(server))
    assert result.returncode == 0, result.stderr
    flows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {flow["id"] for flow in flows} >= {101}
    seeded = next(flow for flow in flows if flow["id"] == 101)
    assert seeded["name"] == "Orders to ERP"
    assert seeded["deployed_version_id"] == 9001


def test_flows_list_piped_is_tab_separated(server: dict[str, str]) -> None:
    """Not a terminal: a header and one row per flow, tab-separated, no box, no colour."""
    result = cli(
        "flows", "list", "--filter", "id=101", "--sort=-name", "--max", "5",
        env=server_env(server),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "id\tname\tenabled_at\tdeployed_version_id",
        "101\tOrders to ERP\t2026-01-01T00:00:00+00:00\t9001",
    ]
    assert result.stderr == ""


def test_flows_list_on_a_terminal_is_a_table(server: dict[str, str]) -> None:
    master, terminal = pty.openpty()
    env = server_env(server) | {"PYTHONIOENCODING": "utf-8"}
    with subprocess.Popen(
        [*COMMAND, "flows", "list", "--filter", "id=101"],
        stdout=terminal,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        os.close(terminal)
        shown = read_terminal(master)
        os.close(master)
        assert process.wait(timeout=30) == 0
    assert "\u2503" in shown  # rich's box drawing: a heavy vertical line
    assert re.search(r"\u2502 101 +\u2502 Orders to ERP +\u2502", shown)


# ---------------------------------------------------------------------------- flows start


def test_one_payload_from_stdin_is_sent_verbatim(server: dict[str, str]) -> None:
    payload = '<order id="stdin-1">naïve & "quoted"</order>\n'
    result = cli("flows", "start", "101", "9001", env=server_env(server), stdin=payload)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "started 1 | failed 0 | unknown 0 | skipped 0 | not sent 0 | 1 item in"
    )
    [start] = starts_of(server, "stdin-1")
    assert start["payload"] == payload
    assert (start["flow_id"], start["version_id"]) == (101, 9001)


def test_a_single_start_prints_its_run_id(server: dict[str, str]) -> None:
    result = cli("flows", "start", "101", "9001", env=server_env(server), stdin="run-id-1")
    assert result.returncode == 0, result.stderr
    summary, run = result.stdout.splitlines()
    assert summary.startswith("started 1 | failed 0 |")
    [start] = starts_of(server, "run-id-1")
    assert run == f"run {start['run_id']}"
    assert result.stderr == ""


def test_stdin_on_a_terminal_is_announced(server: dict[str, str]) -> None:
    """Reading a payload a person must type says so, instead of seeming to hang."""
    master, terminal = pty.openpty()
    with subprocess.Popen(
        [*COMMAND, "flows", "start", "101", "9001"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(server),
    ) as process:
        os.close(terminal)
        assert process.stderr is not None
        hint = process.stderr.readline()  # said before it reads
        os.write(master, b"typed-1\n\x04")  # Ctrl-D on a line of its own: the end
        out, err = process.communicate(timeout=30)
        os.close(master)
    assert hint.startswith("reading the payload from stdin: end with Ctrl-D")
    assert process.returncode == 0, err
    assert err == ""
    [start] = starts_of(server, "typed-1")
    assert start["payload"] == "typed-1\n"
    assert out.splitlines()[1] == f"run {start['run_id']}"


def test_one_payload_from_a_file_and_another_version(
    server: dict[str, str], tmp_path: Path
) -> None:
    payload = '{"order": "file-1",\n "lines": []}'
    (tmp_path / "order.json").write_text(payload)
    result = cli(
        "flows", "start", "101", "9002", str(tmp_path / "order.json"), env=server_env(server)
    )
    assert result.returncode == 0, result.stderr
    [start] = starts_of(server, "file-1")
    assert start["payload"] == payload
    assert start["version_id"] == 9002


def test_deployed_starts_the_deployed_version(server: dict[str, str]) -> None:
    result = cli(
        "flows", "start", "101", "deployed", "-", env=server_env(server), stdin="deployed-1"
    )
    assert result.returncode == 0, result.stderr
    [start] = starts_of(server, "deployed-1")
    assert start["version_id"] == 9001  # the fake's deployed version of flow 101


def test_jsonl_bad_line_fails_alone(server: dict[str, str], tmp_path: Path) -> None:
    lines = ['{"order": "jsonl-1"}', "", '{"order": "jsonl-2"', '["jsonl-3", 1.10]', '"jsonl-4"']
    (tmp_path / "orders.jsonl").write_text("\n".join(lines) + "\n")
    result = cli(
        "flows", "start", "101", "9001", str(tmp_path / "orders.jsonl"), "--jsonl",
        env=server_env(server),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(
        "started 3 | failed 1 | unknown 0 | skipped 0 | not sent 0 | 4 items in"
    )
    assert "item 1 (line 3): failed: line 3 is not JSON" in result.stdout
    sent = sorted(start["payload"] for start in starts_of(server, "jsonl-"))
    # Each good line is sent as written, once checked to be JSON.
    assert sent == ['"jsonl-4"', '["jsonl-3", 1.10]', '{"order": "jsonl-1"}']


def test_a_journal_makes_the_rerun_skip_everything(server: dict[str, str], tmp_path: Path) -> None:
    journal = tmp_path / "run.sqlite"
    data = "".join(f'{{"order": "journal-{i}"}}\n' for i in range(5))
    args = ("flows", "start", "101", "9001", "-", "--jsonl", "--journal", str(journal))
    first = cli(*args, env=server_env(server), stdin=data)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("started 5 | failed 0 | unknown 0 | skipped 0 | not sent 0")
    assert len(starts_of(server, "journal-")) == 5

    again = cli(*args, "--json", env=server_env(server), stdin=data)
    assert again.returncode == 0, again.stderr
    results = [json.loads(line) for line in again.stdout.splitlines()]
    assert sorted(r["index"] for r in results) == list(range(5))
    assert {r["status"] for r in results} == {"skipped"}
    assert all(isinstance(r["run_id"], int) for r in results)
    assert "started 0 | failed 0 | unknown 0 | skipped 5 | not sent 0" in again.stderr
    assert len(starts_of(server, "journal-")) == 5  # nothing new on the server


def test_a_changed_input_is_refused_by_the_journal(server: dict[str, str], tmp_path: Path) -> None:
    journal = str(tmp_path / "run.sqlite")
    args = ("flows", "start", "101", "9001", "--jsonl", "--journal", journal)
    assert cli(*args, env=server_env(server), stdin='"changed-a"\n').returncode == 0
    result = cli(*args, env=server_env(server), stdin='"changed-b"\n')
    assert result.returncode == 2
    assert "new journal" in one_error_line(result.stderr)
    assert starts_of(server, "changed-b") == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_an_interrupted_batch_reports_and_keeps_the_journal(
    server: dict[str, str], tmp_path: Path, signum: signal.Signals
) -> None:
    """Interrupted while waiting for more input: the partial report, exit 130, journal kept."""
    journal = tmp_path / "run.sqlite"
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "flows", "start", "101", "9001", "--jsonl", "--json", "--journal", str(journal),
        "--concurrency", "1",  # start_many fills a batch of `concurrency` before sending
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=server_env(server),
    )  # fmt: skip
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(b"".join(b'{"order": "interrupted-%d"}\n' % i for i in range(3)))
    await process.stdin.drain()
    # The input stays open: the lines are read (and sent) as they come, not at its end.
    for _ in range(3):
        assert json.loads(await asyncio.wait_for(process.stdout.readline(), 30))["run_id"]
    process.send_signal(signum)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, err
    assert b"interrupted" in err
    assert b"started 3 | failed 0 | unknown 0 | skipped 0 | not sent 0" in err
    assert b"Traceback" not in err
    with contextlib.closing(sqlite3.connect(journal)) as db:
        assert db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall() == [
            ("started", 3)
        ]


SIGNALS = pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"]
)


def fake_env(fake: RemoteFake) -> dict[str, str]:
    env = clean_env()
    env["PATCHWORKS_API_KEY"] = fake.api_key
    for name, url in fake.urls.items():
        env[f"PATCHWORKS_{name.upper()}"] = url
    return env


async def stop_a_batch(
    fake: RemoteFake, tmp_path: Path, signum: signal.Signals, *options: str, on_the_wire: int
) -> tuple[str, dict[str, int]]:
    """Run ``flows start --jsonl`` on twelve lines, stop it with ``signum`` once
    ``on_the_wire`` starts are processed and their replies held, and let the replies go
    only once the command says it is stopping.

    Returns all the command printed, and the journal's count of items per state.
    """
    journal = tmp_path / "run.sqlite"
    data = tmp_path / "orders.jsonl"
    data.write_text("".join(f'{{"order": "stop-{i}"}}\n' for i in range(12)))
    hold = await fake.hold(route="start", when="after")
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "flows", "start", "101", "9001", str(data), "--jsonl",
        "--journal", str(journal), *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=fake_env(fake),
    )  # fmt: skip
    assert process.stderr is not None
    await fake.wait_held(hold, on_the_wire)
    process.send_signal(signum)
    said = await asyncio.wait_for(process.stderr.readline(), 30)
    assert b"stopping" in said, said
    await fake.release(hold)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, err
    with contextlib.closing(sqlite3.connect(journal)) as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())
    return (said + err + out).decode(), states


@SIGNALS
async def test_a_signal_stops_a_batch_with_nothing_sent_after_it(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Concurrency-bound: three on the wire finish; no other item is read or sent."""
    async with fake_patchworks_process("--requests", "100000") as fake:
        said, journal = await stop_a_batch(
            fake, tmp_path, signum, "--concurrency", "3", on_the_wire=3
        )
        state = await fake.state()
    assert "nothing was sent after the signal" in said
    assert "started 3 | failed 0 | unknown 0 | skipped 0 | not sent 0" in said
    assert len(state["starts"]) == 3  # what the summary says is what the server has
    assert journal == {"started": 3}
    assert "Traceback" not in said


@SIGNALS
async def test_a_signal_leaves_items_waiting_for_a_slot_unsent(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Rate-bound (3 a minute): one on the wire finishes, the five waiting are not sent."""
    async with fake_patchworks_process("--requests", "100000") as fake:
        said, journal = await stop_a_batch(
            fake, tmp_path, signum, "--concurrency", "6", "--requests", "3", "--per", "60",
            on_the_wire=1,
        )  # fmt: skip
        state = await fake.state()
    assert "started 1 | failed 0 | unknown 0 | skipped 0 | not sent 5" in said
    assert len(state["starts"]) == 1
    assert journal == {"started": 1, "not_sent": 5}


async def test_a_stopped_batch_resumes_with_everything_sent_once(tmp_path: Path) -> None:
    async with fake_patchworks_process("--requests", "100000") as fake:
        await stop_a_batch(
            fake, tmp_path, signal.SIGINT, "--concurrency", "6", "--requests", "3",
            "--per", "60", on_the_wire=1,
        )  # fmt: skip
        again = await asyncio.to_thread(
            cli, "flows", "start", "101", "9001", str(tmp_path / "orders.jsonl"), "--jsonl",
            "--journal", str(tmp_path / "run.sqlite"), env=fake_env(fake),
        )  # fmt: skip
        state = await fake.state()
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("started 11 | failed 0 | unknown 0 | skipped 1 | not sent 0")
    assert sorted(start["payload"] for start in state["starts"]) == sorted(
        f'{{"order": "stop-{i}"}}' for i in range(12)
    )


@pytest.fixture(scope="module")
def html_portal() -> Iterator[str]:
    """The URL of a server that answers every POST with 200 and a web page."""
    with subprocess.Popen(
        [sys.executable, "-c", HTML_PORTAL], stdout=subprocess.PIPE, text=True
    ) as portal:
        try:
            assert portal.stdout is not None
            yield portal.stdout.readline().strip()
        finally:
            portal.terminate()


def test_a_start_url_that_answers_html_is_unknown_not_started(
    server: dict[str, str], html_portal: str
) -> None:
    """A wrong --start-url whose server says 200 with a page: unknown, exit 3."""
    result = cli(
        "flows", "start", "101", "9001", "--jsonl", "--start-url", html_portal,
        env=server_env(server), stdin='"a"\n"b"\n"c"\n',
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith("started 0 | failed 0 | unknown 3 |")
    assert result.stderr == (
        "3 item(s) may have started: check their flow runs before sending them again\n"
    )


def test_failed_and_unknown_items_exit_as_unknown(server: dict[str, str], html_portal: str) -> None:
    """Unknown is the more serious: those items may have started."""
    result = cli(
        "flows", "start", "101", "9001", "--jsonl", "--start-url", html_portal,
        env=server_env(server), stdin='"a"\nnot json\n"c"\n',
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith("started 0 | failed 1 | unknown 2 |")


def test_a_single_start_that_may_have_started_says_so_in_one_error_line(
    server: dict[str, str], html_portal: str
) -> None:
    result = cli(
        "flows", "start", "101", "9001", "--start-url", html_portal,
        env=server_env(server), stdin="single-unknown",
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stdout.startswith("started 0 | failed 0 | unknown 1 |")
    assert one_error_line(result.stderr).endswith(
        "(it may have started: check its flow runs before sending it again)"
    )


HTML_PORTAL = """
import http.server, sys

class Page(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html><h1>Welcome to nginx!</h1></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Page)
print(f"http://127.0.0.1:{server.server_port}/api/v1", flush=True)
server.serve_forever()
"""


# ---------------------------------------------------------------------------- runs


def test_runs_wait_and_get(server: dict[str, str]) -> None:
    env = server_env(server)
    started = cli("flows", "start", "101", "9001", "--json", env=env, stdin="runs-1")
    run_id = str(json.loads(started.stdout)["run_id"])

    waited = cli("runs", "wait", run_id, "--poll", "0.05", "--json", env=env)
    assert waited.returncode == 0, waited.stderr
    run = json.loads(waited.stdout)
    assert (run["id"], run["status"], run["status_name"]) == (int(run_id), 2, "SUCCESS")
    assert run["finished_at"] is not None

    shown = cli("runs", "get", run_id, env=env)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^status\s+SUCCESS \(2\)$", shown.stdout, re.MULTILINE)
    assert re.search(r"^flow\s+101$", shown.stdout, re.MULTILINE)


async def in_process(*argv: str, fake: FakePatchworks) -> int:
    """``main(argv)`` in a worker thread (its own event loop) against ``fake``."""
    args = [*argv, "--api-key", fake.api_key]
    for name, url in fake.urls.items():
        args += [f"--{name.replace('_', '-')}", url]
    return await asyncio.to_thread(main, args)


@pytest.fixture
async def never_ending() -> AsyncGenerator[FakePatchworks, None]:
    # /start queues (PATCHWORKS_API.md): no queue delay, so the run is running at once.
    async with FakePatchworks(run_duration=3600, queue_delay=0) as fake:
        yield fake


async def test_runs_wait_gives_up_at_its_timeout(
    never_ending: FakePatchworks, capsys: pytest.CaptureFixture[str]
) -> None:
    async with PatchworksClient(api_key=never_ending.api_key, **never_ending.urls) as pw:
        started = await pw.flows.start(101, 9001, "slow")
    status = await in_process(
        "runs", "wait", str(started.id), "--timeout", "0.2", "--poll", "0.05",
        fake=never_ending,
    )  # fmt: skip
    assert status == 5
    assert "still running after 0.2 s" in one_error_line(capsys.readouterr().err)


async def test_runs_wait_fails_on_a_failed_run(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakePatchworks(run_duration=0, run_outcome=3) as fake:
        async with PatchworksClient(api_key=fake.api_key, **fake.urls) as pw:
            started = await pw.flows.start(101, 9001, "doomed")
        status = await in_process("runs", "wait", str(started.id), "--poll", "0.05", fake=fake)
    assert status == 1
    assert re.search(r"^status\s+FAILURE \(3\)$", capsys.readouterr().out, re.MULTILINE)


# ---------------------------------------------------------------------------- errors


def test_no_credentials_is_a_usage_error() -> None:
    result = cli("flows", "list")
    assert result.returncode == 2
    assert "PATCHWORKS_API_KEY" in one_error_line(result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [(("flows", "list"), None), (("flows", "start", "101", "9001"), "secret-test")],
    ids=["list", "start"],
)
def test_a_bad_api_key_is_one_line_without_the_key(
    server: dict[str, str], argv: tuple[str, ...], stdin: str | None
) -> None:
    env = server_env(server)
    env["PATCHWORKS_API_KEY"] = "not-the-key-s3cr3t"
    result = cli(*argv, env=env, stdin=stdin)
    assert result.returncode == 4
    assert "401" in one_error_line(result.stderr)
    assert "s3cr3t" not in result.stdout + result.stderr


def test_an_unknown_flow_is_a_404(server: dict[str, str]) -> None:
    result = cli("flows", "start", "999999", "9001", env=server_env(server), stdin="nowhere")
    assert result.returncode == 1
    assert re.match(r"error: .*404", one_error_line(result.stderr))


def test_an_unknown_run_is_a_404(server: dict[str, str]) -> None:
    result = cli("runs", "get", "424242", env=server_env(server))
    assert result.returncode == 1
    assert re.match(r"error: 404 ", one_error_line(result.stderr))


def test_usage_errors_exit_2(server: dict[str, str], tmp_path: Path) -> None:
    env = server_env(server)
    assert cli("flows", "start", "101", "latest", env=env, stdin="x").returncode == 2
    missing = cli("flows", "start", "101", "9001", str(tmp_path / "nope.json"), env=env)
    assert missing.returncode == 2
    assert "cannot read" in one_error_line(missing.stderr)


def test_without_rich_the_cli_says_which_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "from patchworks_async.cli import main\n"
        "sys.exit(main(['flows', 'list']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (
        "error: the command line needs the cli extra: pip install 'patchworks-async[cli]'"
    )


def test_the_library_imports_neither_the_cli_nor_rich() -> None:
    code = (
        "import sys, patchworks_async, patchworks_async.testing\n"
        "assert 'rich' not in sys.modules and 'patchworks_async.cli' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------------- reading JSON Lines


async def chunked(data: bytes, size: int) -> AsyncGenerator[bytes, None]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1 << 16])
async def test_json_lines_keep_line_numbers_and_sizes(chunk_size: int) -> None:
    data = b'{"a": 1}\n\n  \r\nnot json\n"\xff"\n[' + b"1," * 20 + b'1]\n{"tail": true}'
    source = PayloadSource("test", len(data))
    seen = [item async for item in json_lines(chunked(data, chunk_size), source, max_line_bytes=30)]
    assert seen == ['{"a": 1}', None, None, None, '{"tail": true}']
    assert source.line_of == {0: 1, 1: 4, 2: 5, 3: 6, 4: 7}
    assert sum(source.size_of.values()) == len(data)  # the bar reaches exactly 100%
    assert source.bad[1].startswith("line 4 is not JSON")
    assert source.bad[2] == "line 5 is not UTF-8 text"
    assert source.bad[3] == "line 6 is longer than the 30-byte limit of a start"
