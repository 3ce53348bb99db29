"""The fake's Start service as PATCHWORKS_API.md documents it: standard, empty and raw starts.

Every test talks to a FakePatchworks over real sockets with a plain ``aiohttp`` session.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks

from .calls import api, call, start

# --------------------------------------------------------------------------- standard starts


async def test_start_reply_says_flow_initialised_with_the_run_id(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await start(session, fake, body={"payload": "x"})
    assert (status, reply) == (200, {"message": "Flow initialised.", "flow_run_id": 500001})


async def test_a_body_without_payload_is_an_empty_start(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, _ = await start(session, fake, body={"flow_id": 101, "flow_variables": '{"a": 1}'})
    assert status == 200
    assert (fake.starts[0].payload, fake.starts[0].payload_bytes) == ("", b"")
    assert fake.starts[0].flow_variables == {"a": 1}


async def test_an_empty_object_is_an_empty_start(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, _ = await start(session, fake, "flows/101/manual", {})
    assert status == 200
    assert fake.starts[0].payload_bytes == b""


async def test_an_empty_body_is_an_empty_start(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, _ = await start(session, fake, "flows/101/manual", data=b"")
    assert status == 200
    assert fake.starts[0].payload_bytes == b""


@pytest.mark.parametrize("payload", ["", "   ", None])
async def test_a_blank_payload_is_still_refused(
    fake: FakePatchworks, session: aiohttp.ClientSession, payload: str | None
) -> None:
    status, reply = await start(session, fake, body={"payload": payload})
    assert status == 422
    assert reply["errors"] == {"payload": ["The payload field is required."]}
    assert fake.starts == []


async def test_the_payload_is_stored_as_its_utf8_bytes(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    await start(session, fake, body={"payload": "<é/>"})
    assert fake.starts[0].payload_bytes == "<é/>".encode()


async def test_flow_variables_as_a_json_string_are_decoded(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    body = {"payload": "x", "flow_variables": '{"region": "eu"}'}
    assert (await start(session, fake, body=body))[0] == 200
    assert fake.starts[0].flow_variables == {"region": "eu"}


async def test_flow_variables_as_an_object_are_tolerated(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    body = {"payload": "x", "flow_variables": {"region": "eu"}}
    assert (await start(session, fake, body=body))[0] == 200
    assert fake.starts[0].flow_variables == {"region": "eu"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[1, 2]", "The flow variables field must be a valid JSON string."),
        ("region=eu", "The flow variables field must be a valid JSON string."),
        (["region"], "The flow variables field must be a string."),
        (5, "The flow variables field must be a string."),
    ],
)
async def test_flow_variables_that_are_no_object_are_422(
    fake: FakePatchworks, session: aiohttp.ClientSession, value: Any, message: str
) -> None:
    status, reply = await start(session, fake, body={"payload": "x", "flow_variables": value})
    assert (status, reply["errors"]) == (422, {"flow_variables": [message]})


async def test_the_body_may_name_the_version(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    """The reference lists ``version_id`` in the body; the path's version wins when both."""
    await start(session, fake, body={"payload": "x", "flow_id": 101, "version_id": 9002})
    await start(session, fake, "flows/101/start/9001", {"payload": "x", "version_id": 9002})
    assert [run.version_id for run in fake.starts] == [9002, 9001]


