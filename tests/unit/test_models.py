"""The one converter: models from the API's JSON, tolerant where the API is unsure. Pure."""

from __future__ import annotations

import datetime as dt

import pytest

from patchworks_async import Flow, FlowRun, FlowRunStatus, UnexpectedResponseError
from patchworks_async._models import structure, structure_written


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        (2, FlowRunStatus.SUCCESS),
        ("2", FlowRunStatus.SUCCESS),
        ("success", FlowRunStatus.SUCCESS),
        ("Partial Success", FlowRunStatus.PARTIAL_SUCCESS),
        (9, 9),
        ("queued", "queued"),
    ],
)
def test_a_run_status_is_read_as_a_code_a_name_or_kept(sent: object, read: object) -> None:
    run = structure({"id": 1, "status": sent}, FlowRun)
    assert run.status == read
    assert type(run.status) is type(read)


def test_timestamps_are_read_from_iso_or_unix_ms() -> None:
    iso = structure({"id": 1, "started_at": "2026-11-29T10:00:00.5Z"}, FlowRun)
    unix = structure({"id": 1, "started_at": 1795946400500}, FlowRun)
    assert iso.started_at == dt.datetime(2026, 11, 29, 10, 0, 0, 500000, tzinfo=dt.UTC)
    assert unix.started_at == iso.started_at


def test_sparse_fields_leave_the_rest_none() -> None:
    flow = structure({"id": 7}, Flow)
    assert (flow.id, flow.name, flow.versions) == (7, None, None)


def test_a_read_of_the_wrong_shape_names_the_field() -> None:
    with pytest.raises(UnexpectedResponseError) as caught:
        structure({"id": 1, "started_at": "yesterday"}, FlowRun)
    assert caught.value.field == "data.started_at"


def test_a_write_reply_of_the_wrong_shape_is_read_as_far_as_it_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The write happened: never raise, keep what can be read, say what could not."""
    flow = structure_written(
        {"id": 5, "name": "Copy", "created_at": "yesterday"}, Flow, request="POST flows"
    )
    assert (flow.id, flow.name, flow.created_at) == (5, "Copy", None)
    assert "created_at" in caplog.text
    nothing = structure_written({"message": "Flow imported."}, Flow, request="POST flows/import")
    assert nothing.id is None
