"""The ``patchworks`` command line (also ``python -m patchworks_async``).

For now it has one command, ``demo``: an embedded fake server, a few hundred flow starts
through the client, and the figures that show the limits were kept.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._demo import run_demo

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patchworks", description="Command line for the Patchworks iPaaS API."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="push flow starts through the client against an embedded fake server",
        description=(
            "Start FakePatchworks in-process with a shrunken rate-limit window and push "
            "flow starts through the client; print accepted, 429s and the rate against "
            "the limit."
        ),
    )
    demo.add_argument("--starts", type=_positive_int, default=300, help="flow starts to push (300)")
    demo.add_argument(
        "--requests", type=_positive_int, default=60, help="the account's limit per window (60)"
    )
    demo.add_argument(
        "--window", type=_positive_float, default=3.0, help="the window in seconds (3.0)"
    )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _print_progress(accepted: int, refused: int, total: int) -> None:
    print(f"  accepted {accepted:>5}/{total}   429s {refused}", flush=True)


def _demo(args: argparse.Namespace) -> int:
    limit = args.requests / args.window
    print(
        f"FakePatchworks: {args.requests} requests per {args.window:g} s window "
        f"({limit:.1f}/s); pushing {args.starts} flow starts",
        flush=True,
    )
    result = asyncio.run(
        run_demo(
            starts=args.starts,
            requests=args.requests,
            window=args.window,
            progress=_print_progress,
        )
    )
    print(
        f"accepted {result.accepted}/{result.starts} | 429s {result.refused_429} | "
        f"rate {result.sustained_per_second:.2f}/s against a limit of "
        f"{result.limit_per_second:.2f}/s ({result.utilisation:.1%}) | "
        f"{result.elapsed:.1f} s"
    )
    return 0 if result.accepted == result.starts and result.refused_429 == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    return 2  # pragma: no cover - argparse refuses unknown commands first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
