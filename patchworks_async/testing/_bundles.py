"""Export bundles: what ``POST /flows/export`` answers and ``POST /flows/import`` takes.

The reference only says the export reply is "the export bundle"; the vendor's MCP builds
the import body as ``{"metadata": {company_name, flow_name, exported_at}, "flow": {name,
description, is_enabled, priority, versions: [{..., steps, schedules}]}, "systems": [...]}``
plus ``as_marketplace``. The fake answers an export in exactly that shape (bare, never in
``data``: the reply *is* the bundle), so a client can hand an export straight to import.
The fake has no steps, schedules or systems, so those lists are empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from ._form import Form

__all__ = ["COMPANY_NAME", "ImportedFlow", "export_bundle", "read_bundle"]

COMPANY_NAME: Final = "FakePatchworks Ltd"
"""The ``metadata.company_name`` of every export."""


def export_bundle(
    flow: Mapping[str, Any], versions: Sequence[Mapping[str, Any]], exported_at: str
) -> dict[str, Any]:
    """The bundle of ``flow`` and its ``versions`` (oldest first), exported at ``exported_at``."""
    return {
        "metadata": {
            "company_name": COMPANY_NAME,
            "flow_name": flow["name"],
            "exported_at": exported_at,
        },
        "flow": {
            "name": flow["name"],
            "description": flow.get("description"),
            "is_enabled": flow.get("enabled_at") is not None,
            "priority": flow.get("priority"),
            "versions": [
                {"id": v["id"], "version": v["version"], "steps": [], "schedules": []}
                for v in versions
            ],
        },
        "systems": [],
    }


@attrs.frozen
class ImportedFlow:
    """An import body, read: what the new flow gets, or every validation failure.

    Attributes:
        errors: Failures by dotted field name (empty when the bundle is valid).
        name: The new flow's name (``flow.name``, trimmed).
        settings: Flow settings carried over (``description``, ``priority``).
        version_names: One entry per bundled version: its ``name`` if it has one.
    """

    errors: dict[str, list[str]]
    name: str = ""
    settings: dict[str, Any] = attrs.field(factory=dict)
    version_names: tuple[str | None, ...] = ()


def _version_names(versions: Any, errors: dict[str, list[str]]) -> tuple[str | None, ...]:
    """The name of each bundled version (None when it has none); non-objects are refused."""
    if versions is None:
        return ()
    if not isinstance(versions, list):
        errors["flow.versions"] = ["The flow.versions field must be an array."]
        return ()
    names: list[str | None] = []
    for index, version in enumerate(versions):
        if not isinstance(version, dict):
            errors[f"flow.versions.{index}"] = [
                f"The flow.versions.{index} field must be an array."
            ]
            continue
        name = version.get("name")
        names.append(name if isinstance(name, str) and name.strip() else None)
    return tuple(names)


def read_bundle(body: Mapping[str, Any]) -> ImportedFlow:
    """Validate an import body as Laravel would, every failure at once.

    ``flow`` (with a ``name``) and ``metadata`` are required objects; ``systems`` must be a
    list when present and ``as_marketplace`` a boolean.
    """
    form = Form(body)
    bundled = form.object("flow", required=True)
    form.object("metadata", required=True)
    form.boolean("as_marketplace")
    systems = body.get("systems")
    if systems is not None and not isinstance(systems, list):
        form.errors["systems"] = ["The systems field must be an array."]
    if bundled is None:
        return ImportedFlow(form.errors)
    inner = Form(bundled, prefix="flow.")
    inner.string("name", required=True, max_length=255)
    inner.string("description")
    inner.integer("priority")
    errors = {**form.errors, **inner.errors}
    names = _version_names(bundled.get("versions"), errors)
    if errors:
        return ImportedFlow(errors)
    settings: dict[str, Any] = {
        key: inner.valid[key] for key in ("description", "priority") if key in inner.valid
    }
    return ImportedFlow({}, inner.valid["name"], settings, names)
