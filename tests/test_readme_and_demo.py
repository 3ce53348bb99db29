"""The README's opening example and the demo command work as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from patchworks_async.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_opens_with_code_that_runs() -> None:
    first_block = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert first_block is not None
    result = subprocess.run(
        [sys.executable, "-c", first_block.group(1)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"flow run \d+ - flow initialised", result.stdout)
    assert "Orders to ERP [9001, 9002]" in result.stdout


HARNESS = """
import asyncio
from patchworks_async import PatchworksClient
from patchworks_async.testing import FakePatchworks

async def main() -> None:
    async with FakePatchworks() as fake, PatchworksClient(api_key=fake.api_key, **fake.urls) as pw:
{body}

asyncio.run(main())
"""

SNIPPETS = re.findall(r"<!-- runs-with: pw -->\n```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_readme_has_a_runnable_snippet_per_resource() -> None:
    joined = "\n".join(SNIPPETS)
    for resource in ("pw.flows.list", "pw.flows.create", "pw.flow_runs", "cross_reference_lookups"):
        assert resource in joined


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.split("\n", 1)[0][:40])
def test_each_readme_snippet_runs_against_the_fake(snippet: str, tmp_path: Path) -> None:
    body = "\n".join("        " + line for line in snippet.splitlines())
    result = subprocess.run(
        [sys.executable, "-c", HARNESS.format(body=body)],
        capture_output=True,
        cwd=tmp_path,  # a snippet may write a journal file
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_demo_keeps_the_limit_and_says_so(capsys: object) -> None:
    status = main(["demo", "--starts", "40", "--requests", "20", "--window", "1"])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert status == 0
    assert "accepted 40/40 | 429s 0 |" in out
    assert re.search(r"against a limit of 20\.00/s \(\d+\.\d%\)", out)


async def test_fake_server_serves_until_interrupted() -> None:
    """``patchworks fake-server`` prints its URLs, answers the API, and stops on Ctrl-C."""
    import asyncio
    import json
    import signal

    from patchworks_async import PatchworksClient

    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "patchworks_async",
        "fake-server",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(await asyncio.wait_for(server.stdout.readline(), 30))
        api_key = ready.pop("api_key")
        async with PatchworksClient(api_key=api_key, **ready) as pw:
            started = await pw.flows.start(101, 9001, "from another process")
        assert started.id is not None
    finally:
        server.send_signal(signal.SIGINT)
        status = await asyncio.wait_for(server.wait(), 30)
    assert status == 0
