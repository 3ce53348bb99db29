"""The README's examples run as documented (the demo command is tested in test_cli.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


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
    assert re.search(r"flow run \d+ - Flow initialised\.", result.stdout)
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
