"""The README's opening example and the demo command work as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


def test_the_demo_keeps_the_limit_and_says_so(capsys: object) -> None:
    status = main(["demo", "--starts", "40", "--requests", "20", "--window", "1"])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert status == 0
    assert "accepted 40/40 | 429s 0 |" in out
    assert re.search(r"against a limit of 20\.00/s \(\d+\.\d%\)", out)
