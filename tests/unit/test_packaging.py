"""What importing the package pulls in: the core must not need the cli or redis extras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import patchworks_async

PACKAGE = Path(patchworks_async.__file__).parent


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_core_imports_neither_rich_nor_redis() -> None:
    result = _python(
        "import sys, patchworks_async, patchworks_async.testing\n"
        "from patchworks_async import PatchworksClient, RateLimits\n"
        "print(sorted(m for m in ('rich', 'redis') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_redis_installed_the_core_works_and_the_limiter_says_what_to_install() -> None:
    result = _python(
        "import sys\n"
        "sys.modules['redis'] = None  # as if redis-py were not installed\n"
        "import patchworks_async\n"
        "patchworks_async.PatchworksClient(api_key='k')\n"
        "try:\n"
        "    patchworks_async.RedisRateLimiter\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'patchworks-async[redis]'" in result.stdout


def test_the_package_ships_py_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()
