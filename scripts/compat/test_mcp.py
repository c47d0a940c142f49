"""Compatibility tests: hookd's MCP server driven by the official MCP Python
client (pinned mcp==2.3.0), over both transports: `hookd mcp` on stdio
(started by the client as a program, as assistants do) and Streamable HTTP at
`POST /mcp` with a bearer token.

The server fixture and sink are test_svix_sdk.py's (`hookd serve` on an
ephemeral port with a temporary data dir; `$HOOKD_BIN`). Tokens and test data
are made over plain HTTP with the admin token.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any, Optional

import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from test_svix_sdk import TOKEN, hookd_binary, server, sink, unique  # noqa: F401 (server, sink: fixtures)

# This module's server, for conftest.py to show its log under a failed test.
RUNNING_SERVER = None

SENDING_TOOLS = {"resend_message", "recover_endpoint", "send_test_event"}


@pytest.fixture(autouse=True)
def _show_log_on_failure(server):
    global RUNNING_SERVER
    RUNNING_SERVER = server


def api(server, method: str, path: str, body: Optional[dict] = None) -> Any:
    """Calls hookd's API with the admin token; the JSON answer (None when empty)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        server.base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read()
    return json.loads(text) if text else None


def mcp_token(server, app_id: Optional[str], **body) -> str:
    path = f"/api/v1/auth/app/{app_id}/mcp-token" if app_id else "/api/v1/auth/dashboard/mcp-token"
    out = api(server, "POST", path, body)
    assert out["slug"] and out["token"].startswith("mcp_")
    return out["token"]


def failing_app(server, sink) -> tuple[str, str, str, str]:
    """An application whose endpoint answers 500, with one message to it:
    (app id, endpoint id, message id, sink path)."""
    app = api(server, "POST", "/api/v1/app", {"name": "mcp compat", "uid": unique("mcp-")})["id"]
    path = sink.new_path()
    sink.set_status(path, 500)
    ep = api(server, "POST", f"/api/v1/app/{app}/endpoint", {"url": sink.base + path})["id"]
    msg = api(server, "POST", f"/api/v1/app/{app}/msg", {"eventType": "mcp.failing", "payload": {"n": 1}})["id"]
    return app, ep, msg, path


def text(result) -> str:
    return "\n".join(c.text for c in result.content)


def data(result) -> Any:
    assert not result.is_error, text(result)
    return json.loads(result.content[0].text)


async def wait_until_failed(session: ClientSession, msg: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = data(await session.call_tool("get_message", {"msgId": msg, "withContent": False}))
        if got["deliveries"] and got["deliveries"][0]["status"] == "fail":
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the delivery did not fail in time")


def test_stdio_explains_a_failure_and_resends(server, sink):
    app, ep, msg, path = failing_app(server, sink)
    token = mcp_token(server, app, expiry=600)
    sink.wait_for(path, 3)  # the first attempt and the two retries

    async def run():
        params = StdioServerParameters(
            command=str(hookd_binary()), args=["mcp", "--server", server.base, "--token", token], env={}
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.protocol_version in ("2025-06-18", "2025-03-26")
            assert init.server_info.name == "hookd"
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert {"list_applications", "explain_delivery_failure"} <= tools.keys()
            assert SENDING_TOOLS <= tools.keys()
            assert tools["get_endpoint"].input_schema["required"] == ["endpointId"], "its own app is the default"

            apps = data(await session.call_tool("list_applications", {}))
            assert [a["id"] for a in apps["data"]] == [app]

            await wait_until_failed(session, msg)
            explained = await session.call_tool("explain_delivery_failure", {"msgId": msg, "endpointId": ep})
            assert not explained.is_error, text(explained)
            assert "HTTP 500" in text(explained) and "retries are exhausted" in text(explained)

            sink.set_status(path, 200)
            resent = await session.call_tool("resend_message", {"msgId": msg, "endpointId": ep})
            assert not resent.is_error, text(resent)
            got = sink.wait_for(path, 4)
            assert json.loads(got[3].body) == {"n": 1}

            bad = await session.call_tool("get_endpoint", {"endpointId": "../../etc"})
            assert bad.is_error and "endpointId" in text(bad)

    asyncio.run(run())


async def with_http(server, token: str, body):
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with client, streamable_http_client(server.base + "/mcp", http_client=client) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.protocol_version in ("2025-06-18", "2025-03-26")
            await body(session)


def test_http_with_an_application_token_sees_one_application(server, sink):
    app, ep, msg, path = failing_app(server, sink)
    other = api(server, "POST", "/api/v1/app", {"name": "other", "uid": unique("mcp-other-")})["id"]
    token = mcp_token(server, app)
    sink.wait_for(path, 1)

    async def body(session: ClientSession):
        endpoint = data(await session.call_tool("get_endpoint", {"endpointId": ep}))
        assert endpoint["endpoint"]["id"] == ep and set(endpoint["stats"]) >= {"success", "fail", "pending"}
        attempts = data(await session.call_tool("list_attempts", {"msgId": msg}))
        assert attempts["data"] and attempts["data"][0]["responseStatusCode"] == 500
        elsewhere = await session.call_tool("get_application", {"appId": other})
        assert elsewhere.is_error and "404" in text(elsewhere)

    asyncio.run(with_http(server, token, body))


def test_http_with_a_read_only_dashboard_token_cannot_send(server, sink):
    app, ep, msg, path = failing_app(server, sink)
    token = mcp_token(server, None, readOnly=True)
    sink.wait_for(path, 1)

    async def body(session: ClientSession):
        names = {t.name for t in (await session.list_tools()).tools}
        assert not names & SENDING_TOOLS and "explain_delivery_failure" in names
        apps = data(await session.call_tool("list_applications", {"limit": 100}))
        assert app in [a["id"] for a in apps["data"]]
        refused = await session.call_tool("resend_message", {"appId": app, "msgId": msg, "endpointId": ep})
        assert refused.is_error and "read-only" in text(refused)

    asyncio.run(with_http(server, token, body))
    assert len(sink.received(path)) <= 3, "nothing was sent again"


def test_http_refuses_a_revoked_token(server):
    app = api(server, "POST", "/api/v1/app", {"name": "revoked", "uid": unique("mcp-rev-")})["id"]
    token = mcp_token(server, app)
    listed = api(server, "GET", f"/api/v1/auth/app/{app}/mcp-token")["data"]
    assert len(listed) == 1 and token not in json.dumps(listed)
    api(server, "DELETE", f"/api/v1/auth/app/{app}/mcp-token/{listed[0]['id']}")
    req = urllib.request.Request(
        server.base + "/mcp",
        data=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
        method="POST",
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 401
