"""chunk_records: splitting records into 8 MiB starts, versus one json.dumps of them all.

What it measures:
    N order-like records (dicts of ~200 bytes of compact JSON, with nested fields, a share
    of non-ASCII names and cities, and quotes and backslashes in notes) grouped by
    ``chunk_records(records, max_body_bytes=8 MiB)`` (the default, worst-case envelope),
    versus a single ``json.dumps(records, separators=(",", ":"), ensure_ascii=False)`` of
    the whole list: the least work any splitter must do is serialise every record once, and
    the one call is that work with no per-record Python at all. Rounds alternate (dumps,
    chunk, dumps each, ...) after a warm-up of each, and the medians are compared.

    A third, informational side, "dumps each", is ``json.dumps`` of each record in a list
    comprehension: the floor for anything that serialises records one at a time from Python.
    chunk/dumps-each is what chunk_records adds over that: measuring the escaped UTF-8 size,
    and the bookkeeping of the chunks.

    Afterwards, outside the timing, every chunk's body is encoded once with
    ``encode_start_body`` (with the worst-case envelope chunk_records measured against, and
    with real ids) to check that all fit, that no chunk could have taken the next record
    (the fewest chunks), and that the chunks hold the records in order.

Goal:
    chunk_records time <= 2.0 x one json.dumps of the whole list (ratio of the medians), with
    every chunk's body within the limit.

The machine this runs on is noisy: only ratios measured in one run mean anything.

Run: ``python benchmarks/chunk_records.py [--quick] [-n N] [--rounds K] [--max-body-bytes B]``
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from patchworks_async import encode_start_body
from patchworks_async._chunking import _WORST_CASE_ID, chunk_records

GOAL_RATIO = 2.0
MAX_BODY_BYTES = 8 * 1024 * 1024
SIDES = ("dumps", "chunk", "dumps each")

NAMES = ["Alice Smith", "Zoë Ørsted", "José Müller", "Renée Dubois", "Bob Jones", "李雷", "Ana"]
CITIES = ["Leeds", "Zürich", "Malmö", "London", "São Paulo", "Kraków", "York"]
NOTES = ['leave with "reception"', "gift wrap", 'fragile: "glass" \\ handle with care', ""]


def make_records(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` order-like records of about 200 bytes of compact JSON each."""
    rng = random.Random(seed)
    return [
        {
            "order_id": 1_000_000 + i,
            "sku": f"SKU-{rng.randrange(10**6):06d}",
            "customer": rng.choice(NAMES),
            "qty": rng.randrange(1, 20),
            "price": round(rng.uniform(1, 500), 2),
            "currency": rng.choice(["GBP", "EUR"]),
            "ship_to": {"city": rng.choice(CITIES), "postcode": f"LS{rng.randrange(100)} 1AB"},
            "note": rng.choice(NOTES),
            "tags": rng.sample(["priority", "b2b", "repeat", "new"], 2),
        }
        for i in range(n)
    ]


def dumps_all(records: list[dict[str, Any]]) -> object:
    return json.dumps(records, separators=(",", ":"), ensure_ascii=False)


def dumps_each(records: list[dict[str, Any]]) -> object:
    return [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in records]


def chunk(records: list[dict[str, Any]], limit: int) -> list[list[dict[str, Any]]]:
    return chunk_records(records, max_body_bytes=limit)


def timed(work: Callable[[], object]) -> tuple[float, float, object]:
    """Wall and CPU seconds of ``work()``, with the cyclic collector kept out, and its result."""
    gc.collect()  # do not make one side pay for collecting the other's garbage
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.enable()
    return wall, cpu, result