async def test_a_version_segment_that_is_not_digits_is_no_route(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await start(session, fake, "flows/101/start/latest", {"payload": "x"})
    assert (status, reply) == (404, {"message": "Not Found"})


# --------------------------------------------------------------------------- raw starts


async def test_a_raw_start_stores_the_body_byte_for_byte(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    body = b'{ "order" : 1,\n  "lines": [] }'
    status, reply = await start(session, fake, "flows/101/start/raw", data=body)
    assert (status, reply["message"]) == (200, "Flow initialised.")
    run = fake.starts[0]
    assert (run.raw, run.payload_bytes, run.payload) == (True, body, body.decode())


async def test_raw_is_not_taken_for_a_version(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    await start(session, fake, "flows/101/start/raw", data=b"{}")
    assert fake.starts[0].version_id == 9001  # the deployed version, not a version "raw"


@pytest.mark.parametrize("route", ["start/raw/9002", "manual/raw/9002"])
async def test_a_raw_start_may_name_its_version(
    fake: FakePatchworks, session: aiohttp.ClientSession, route: str
) -> None:
    assert (await start(session, fake, f"flows/101/{route}", data=b"{}"))[0] == 200
    assert fake.starts[0].version_id == 9002


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
async def test_a_raw_body_may_be_any_json_value(
    fake: FakePatchworks, session: aiohttp.ClientSession, body: bytes
) -> None:
    assert (await start(session, fake, "flows/101/start/raw", data=body))[0] == 200
    assert fake.starts[0].payload_bytes == body


async def test_a_raw_start_without_a_body_is_an_empty_start(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    assert (await start(session, fake, "flows/101/manual/raw"))[0] == 200
    assert (fake.starts[0].raw, fake.starts[0].payload_bytes) == (True, b"")


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"   "])
async def test_a_raw_body_that_is_not_json_is_422(
    fake: FakePatchworks, session: aiohttp.ClientSession, body: bytes
) -> None:
    status, reply = await start(session, fake, "flows/101/start/raw", data=body)
    assert status == 422
    assert reply["errors"] == {"payload": ["The payload field must be a valid JSON string."]}
    assert fake.starts == []


async def test_a_raw_start_takes_its_options_from_the_query(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    params = {"flow_variables": '{"region": "eu"}', "virtual_environment_id": "2"}
    await start(session, fake, "flows/101/start/raw", data=b"{}", params=params)
    assert (fake.starts[0].flow_variables, fake.starts[0].virtual_environment_id) == (
        {"region": "eu"},
        2,
    )


async def test_a_raw_start_with_bad_query_options_is_422(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    params = {"flow_variables": "eu", "virtual_environment_id": "two"}
    status, reply = await start(session, fake, "flows/101/start/raw", data=b"{}", params=params)
    assert status == 422
    assert set(reply["errors"]) == {"flow_variables", "virtual_environment_id"}


async def test_raw_manual_starts_count_toward_the_manual_throttle(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks(manual_per_window=1) as fake:
        assert (await start(session, fake, "flows/101/manual/raw", data=b"{}"))[0] == 200
        assert (await start(session, fake, "flows/101/manual/raw", data=b"{}"))[0] == 429
        assert fake.throttled_by == {"manual": 1}


# --------------------------------------------------------------------------- the reply


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (None, {"message": "Flow initialised."}),
        ("flowRunId", {"message": "Flow initialised.", "flowRunId": 500001}),
        ("data.flow_run_id", {"message": "Flow initialised.", "data": {"flow_run_id": 500001}}),
    ],
)
async def test_run_id_key_places_the_run_id_or_leaves_it_out(
    session: aiohttp.ClientSession, key: str | None, expected: dict[str, Any]
) -> None:
    async with FakePatchworks(run_id_key=key) as fake:
        assert await start(session, fake, body={"payload": "x"}) == (200, expected)
        assert fake.starts[0].run_id == 500001  # the run still has its id


async def test_run_id_key_can_be_set_to_none(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.run_id_key = None
    assert (await start(session, fake, body={"payload": "x"}))[1] == {
        "message": "Flow initialised."
    }


async def test_the_reply_names_the_run_the_start_becomes(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks(queue_delay=0) as fake:
        _, reply = await start(session, fake, body={"payload": "x"})
        status, run = await api(session, fake, "GET", f"/flow-runs/{reply['flow_run_id']}")
        assert (status, run["data"]["id"]) == (200, reply["flow_run_id"])


async def test_started_run_records_queue_and_payload(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    await start(session, fake, body={"payload": "x"})
    await start(session, fake, "flows/101/manual", {"payload": "y"})
    queued, manual = fake.starts
    assert (queued.scheduled_flow_id, manual.scheduled_flow_id) == (1, None)
    assert (queued.payload_metadata_id, manual.payload_metadata_id) == (1, 2)
    assert fake.state()["starts"][0]["raw"] is False


# --------------------------------------------------------------------------- login and tenants


@pytest.mark.parametrize("name_field", ["email", "username"])
async def test_the_alternative_login_path_takes_either_name_field(
    fake: FakePatchworks, session: aiohttp.ClientSession, name_field: str
) -> None:
    body = {name_field: fake.email, "password": fake.password}
    status, _, reply = await call(session, fake, "POST", fake.alternative_login_url, body)
    assert status == 200
    assert reply["message"] == "You have successfully logged in."
    assert fake.alternative_login_url.endswith("/fabric/api/login")
    headers = {"Authorization": f"Bearer {reply['token']}"}
    assert (await api(session, fake, "GET", "/flows/101", headers=headers))[0] == 200


async def test_the_login_url_takes_username_too(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    body = {"username": fake.email, "password": fake.password}
    assert (await call(session, fake, "POST", fake.login_url, body))[0] == 200


async def test_a_tenant_header_is_served_and_recorded(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    headers = {"patchworks-tenant": "42"}
    assert (await api(session, fake, "GET", "/flows", headers=headers))[0] == 200
    assert fake.received[-1].header("Patchworks-Tenant") == "42"
