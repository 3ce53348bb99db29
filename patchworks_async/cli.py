"""The ``patchworks`` command line (also ``python -m patchworks_async``).

``demo`` runs an embedded fake server, pushes a few hundred flow starts through the client
and prints the figures that show the limits were kept; ``fake-server`` serves FakePatchworks
on a port until interrupted, for tests and benchmarks that want it in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence

from ._demo import run_demo
from .testing import FakePatchworks

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
    server = commands.add_parser(
        "fake-server",
        help="serve FakePatchworks on a port until interrupted",
        description=(
            "Serve FakePatchworks on loopback. Once it listens, one JSON line with "
            "core_url, start_url, login_url and api_key is printed to stdout."
        ),
    )
    server.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    server.add_argument("--port", type=int, default=8080, help="port, 0 for any free one (8080)")
    server.add_argument(
        "--requests", type=_positive_int, default=240, help="requests per window (240)"
    )
    server.add_argument(
        "--manual", type=_positive_int, default=10, help="manual initialise per window (10)"
    )
    server.add_argument(
        "--window", type=_positive_float, default=60.0, help="window in seconds (60)"
    )
    server.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every request (0)"
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


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with FakePatchworks(
        host=args.host,
        port=args.port,
        requests_per_window=args.requests,
        manual_per_window=args.manual,
        window=args.window,
        latency=args.latency,
    ) as fake:
        print(json.dumps({**fake.urls, "api_key": fake.api_key}), flush=True)
        await stop.wait()


def _fake_server(args: argparse.Namespace) -> int:
    asyncio.run(_serve(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "fake-server":
        return _fake_server(args)
    return 2  # pragma: no cover - argparse refuses unknown commands first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
