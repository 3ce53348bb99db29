"""The fake's map of the Patchworks API: every route, and how a request finds its own.

The three services live under one server, each under its own path prefix, as in the real
deployment: ``/fabric`` (login, at both documented paths), ``/core`` (the Core API
resources) and ``/start`` (start and manual initialise, standard and raw). ``ROUTES`` is
the whole API on one screen; each entry names the handler that answers it, so the table
stays plain data and the handlers stay where their logic lives. A path the API does not
serve is a JSON 404, and a known path with the wrong method a 405 with ``Allow``, as
Laravel answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal, TypeAlias

import attrs

__all__ = [
    "ADMIN_PREFIX",
    "ROUTES",
    "ROUTE_KINDS",
    "Match",
    "Route",
    "RouteKind",
    "check_route",
    "kind_of_path",
    "match_route",
]

RouteKind: TypeAlias = Literal["core", "start", "manual", "login"]
"""Which part of the API a request is aimed at; used to target injected faults and holds."""

ROUTE_KINDS: Final = frozenset({"core", "start", "manual", "login"})

ADMIN_PREFIX: Final = "/_fake/"
"""Test-only routes (``/_fake/state``, ``/_fake/reset``, ``/_fake/settings``,
``/_fake/hold``), not part of the API."""


@attrs.frozen
class Route:
    """One API route: which method and path it answers and which handler runs it."""

    method: str
    pattern: re.Pattern[str]
    kind: RouteKind
    handler: str


@attrs.frozen
class Match:
    """The router's answer: a route and its path parameters, or a 404/405 status."""

    route: Route | None
    params: Mapping[str, str] = attrs.field(factory=dict)
    status: int = 200
    allow: tuple[str, ...] = ()


def _core_route(method: str, template: str, handler: str) -> Route:
    """A Core API route; ``{name}`` in ``template`` becomes a path parameter."""
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return Route(method, re.compile(f"/core/api/v1{pattern}"), "core", handler)


def _start_route(route: str, *, raw: bool) -> Route:
    """A Start service route; the version segment, when there is one, is digits."""
    kind: RouteKind = "manual" if route == "manual" else "start"
    suffix = "/raw" if raw else ""
    pattern = rf"/start/api/v1/flows/(?P<flow_id>[^/]+)/{route}{suffix}(?:/(?P<version_id>\d+))?"
    return Route("POST", re.compile(pattern), kind, "start_raw_flow" if raw else "start_flow")


_FLOW: Final = "/flows/{flow_id}"
_VERSION: Final = f"{_FLOW}/versions/{{version_id}}"
_RUN: Final = "/flow-runs/{run_id}"
_LOOKUP: Final = "/cross-reference-lookups/{lookup_id}"

ROUTES: Final = (
    Route("POST", re.compile(r"/fabric/api/v1/login"), "login", "login"),
    Route("POST", re.compile(r"/fabric/api/login"), "login", "login"),
    _core_route("GET", "/flows", "list_flows"),
    _core_route("POST", "/flows", "create_flow"),
    _core_route("POST", "/flows/export", "export_flow"),
    _core_route("POST", "/flows/import", "import_flow"),
    _core_route("GET", _FLOW, "get_flow"),
    _core_route("PUT", _FLOW, "update_flow"),
    _core_route("DELETE", _FLOW, "delete_flow"),
    _core_route("POST", f"{_FLOW}/duplicate", "duplicate_flow"),
    _core_route("PATCH", f"{_FLOW}/layout-direction", "toggle_layout_direction"),
    _core_route("GET", f"{_FLOW}/versions", "list_flow_versions"),
    _core_route("POST", f"{_FLOW}/versions", "create_flow_version"),
    _core_route("GET", _VERSION, "get_flow_version"),
    _core_route("PUT", _VERSION, "update_flow_version"),
    _core_route("DELETE", _VERSION, "delete_flow_version"),
    _core_route("GET", "/flow-runs", "list_flow_runs"),
    _core_route("GET", _RUN, "get_flow_run"),
    _core_route("POST", f"{_RUN}/retry", "retry_flow_run"),
    _core_route("GET", f"{_RUN}/flow-run-logs", "list_flow_run_logs"),
    _core_route("GET", "/payload-metadata", "list_payload_metadata"),
    _core_route("GET", "/payload-metadata/{metadata_id}/download", "download_payload"),
    _core_route("GET", "/scheduled-flows", "list_scheduled_flows"),
    _core_route("DELETE", "/scheduled-flows/{item_id}", "delete_scheduled_flow"),
    _core_route(
        "GET", "/flow-version-deployments/virtual-environments", "list_virtual_environments"
    ),
    _core_route("GET", "/cross-reference-lookups", "list_lookups"),
    _core_route("POST", "/cross-reference-lookups", "create_lookup"),
    _core_route("GET", _LOOKUP, "get_lookup"),
    _core_route("PUT", _LOOKUP, "update_lookup"),
    _core_route("DELETE", _LOOKUP, "delete_lookup"),
    _core_route("GET", f"{_LOOKUP}/values", "list_lookup_values"),
    _core_route("POST", f"{_LOOKUP}/values", "create_lookup_value"),
    _core_route("PUT", f"{_LOOKUP}/values/{{value_id}}", "update_lookup_value"),
    _core_route("DELETE", f"{_LOOKUP}/values/{{value_id}}", "delete_lookup_value"),
    _start_route("start", raw=True),
    _start_route("manual", raw=True),
    _start_route("start", raw=False),
    _start_route("manual", raw=False),
)
"""Every API route, in the order the router tries them."""


def match_route(method: str, path: str) -> Match:
    """Find the route for ``method`` and ``path``; 405 if only the method is wrong."""
    path = path.rstrip("/") or "/"
    allow: list[str] = []
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found is None:
            continue
        if route.method == method:
            params = {k: v for k, v in found.groupdict().items() if v is not None}
            return Match(route, params)
        if route.method not in allow:
            allow.append(route.method)
    if allow:
        return Match(None, status=405, allow=tuple(allow))
    return Match(None, status=404)


def kind_of_path(path: str) -> RouteKind | None:
    """Classify a path by service, so faults can target paths that match no route too."""
    if path.startswith("/fabric/"):
        return "login"
    if path.startswith("/core/"):
        return "core"
    if path.startswith("/start/"):
        return "manual" if "/manual" in path else "start"
    return None


def check_route(route: str | None) -> None:
    """Refuse a route kind the fake does not know (None, meaning any, is fine).

    Raises:
        ValueError: If ``route`` is not None or one of ``ROUTE_KINDS``.
    """
    if route is not None and route not in ROUTE_KINDS:
        raise ValueError(f"route must be one of {sorted(ROUTE_KINDS)} or None, got {route!r}")
