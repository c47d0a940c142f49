"""Compatibility tests: polling endpoints through the public svix Python SDK
(pinned svix==2.9.1): a `pollingEndpoint` destination made with
`svix.destination`, read with `svix.message.poller` (poll, consumer_poll,
consumer_seek), with the admin token and with the sink's own poller token.

The server fixture and helpers are test_svix_sdk.py's (`hookd serve` on an
ephemeral port with a temporary data dir; `$HOOKD_BIN`). The SDK has no call
for an application's poller token, so that one is read over plain HTTP.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime, timezone

import pytest
from svix.api import (
    DestinationIn,
    DestinationPatch,
    MessageIn,
    MessagePollerConsumerPollOptions,
    MessagePollerPollOptions,
    PollingEndpointConsumerSeekIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError

from test_svix_sdk import TOKEN, app, server, svix, unique  # noqa: F401 (app, server, svix: fixtures)

# This module's server, for conftest.py to show its log under a failed test.
RUNNING_SERVER = None


@pytest.fixture(autouse=True)
def _show_log_on_failure(server):
    global RUNNING_SERVER
    RUNNING_SERVER = server


def poller_token(server, app_id: str, sink_id: str) -> str:
    """The sink's poller token (`GET /api/v1/auth/app/{app}/poller/{sink}/token`)."""
    req = urllib.request.Request(
        f"{server.base}/api/v1/auth/app/{app_id}/poller/{sink_id}/token",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["token"]


def test_a_polling_endpoint_is_made_and_read_through_the_sdk(svix, server, app):
    uid = unique("poll-").replace(".", "-")
    dest = svix.destination.create(
        app.id, DestinationIn(type="pollingEndpoint", config={}, uid=uid, event_types=["poll.wanted"])
    )
    assert dest.id.startswith("sink_") and dest.type == "pollingEndpoint" and dest.uid == uid
    assert dest.event_types == ["poll.wanted"] and dest.status == "enabled"
    assert svix.destination.get(app.id, uid).id == dest.id
    assert [d.id for d in svix.destination.list(app.id).data] == [dest.id]

    wanted = []
    for n in range(3):
        wanted.append(svix.message.create(app.id, MessageIn(event_type="poll.wanted", payload={"n": n})).id)
        svix.message.create(app.id, MessageIn(event_type="poll.other", payload={"n": n}))
        time.sleep(0.005)

    # The caller keeps the iterator.
    first = svix.message.poller.poll(app.id, dest.id, MessagePollerPollOptions(limit=2))
    assert [m.id for m in first.data] == wanted[:2] and not first.done
    assert first.data[0].payload == {"n": 0} and first.data[0].event_type == "poll.wanted"
    rest = svix.message.poller.poll(app.id, dest.id, MessagePollerPollOptions(iterator=first.iterator))
    assert [m.id for m in rest.data] == wanted[2:] and rest.done
    others = svix.message.poller.poll(app.id, dest.id, MessagePollerPollOptions(event_type="poll.other"))
    assert others.data == [], "the sink's own filter holds"

    # hookd keeps a consumer's place; a seek moves it.
    poller = svix.message.poller
    page = poller.consumer_poll(app.id, dest.id, "sdk", MessagePollerConsumerPollOptions(limit=2))
    assert [m.id for m in page.data] == wanted[:2]
    page = poller.consumer_poll(app.id, dest.id, "sdk")
    assert [m.id for m in page.data] == wanted[2:] and page.done
    assert poller.consumer_poll(app.id, dest.id, "sdk").data == []
    first_at = first.data[0].timestamp
    seek = poller.consumer_seek(app.id, dest.id, "sdk", PollingEndpointConsumerSeekIn(after=first_at))
    assert seek.iterator
    assert [m.id for m in poller.consumer_poll(app.id, dest.id, "sdk").data] == wanted[1:]
    old = poller.consumer_seek(
        app.id, dest.id, "sdk", PollingEndpointConsumerSeekIn(after=datetime(2000, 1, 1, tzinfo=timezone.utc))
    )
    assert [m.id for m in poller.consumer_poll(app.id, dest.id, "sdk").data] == wanted
    assert old.iterator

    # The sink's poller token reads it, and nothing else.
    as_poller = Svix(poller_token(server, app.id, dest.id), SvixOptions(server_url=server.base))
    assert [m.id for m in as_poller.message.poller.poll(app.id, dest.id).data] == wanted
    with pytest.raises(HttpError) as refused:
        as_poller.application.get(app.id)
    assert refused.value.status_code == 403

    # Changed and removed as a destination.
    patched = svix.destination.patch(app.id, dest.id, DestinationPatch(type="pollingEndpoint", event_types=["poll.other"]))
    assert patched.event_types == ["poll.other"]
    assert len(svix.message.poller.poll(app.id, dest.id).data) == 3
    svix.destination.delete(app.id, dest.id)
    with pytest.raises(HttpError) as gone:
        svix.message.poller.poll(app.id, dest.id)
    assert gone.value.status_code == 404
