"""``FakePatchworks``' data side: the Core API records, seeding, and the behaviour switches.

``FakePatchworks`` (``_fake``) is the server: sockets, auth, throttles, faults, holds and
records of what arrived. What the API *serves* is here, in the base class it inherits:
live dicts of every resource (edit them freely, the routes read the same objects), the
seeding helpers, and the switches that pick between the variants the vendor's
documentation leaves open (``run_id_key``, ``wrap_writes_in_data``) or that depend on
load (``queue_delay``, ``run_duration``, ``run_outcome``). Every switch is a keyword
argument of ``FakePatchworks`` and a settable property, checked on every write.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ._store import Store
from ._switches import (
    check_queue_delay,
    check_run_duration,
    check_run_id_key,
    check_run_outcome,
)

__all__ = ["SWITCHES", "FakeData", "check_wrap_writes_in_data"]


def check_wrap_writes_in_data(value: bool) -> bool:
    """Refuse anything but a bool (``1`` or ``"no"`` would be a slip, not a choice).

    Raises:
        ValueError: If ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise ValueError(f"wrap_writes_in_data must be a bool, got {value!r}")
    return value


SWITCHES: Final[Mapping[str, Callable[[Any], Any]]] = {
    "run_id_key": check_run_id_key,
    "wrap_writes_in_data": check_wrap_writes_in_data,
    "queue_delay": check_queue_delay,
    "run_duration": check_run_duration,
    "run_outcome": check_run_outcome,
}
"""Every switch ``configure`` sets, and the check its value must pass."""


