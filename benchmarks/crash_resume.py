"""Crash and resume: bulk starts stopped at a random moment, then resumed with the journal.

What it measures:
    The ``patchworks flows start --jsonl --journal`` command (the library's ``start_many``
    under a real program, with its SIGINT and SIGTERM handling) pushes 200 starts against
    ``FakePatchworks`` in a process of its own, and is stopped at a random moment (after a
    random number of results, from 1 to 190) by SIGKILL, SIGINT or SIGTERM. The same
    command is then run again with the same journal, to completion. Each trial is checked
    against the server's own record (``GET /_fake/state``) and the journal:

    * duplicates: items the server started more than once (must be 0);
    * lost: items the server never started and the journal does not report ``unknown``
      after the resume (must be 0): neither started nor known to be in doubt;
    * unknown: items reported ``unknown`` after the resume, and how many of them really
      reached the server. The goal: 0 after SIGINT or SIGTERM; after SIGKILL at most the
      requests on the wire at the kill, which the journal tells exactly (its ``sending``
      rows right after the kill: granted, journaled, no outcome yet), and at most the
      concurrency;
    * sent after stop: starts that reached the server more than ``latency + 0.2 s`` after
      the signal (SIGINT and SIGTERM; must be 0). The requests already on the wire arrive
      within the latency; anything later was granted after the stop.

    Two paces: the account's default (240 a minute) shrunk to 60 per 3 s, with 0 to 25 ms of
    latency jitter, where most items wait for a slot at any moment; and limits far above
    the load, where the concurrency (16) is what holds items back. Trials run in parallel
    lanes, each lane with its own fake server (an account of its own).

Goal:
    0 duplicates, 0 lost, 0 sent after a stop, 0 unknown after SIGINT/SIGTERM, and after
    SIGKILL unknown <= on the wire at the kill.

Run: ``python benchmarks/crash_resume.py [--quick] [--kills N] [--interrupts N] [--lanes N]``
(defaults: 100 SIGKILL and 30 each of SIGINT and SIGTERM, at each pace; ``--quick``: a few).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import attrs

from patchworks_async.testing import RemoteFake, fake_patchworks_process

ITEMS = 200
CONCURRENCY = 16
SLACK = 0.2
"""Seconds past the latency after which a start that reaches the server was sent late."""


@attrs.frozen
class Pace:
    name: str
    server: tuple[str, ...]
    client: tuple[str, ...]
    latency: float


PACES = (
    Pace(
        "60 per 3 s",
        ("--requests", "60", "--window", "3", "--latency", "0,0.025"),
        ("--requests", "60", "--per", "3"),
        0.025,
    ),
    Pace("far above the load", ("--requests", "1000000000"), ("--requests", "1000000000"), 0.0),
)


@attrs.frozen
class Trial:
    number: int
    pace: Pace
    signum: signal.Signals
    stop_after: int


@attrs.frozen
class Outcome:
    trial: Trial
    duplicates: int
    lost: int
    unknown: int
    unknown_reached: int
    on_the_wire: int
    late_by: tuple[float, ...] = ()
    """Seconds after the signal at which each start sent after the stop arrived."""

    @property
    def sent_after_stop(self) -> int:
        return len(self.late_by)


def env_for(fake: RemoteFake) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHWORKS_")}
    env["PATCHWORKS_API_KEY"] = fake.api_key
    for name, url in fake.urls.items():
        env[f"PATCHWORKS_{name.upper()}"] = str(url)
    return env


def journal_states(path: Path) -> dict[int, str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT idx, state FROM items").fetchall())


async def run_trial(fake: RemoteFake, trial: Trial, workdir: Path) -> Outcome:
    """Stop one run at its moment, resume it, and check both against the server."""
    await fake.reset()
    data = workdir / f"trial-{trial.number}.jsonl"
    data.write_text("".join(json.dumps({"t": trial.number, "i": i}) + "\n" for i in range(ITEMS)))
    journal = workdir / f"trial-{trial.number}.sqlite"
    command = [
        sys.executable, "-m", "patchworks_async", "flows", "start", "101", "9001", str(data),
        "--jsonl", "--json", "--journal", str(journal), "--concurrency", str(CONCURRENCY),
        *trial.pace.client,
    ]  # fmt: skip
    worker = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env_for(fake),
    )
    assert worker.stdout is not None
    for _ in range(trial.stop_after):
        if not await asyncio.wait_for(worker.stdout.readline(), 60):
            break
    signalled = time.monotonic()
    with contextlib.suppress(ProcessLookupError):  # it may have finished already
        worker.send_signal(trial.signum)
    await worker.communicate()
    on_the_wire = sum(state == "sending" for state in journal_states(journal).values())
    first_run = (await fake.state())["starts"]

    resumed = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env_for(fake),
    )
    await resumed.wait()
    starts = Counter(json.loads(run["payload"])["i"] for run in (await fake.state())["starts"])
    final = journal_states(journal)
    doubtful = {index for index, state in final.items() if state in ("unknown", "sending")}
    late_by: tuple[float, ...] = ()
    if trial.signum is not signal.SIGKILL:
        deadline = signalled + trial.pace.latency + SLACK
        late_by = tuple(
            sorted(
                run["received_at"] - signalled for run in first_run if run["received_at"] > deadline
            )
        )
    return Outcome(
        trial=trial,
        duplicates=sum(count > 1 for count in starts.values()),
        lost=sum(1 for index in range(ITEMS) if index not in starts and index not in doubtful),
        unknown=len(doubtful),
        unknown_reached=sum(1 for index in doubtful if index in starts),
        on_the_wire=on_the_wire,
        late_by=late_by,
    )


async def run_lane(pace: Pace, trials: list[Trial], workdir: Path) -> list[Outcome]:
    async with fake_patchworks_process(*pace.server) as fake:
        return [await run_trial(fake, trial, workdir) for trial in trials]


def plan(kills: int, interrupts: int, seed: int) -> Iterator[Trial]:
    rng = random.Random(seed)
    number = 0
    for pace in PACES:
        for signum, count in (
            (signal.SIGKILL, kills),
            (signal.SIGINT, interrupts),
            (signal.SIGTERM, interrupts),
        ):
            for _ in range(count):
                number += 1
                yield Trial(number, pace, signum, rng.randint(1, 190))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few trials, for CI")
    parser.add_argument("--kills", type=int, default=100, help="SIGKILL trials per pace")
    parser.add_argument("--interrupts", type=int, default=30, help="SIGINT and SIGTERM each")
    parser.add_argument("--lanes", type=int, default=8, help="trials run side by side")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    kills, interrupts, lanes = (
        (2, 1, 4) if args.quick else (args.kills, args.interrupts, args.lanes)
    )

    trials = list(plan(kills, interrupts, args.seed))
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for pace in PACES:
            mine = [trial for trial in trials if trial.pace is pace]
            for lane in range(lanes):
                jobs.append(run_lane(pace, mine[lane::lanes], Path(tmp)))
        outcomes = [outcome for lane in await asyncio.gather(*jobs) for outcome in lane]

    print(
        f"{len(outcomes)} trials of {ITEMS} starts, concurrency {CONCURRENCY}, "
        f"in {time.monotonic() - began:.0f} s"
    )
    header = (
        f"{'pace':<19} {'signal':<8} {'trials':>6} {'dupes':>6} {'lost':>5} "
        f"{'unknown (reached)':>18} {'on wire at kill':>16} {'sent after stop':>16}"
    )
    print(header)
    print("-" * len(header))
    failed = False
    for pace in PACES:
        for signum in (signal.SIGKILL, signal.SIGINT, signal.SIGTERM):
            rows = [o for o in outcomes if o.trial.pace is pace and o.trial.signum is signum]
            if not rows:
                continue
            dupes = sum(o.duplicates for o in rows)
            lost = sum(o.lost for o in rows)
            unknown = sum(o.unknown for o in rows)
            reached = sum(o.unknown_reached for o in rows)
            wire = sum(o.on_the_wire for o in rows)
            late = sum(o.sent_after_stop for o in rows)
            killed = signum is signal.SIGKILL
            print(
                f"{pace.name:<19} {signum.name:<8} {len(rows):>6} {dupes:>6} {lost:>5} "
                f"{f'{unknown} ({reached})':>18} {wire if killed else '-':>16} "
                f"{'-' if killed else late:>16}"
            )
            over_wire = any(o.unknown > min(o.on_the_wire, CONCURRENCY) for o in rows)
            if dupes or lost or late or (unknown if not killed else over_wire):
                failed = True
    # Each trial with late arrivals, for telling a starved process (every request of the
    # trial that was on the wire, read late together) from a send after the stop.
    for o in outcomes:
        if o.late_by:
            print(
                f"late: trial {o.trial.number} ({o.trial.pace.name}, {o.trial.signum.name} "
                f"after {o.trial.stop_after} results): {o.sent_after_stop} starts arrived "
                f"{o.late_by[0]:.3f} to {o.late_by[-1]:.3f} s after the signal"
            )
    print("goal met" if not failed else "GOAL NOT MET")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