def verify(
    records: list[dict[str, Any]], chunks: list[list[dict[str, Any]]], limit: int
) -> tuple[list[int], bool, bool, bool]:
    """Each chunk's body size (worst-case envelope), and whether all fit, fewest, in order."""
    worst: dict[str, Any] = {
        "flow_id": _WORST_CASE_ID,
        "version_id": _WORST_CASE_ID,
        "virtual_environment_id": _WORST_CASE_ID,
    }
    sizes: list[int] = []
    fit = True
    for part in chunks:
        body = encode_start_body(
            worst["flow_id"],
            worst["version_id"],
            part,
            max_body_bytes=2**62,
            virtual_environment_id=worst["virtual_environment_id"],
        )
        sizes.append(len(body))
        fit = fit and len(body) <= limit
        # Real ids: a smaller envelope, so it fits too.
        fit = fit and len(encode_start_body(101, 9001, part, max_body_bytes=2**62)) <= limit
    fewest = all(
        len(
            encode_start_body(
                worst["flow_id"],
                worst["version_id"],
                [*part, following[0]],
                max_body_bytes=2**62,
                virtual_environment_id=worst["virtual_environment_id"],
            )
        )
        > limit
        for part, following in itertools.pairwise(chunks)
    )
    in_order = len(records) == sum(map(len, chunks)) and all(
        a is b for a, b in zip(records, (r for part in chunks for r in part), strict=True)
    )
    return sizes, fit, fewest, in_order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="chunk_records versus one json.dumps.")
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI)")
    parser.add_argument("-n", type=int, default=None, help="records (200000; quick 20000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each side (5; quick 3)")
    parser.add_argument(
        "--max-body-bytes", type=int, default=MAX_BODY_BYTES, help="the limit (8 MiB)"
    )
    args = parser.parse_args(argv)
    n: int = max(1, args.n) if args.n is not None else (20_000 if args.quick else 200_000)
    rounds: int = max(1, args.rounds) if args.rounds is not None else (3 if args.quick else 5)
    limit: int = args.max_body_bytes

    records = make_records(n)
    total_json = len(str(dumps_all(records)).encode())
    escaped = len(encode_start_body(1, None, records, max_body_bytes=2**62)) - len(
        encode_start_body(1, None, [], max_body_bytes=2**62)
    )
    non_ascii = sum(not json.dumps(r, ensure_ascii=False).isascii() for r in records)
    print(
        f"chunk_records: {n} records, {total_json / n:.0f} bytes of JSON each on average "
        f"({total_json / 2**20:.1f} MiB; escaped in a body {escaped / 2**20:.1f} MiB), "
        f"{non_ascii / n:.0%} with non-ASCII; limit {limit} bytes; {rounds} rounds of each "
        f"side; python {sys.version.split()[0]}"
    )
    work: dict[str, Callable[[], object]] = {
        "dumps": lambda: dumps_all(records),
        "chunk": lambda: chunk(records, limit),
        "dumps each": lambda: dumps_each(records),
    }
    for side in SIDES:  # warm-up
        timed(work[side])
    print()
    print(f"{'round':>5}  {'side':<10}  {'ms':>8}  {'CPU ms':>8}  {'us/record':>9}")
    walls: dict[str, list[float]] = {side: [] for side in SIDES}
    cpus: dict[str, list[float]] = {side: [] for side in SIDES}
    chunks: list[list[dict[str, Any]]] = []
    for number in range(1, rounds + 1):
        for side in SIDES:
            wall, cpu, result = timed(work[side])
            walls[side].append(wall)
            cpus[side].append(cpu)
            if side == "chunk":
                chunks = result  # type: ignore[assignment]
            print(
                f"{number:>5}  {side:<10}  {wall * 1e3:>8.1f}  {cpu * 1e3:>8.1f}  "
                f"{wall / n * 1e6:>9.2f}"
            )

    median = {side: statistics.median(walls[side]) for side in SIDES}
    median_cpu = {side: statistics.median(cpus[side]) for side in SIDES}
    ratio = median["chunk"] / median["dumps"]
    per_round = [c / d for d, c in zip(walls["dumps"], walls["chunk"], strict=True)]
    print()
    print(f"{'side':<10}  {'median ms':>9}  {'CPU ms':>8}  {'us/record':>9}")
    for side in SIDES:
        print(
            f"{side:<10}  {median[side] * 1e3:>9.1f}  {median_cpu[side] * 1e3:>8.1f}  "
            f"{median[side] / n * 1e6:>9.2f}"
        )
    print()
    print(f"chunk/dumps per round: {', '.join(f'{r:.3f}' for r in per_round)}")
    print(f"chunk/dumps by CPU   : {median_cpu['chunk'] / median_cpu['dumps']:.3f}")

    sizes, fit, fewest, in_order = verify(records, chunks, limit)
    largest = max(sizes, default=0)
    counts = ", ".join(str(len(part)) for part in chunks)
    print(f"chunks               : {len(chunks)}, of {counts} records")
    print(
        f"bodies (worst-case ids): largest {largest} of {limit} bytes "
        f"({limit - largest} under); smallest {min(sizes, default=0)}; all fit: {fit}; "
        f"fewest (next record never fits): {fewest}; records in order: {in_order}"
    )

    met = ratio <= GOAL_RATIO and fit and fewest and in_order
    print(
        f"RESULT: chunk_records/json.dumps = {ratio:.3f} (goal <= {GOAL_RATIO}; by CPU time "
        f"{median_cpu['chunk'] / median_cpu['dumps']:.3f}), chunk/dumps-each = "
        f"{median['chunk'] / median['dumps each']:.3f} (informational), {len(chunks)} chunks, "
        f"largest body {largest}/{limit} bytes, all fit: {fit}: "
        f"{'goal met' if met else 'goal MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