class FakeData:
    """The Core API data and switches of a ``FakePatchworks``, over its ``Store``."""

    def __init__(self, store: Store) -> None:
        """Serve ``store``'s data (the switches in it are already checked)."""
        self._store = store

    # ------------------------------------------------------------------ switches

    @property
    def run_id_key(self) -> str | None:
        """Where start and retry replies put the run id; settable.

        One of ``flow_run_id``, ``run_id``, ``flowRunId``, ``id``, ``data.id``,
        ``data.flow_run_id``, or None for a reply with no id at all (``{"message":
        "Flow initialised."}``): the real key is undocumented.
        """
        return self._store.switches.run_id_key

    @run_id_key.setter
    def run_id_key(self, value: str | None) -> None:
        self._store.switches.run_id_key = check_run_id_key(value)

    @property
    def queue_delay(self) -> float:
        """Seconds a ``/start`` waits in the queue before it becomes a run; settable.

        Until then ``GET /flow-runs/{id}`` answers 404 for the id the start reply gave and
        the start is listed by ``GET /scheduled-flows``. 0 makes it a run on the next read;
        a large value keeps it queued for the test. Applies to later starts.
        """
        return self._store.switches.queue_delay

    @queue_delay.setter
    def queue_delay(self, value: float) -> None:
        self._store.switches.queue_delay = check_queue_delay(value)

    @property
    def run_duration(self) -> float:
        """Seconds a run stays STARTED; settable, applies to later starts."""
        return self._store.switches.run_duration

    @run_duration.setter
    def run_duration(self, value: float) -> None:
        self._store.switches.run_duration = check_run_duration(value)

    @property
    def run_outcome(self) -> int:
        """The status later runs finish with (2 to 5); settable."""
        return self._store.switches.run_outcome

    @run_outcome.setter
    def run_outcome(self, value: int) -> None:
        self._store.switches.run_outcome = check_run_outcome(value)

    @property
    def wrap_writes_in_data(self) -> bool:
        """Whether write replies come as ``{"data": {...}}`` (True) or bare; settable.

        Applies to flow create, import and duplicate and to version create and update;
        the reference documents their replies only as "object". Export is always bare.
        """
        return self._store.switches.wrap_writes_in_data

    @wrap_writes_in_data.setter
    def wrap_writes_in_data(self, value: bool) -> None:
        self._store.switches.wrap_writes_in_data = check_wrap_writes_in_data(value)

    def configure(self, **switches: Any) -> dict[str, Any]:
        """Set several switches at once, all or none; also ``POST /_fake/settings``.

        For a fake in another process (``RemoteFake.configure``), where the properties
        cannot be reached.

        Args:
            **switches: ``run_id_key``, ``wrap_writes_in_data``, ``queue_delay``,
                ``run_duration`` and ``run_outcome``, as their properties take them.

        Returns:
            Every switch's value, after the change.

        Raises:
            ValueError: On an unknown switch or a value its check refuses (then nothing
                changes).
        """
        unknown = sorted(set(switches) - set(SWITCHES))
        if unknown:
            raise ValueError(f"unknown switches {unknown}; known: {sorted(SWITCHES)}")
        checked = {name: SWITCHES[name](value) for name, value in switches.items()}
        for name, value in checked.items():
            setattr(self._store.switches, name, value)
        return {name: getattr(self._store.switches, name) for name in SWITCHES}

    # ------------------------------------------------------------------ Core API data

    @property
    def flows(self) -> dict[int, dict[str, Any]]:
        """Flows by id, as the API serves them; edit freely (a live dict, not a copy)."""
        return self._store.flows

    @property
    def versions(self) -> dict[int, dict[str, Any]]:
        """Flow versions by id (each names its ``flow_id``); a live dict."""
        return self._store.versions

    @property
    def flow_runs(self) -> dict[int, dict[str, Any]]:
        """Flow runs by id, a live dict, brought up to date on every read.

        A ``/start`` becomes a run ``queue_delay`` seconds after it arrived, and a run
        finishes ``run_duration`` seconds after it began; reading this property (or the
        API) applies every change that is due.
        """
        return self._store.flow_runs

    @property
    def flow_run_logs(self) -> dict[int, dict[str, Any]]:
        """Run logs by id (each names its ``flow_run_id``), brought up to date; a live dict."""
        return self._store.flow_run_logs

    @property
    def payload_metadata(self) -> dict[int, dict[str, Any]]:
        """Payload metadata by id, one per start and retry; a live dict."""
        return self._store.payload_metadata

    @property
    def payloads(self) -> dict[str, tuple[bytes, str]]:
        """Stored payloads: ``payload_store_reference`` -> (bytes, content type)."""
        return self._store.payloads

    @property
    def scheduled_flows(self) -> dict[int, dict[str, Any]]:
        """The queue: starts not picked up yet, by id, brought up to date; a live dict."""
        return self._store.scheduled_flows

    @property
    def virtual_environments(self) -> dict[int, dict[str, Any]]:
        """Virtual environments by id (two are seeded); a live dict."""
        return self._store.virtual_environments

    @property
    def lookups(self) -> dict[int, dict[str, Any]]:
        """Cross-reference lookups by id; a live dict."""
        return self._store.lookups

    @property
    def lookup_values(self) -> dict[int, dict[str, Any]]:
        """Lookup rows by id (each names its ``cross_reference_lookup_id``); a live dict."""
        return self._store.lookup_values

    # ------------------------------------------------------------------ seeding

    def add_flow(
        self,
        name: str,
        *,
        versions: Iterable[int] = (),
        deployed_version: int | None = None,
        labels: Iterable[str | Mapping[str, Any]] = (),
        **fields: Any,
    ) -> dict[str, Any]:
        """Seed a flow (and its versions) that the API will then serve and start.

        A seeded flow is enabled (``enabled_at`` set) and carries every field the routes
        read or write: ``description``, ``enabled_at``, ``created_at``, ``updated_at``,
        ``deployed_version_id``, ``layout_direction`` ("horizontal"), ``use_queued_time``,
        ``remove_failed_payloads``, ``priority``, ``prod_flag``, ``marketplace_app_id``,
        ``blueprint_id``, ``blueprint_version_number`` and ``labels``.

        Args:
            name: The flow's name.
            versions: Version ids to create, oldest first; empty creates one with a fresh id.
            deployed_version: The version id that runs when a start omits the version
                (its ``deployed_at`` is set); None leaves the flow undeployed (such
                starts get a 422).
            labels: Label names (every flow shares one id per name) or ``{"id", "name"}``
                mappings; ``filter[labelled]=<id>`` finds the flow by one of them.
            **fields: Extra or overriding flow fields (``description``, ``enabled_at``...);
                ``id`` picks the flow id instead of the next free one.

        Returns:
            The stored flow dict (the same object as ``flows[id]``).

        Raises:
            ValueError: If an id is already used, ``deployed_version`` is not one of
                ``versions``, or a label id names another label.
        """
        return self._store.add_flow(
            name, versions=versions, deployed_version=deployed_version, labels=labels, **fields
        )

    def add_flows(
        self, count: int, *, name_prefix: str = "Flow", deployed: bool = True
    ) -> list[dict[str, Any]]:
        """Seed ``count`` flows at once, each with one version, in O(count).

        ``add_flow`` in a loop would be quadratic (it checks every id for clashes); this
        is what benchmarks and pagination tests use to fill the store with thousands.

        Args:
            count: How many flows (0 or more).
            name_prefix: Names are ``"<name_prefix> 1"``, ``"<name_prefix> 2"``...
            deployed: Whether each flow's version is deployed (so a start may omit it).

        Returns:
            The stored flow dicts, in id order (ids and version ids follow the highest ones).
        """
        return self._store.add_flows(count, name_prefix=name_prefix, deployed=deployed)

    def add_flow_run(
        self,
        flow_id: int,
        *,
        status: int = 2,
        started_at_ms: int | None = None,
        version_id: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Seed a flow run that ``GET /flow-runs`` will list.

        Unlike a run created by a start, a seeded run keeps ``status`` until changed:
        ``status=1`` stays STARTED for ever (to test a wait that times out) and any code,
        even an undocumented one such as 9, is served as given. It has no logs and no
        payload (a retry of it runs with an empty one).

        Args:
            flow_id: An existing flow.
            status: The run's status code.
            started_at_ms: Unix milliseconds (served as an ISO 8601 string); now when None.
            version_id: One of the flow's versions; None takes the deployed one, else the
                latest.
            **fields: Extra or overriding run fields (``trigger`` (``API`` by default),
                ``payload_size``, ``finished_at``, ``has_warnings``...; ``id`` picks the
                run id). ``finished_at`` defaults to null for status 1, else
                ``started_at + run_duration``.

        Returns:
            The stored run dict (the same object as ``flow_runs[id]``).

        Raises:
            ValueError: If the flow does not exist, the version is not one of its own, or
                an ``id`` is already used.
        """
        return self._store.add_flow_run(
            flow_id, status=status, started_at_ms=started_at_ms, version_id=version_id, **fields
        )

    def add_lookup(
        self, name: str, *, rows: Iterable[tuple[str, str]] = (), **fields: Any
    ) -> dict[str, Any]:
        """Seed a cross-reference lookup and its rows.

        Args:
            name: The lookup's name.
            rows: ``(left_value, right_value)`` pairs; left values must be distinct.
            **fields: Extra or overriding lookup fields (``description``,
                ``default_value``...); ``id`` picks the lookup id.

        Returns:
            The stored lookup dict (the same object as ``lookups[id]``).

        Raises:
            ValueError: If the id is already used or two rows share a left value.
        """
        return self._store.add_lookup(name, rows=rows, **fields)

    def advance(self, seconds: float) -> None:
        """Move the fake's clock on by ``seconds``, without waiting: queued starts are
        picked up, runs finish and timestamps move as if that much time had passed.

        A test that checks what happens *while* a start is queued (``queue_delay=30``),
        then what happens once it ran, calls ``advance(30)`` in between rather than
        sleeping. The throttle's windows keep the real clock.

        Raises:
            ValueError: If ``seconds`` is negative or not finite.
        """
        if not 0 <= seconds < math.inf:
            raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")
        self._store.advance(seconds)

    def clear_runs(self) -> None:
        """Forget every run, queued start, run log and stored payload (and what was due).

        Every start leaves all four behind; a long benchmark clears them between rounds
        (clearing ``flow_runs`` alone leaves the rest). Flows, versions, lookups and
        virtual environments stay, ``starts`` and ``received`` too (see
        ``reset_records``), and ids are not reused.
        """
        self._store.clear_runs()

    def add_virtual_environment(self, name: str, **fields: Any) -> dict[str, Any]:
        """Seed a virtual environment, listed by the virtual environments route.

        Args:
            name: The environment's name.
            **fields: Extra or overriding fields; ``id`` picks the id.

        Returns:
            The stored environment (the same object as ``virtual_environments[id]``).

        Raises:
            ValueError: If the id is already used.
        """
        return self._store.add_virtual_environment(name, **fields)
